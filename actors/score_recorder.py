"""The score recorder: every online answer published on ``scores`` is written to
PostgreSQL in batches with the consumed offset (off the scoring path; idempotent by
request id), where ``client.get_score(request_id)`` finds it."""

from __future__ import annotations

import datetime as dt

from actors.partition_worker import PartitionWorker
from messages.serving import ScoreRecorded
from storage.base import BatchEffects
from storage.kafka import Record
from storage.settings import Settings


class ScoreRecorder(PartitionWorker):
    consumer = "score-recorder"
    woken_by_doorbell = False       # a record waits for the next read: up to the idle pause

    def __init__(self, settings: Settings, name: str, topic: str = "scores", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        rows = []
        for record in records:
            event = self.expect(record, effects, ScoreRecorded)
            if event is not None:
                rows.append((event.request_id, event.model, event.version, event.answered_by, event.score,
                             event.label, event.latency_ms, event.fallback, event.entity_key, event.reason,
                             dt.datetime.fromtimestamp(event.produced_at, dt.timezone.utc)))
        if rows:
            async def write(conn, columns=list(zip(*rows))) -> None:
                # one statement for the batch (a column per array), not one execution per record
                await conn.execute(
                    "INSERT INTO scores (request_id, model, version, answered_by, score, label, latency_ms, fallback,"
                    " entity_key, reason, scored_at) SELECT * FROM unnest($1::text[], $2::text[], $3::int[],"
                    " $4::text[], $5::float8[], $6::text[], $7::float8[], $8::bool[], $9::text[], $10::text[],"
                    " $11::timestamptz[]) ON CONFLICT (request_id) DO NOTHING", *map(list, columns))

            effects.writes.append(write)
        return effects
