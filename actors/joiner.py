"""The join task: when a source of a registered join gets features, and every source
of that join has arrived, join their latest feature sets on entity key (as of time
when the join names a time column) into ``joined_features``; ``features.joined``."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

from actors.partition_worker import PartitionWorker
from actors.preparation import typed_value
from messages.codec import encode
from messages.features import FeaturesGenerated, FeaturesJoined
from ml.join import Side, asof_join
from storage.base import BatchEffects
from storage.kafka import Record
from storage.settings import Settings


def as_time(value) -> float | None:
    """Epoch seconds of a raw time value (number, or ISO-8601 text); None when absent.

    >>> as_time("1970-01-01T00:01:00+00:00"), as_time("60"), as_time(None)
    (60.0, 60.0, None)
    """
    value = typed_value(value)
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


class Joiner(PartitionWorker):
    consumer = "joiner"

    def __init__(self, settings: Settings, name: str, topic: str = "features.generated", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        for record in records:
            event = self.expect(record, effects, FeaturesGenerated)
            if event is None:
                continue
            joins = await self.pool.fetch("SELECT name, sources, time_column FROM feature_joins"
                                          " WHERE $1 = ANY(sources)", event.dataset)
            for join in joins:
                await self._run(join["name"], list(join["sources"]), join["time_column"], effects)
        return effects

    async def _source(self, dataset: str, time_column: str | None):
        fsid = await self.pool.fetchval("SELECT feature_set_id FROM feature_sets WHERE dataset = $1"
                                        " ORDER BY created_at DESC LIMIT 1", dataset)
        if fsid is None:
            return None, None
        rows = await self.pool.fetch(
            "SELECT f.entity_key, f.vector, f.label, r.values->>$2 AS t FROM features f"
            " JOIN raw_records r ON r.batch_id = f.batch_id AND r.line_no = f.line_no"
            " JOIN raw_batches b ON b.batch_id = f.batch_id"
            " WHERE f.feature_set_id = $1 ORDER BY b.created_at, f.batch_id, f.line_no", fsid, time_column or "")
        times = [as_time(r["t"]) for r in rows] if time_column else None
        return fsid, Side(keys=[r["entity_key"] for r in rows], vectors=[list(r["vector"]) for r in rows],
                          times=times, labels=[r["label"] for r in rows])

    async def _run(self, name: str, sources: list[str], time_column: str | None, effects: BatchEffects) -> None:
        sides, inputs = [], []
        for dataset in sources:
            fsid, side = await self._source(dataset, time_column)
            if side is None:
                self.log.info("join waits for a source", join=name, missing=dataset)
                return
            sides.append(side)
            inputs.append(f"{dataset}:{fsid}:{len(side.keys)}")
        run_id = hashlib.sha256("|".join(inputs).encode()).hexdigest()[:20]
        joined = await asyncio.to_thread(asof_join, sides[0], sides[1:])

        async def write(conn) -> None:
            known = await conn.fetchval("SELECT 1 FROM join_runs WHERE join_name = $1 AND run_id = $2", name, run_id)
            if known:
                return
            await conn.execute("INSERT INTO join_runs (join_name, run_id, inputs, n_rows, n_unmatched)"
                               " VALUES ($1, $2, $3, $4, $5)", name, run_id, inputs, len(joined.keys),
                               joined.n_unmatched)
            await conn.copy_records_to_table(
                "joined_features", columns=["join_name", "run_id", "row_no", "entity_key", "vector", "label"],
                records=[(name, run_id, i, k, v, lab) for i, (k, v, lab)
                         in enumerate(zip(joined.keys, joined.vectors, joined.labels))])

        effects.writes.append(write)
        done = FeaturesJoined(join=name, run_id=run_id, sources=sources, n_rows=len(joined.keys),
                              n_unmatched=joined.n_unmatched)
        effects.outbox.append(("features.joined", name.encode(), encode(done), f"join:{name}:{run_id}"))
