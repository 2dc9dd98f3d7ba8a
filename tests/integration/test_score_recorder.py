"""The score recorder's batch write against real PostgreSQL, on a scratch database of the
session cluster's server: every field lands as recorded, a request id seen twice (in one
batch, or replayed) is stored once, and a record that is not a score is dead-lettered."""

from __future__ import annotations

import pytest

from actors.score_recorder import ScoreRecorder
from messages.codec import encode
from messages.serving import ScoreRecorded
from storage.kafka import Record

pytestmark = pytest.mark.integration


def record(offset: int, request_id: str, **fields) -> Record:
    event = ScoreRecorded(request_id=request_id, model="m", version=fields.pop("version", 2),
                          answered_by=fields.pop("answered_by", "primary"), score=fields.pop("score", 0.25),
                          label=fields.pop("label", "1"), latency_ms=3.5, fallback=fields.pop("fallback", False),
                          **fields)
    return Record(offset, b"m", encode(event))


async def write(recorder: ScoreRecorder, conn, records: list[Record]):
    effects = await recorder.handle(records)
    async with conn.transaction():
        for step in effects.writes:
            await step(conn)
    return effects


async def test_a_batch_is_stored_field_by_field_and_a_request_id_is_stored_once(scratch):
    settings, conn = scratch
    recorder = ScoreRecorder(settings, "test.scores")
    batch = [record(0, "r1", entity_key="e1"), record(1, "r2", version=None, score=None, label=None,
                                                      answered_by="baseline", fallback=True, reason="late"),
             record(2, "r1", score=0.75), Record(3, b"m", b"\x00not a message")]
    effects = await write(recorder, conn, batch)
    await write(recorder, conn, batch[:2])                       # a replayed batch
    rows = {r["request_id"]: dict(r) for r in await conn.fetch("SELECT * FROM scores")}
    assert sorted(rows) == ["r1", "r2"]
    assert rows["r1"]["score"] == 0.25 and rows["r1"]["entity_key"] == "e1" and rows["r1"]["version"] == 2
    assert rows["r2"]["version"] is None and rows["r2"]["score"] is None and rows["r2"]["label"] is None
    assert rows["r2"]["fallback"] and rows["r2"]["reason"] == "late" and rows["r2"]["answered_by"] == "baseline"
    assert [d.source_offset for d in effects.dead_letters] == [3]
