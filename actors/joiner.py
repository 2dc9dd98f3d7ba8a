"""The join task: when a source of a registered join gets features, and every source
of that join has arrived, join their latest feature sets on entity key (as of time
when the join names a time column); ``features.joined``.

Each run is a feature set of the join's name (:class:`ml.joined_features.JoinedFeatureSet`,
its rows in ``features`` under the left rows' batches, the newest vector per entity in the
online store; ``join_runs`` records its inputs), announced by ``features.generated``: a
model trains on ``dataset = JOIN`` and serves raw requests naming every source's columns."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json

import numpy as np

from actors.partition_worker import PartitionWorker
from actors.preparation import typed_value
from actors.wiring import WritesOnlineStore, signing_key_bytes
from messages.base import caused_by
from messages.codec import encode
from messages.features import FeaturesGenerated, FeaturesJoined
from ml.join import Side, asof_join
from ml.joined_features import JoinedFeatureSet, load_feature_set
from storage.base import BatchEffects
from storage.kafka import Record
from storage.settings import Settings
from storage.signing import sign, verify


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


class Joiner(WritesOnlineStore, PartitionWorker):
    consumer = "joiner"

    def __init__(self, settings: Settings, name: str, topic: str = "features.generated", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)

    async def open(self) -> None:
        self.open_online_store()

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        for record in records:
            event = self.expect(record, effects, FeaturesGenerated)
            if event is None:
                continue
            joins = await self.pool.fetch("SELECT name, sources, time_column FROM feature_joins"
                                          " WHERE $1 = ANY(sources)", event.dataset)
            for join in joins:
                await self._run(join["name"], list(join["sources"]), join["time_column"], event, effects)
        return effects

    async def _source(self, dataset: str, time_column: str | None):
        fsid = await self.pool.fetchval("SELECT feature_set_id FROM feature_sets WHERE dataset = $1"
                                        " ORDER BY created_at DESC LIMIT 1", dataset)
        if fsid is None:
            return None, None, []
        rows = await self.pool.fetch(
            "SELECT f.batch_id, f.line_no, f.entity_key, f.vector, f.label, r.values->>$2 AS t FROM features f"
            " JOIN raw_records r ON r.batch_id = f.batch_id AND r.line_no = f.line_no"
            " JOIN raw_batches b ON b.batch_id = f.batch_id"
            " WHERE f.feature_set_id = $1 ORDER BY b.created_at, f.batch_id, f.line_no", fsid, time_column or "")
        times = [as_time(r["t"]) for r in rows] if time_column else None
        side = Side(keys=[r["entity_key"] for r in rows], vectors=[list(r["vector"]) for r in rows],
                    times=times, labels=[r["label"] for r in rows])
        return fsid, side, [(r["batch_id"], r["line_no"]) for r in rows]

    async def _run(self, name: str, sources: list[str], time_column: str | None, cause: FeaturesGenerated,
                   effects: BatchEffects) -> None:
        sides, inputs, fsids, left_refs = [], [], [], []
        for dataset in sources:
            fsid, side, refs = await self._source(dataset, time_column)
            if side is None:
                self.log.info("join waits for a source", join=name, missing=dataset)
                return
            sides.append(side)
            fsids.append(fsid)
            left_refs = left_refs or refs
            inputs.append(f"{dataset}:{fsid}:{len(side.keys)}")
        run_id = hashlib.sha256("|".join(inputs).encode()).hexdigest()[:20]
        joined = await asyncio.to_thread(asof_join, sides[0], sides[1:])
        feature_set = await self._feature_set(name, run_id, list(zip(sources, fsids)))
        fsid, fitted = feature_set.feature_set_id, feature_set.to_bytes()
        features = self.features_of(fsid, joined, left_refs)

        async def write(conn) -> None:
            known = await conn.fetchval("SELECT 1 FROM join_runs WHERE join_name = $1 AND run_id = $2", name, run_id)
            if known:
                return
            # The join's rows are its own feature set: a model trains on it by the join's name, and
            # serves raw requests with its sources' transforms side by side.
            await conn.execute(
                "INSERT INTO feature_sets (feature_set_id, dataset, spec_toml, fitted, signature, feature_names,"
                " fitted_on_batch) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (feature_set_id) DO NOTHING",
                fsid, name, join_spec_toml(name, run_id, sources, fsids, time_column), fitted,
                sign(signing_key_bytes(self.settings), fitted), list(feature_set.feature_names), left_refs[0][0]
                if left_refs else cause.batch_id)
            await conn.copy_records_to_table(
                "features", columns=["feature_set_id", "batch_id", "line_no", "entity_key", "vector", "label"],
                records=features)
            await conn.execute("INSERT INTO join_runs (join_name, run_id, inputs, n_rows, n_unmatched, feature_set_id)"
                               " VALUES ($1, $2, $3, $4, $5, $6)", name, run_id, inputs, len(joined.keys),
                               joined.n_unmatched, fsid)

        effects.writes.append(write)
        if joined.keys:        # the newest joined vector of each entity, for requests by entity key
            await self.online.put_vectors(name, fsid, joined.keys, np.asarray(joined.vectors, dtype=float))
        done = FeaturesJoined(join=name, run_id=run_id, sources=sources, n_rows=len(joined.keys),
                              n_unmatched=joined.n_unmatched, **caused_by(cause))
        effects.outbox.append(("features.joined", name.encode(), encode(done), f"join:{name}:{run_id}"))
        generated = FeaturesGenerated(dataset=name, feature_set_id=fsid, batch_id=cause.batch_id,
                                      n_rows=len(joined.keys), n_quarantined=joined.n_unmatched, fitted_here=True,
                                      **caused_by(cause))
        effects.outbox.append(("features.generated", name.encode(), encode(generated), f"joined:{name}:{run_id}"))
        self.log.info("join run", join=name, run=run_id, feature_set=fsid, rows=len(joined.keys),
                      unmatched=joined.n_unmatched)

    async def _feature_set(self, name: str, run_id: str, sources: list[tuple[str, str]]) -> JoinedFeatureSet:
        """The sources' feature sets (signatures verified) side by side."""
        rows = {r["feature_set_id"]: r for r in await self.pool.fetch(
            "SELECT feature_set_id, fitted, signature FROM feature_sets WHERE feature_set_id = ANY($1::text[])",
            [fsid for _, fsid in sources])}
        key, parts = signing_key_bytes(self.settings), []
        for dataset, fsid in sources:
            fitted = bytes(rows[fsid]["fitted"])
            verify(key, fitted, bytes(rows[fsid]["signature"]))
            parts.append((dataset, await asyncio.to_thread(load_feature_set, fitted)))
        return JoinedFeatureSet(name, run_id, parts)

    @staticmethod
    def features_of(fsid: str, joined, left_refs: list[tuple[str, int]]) -> list[tuple]:
        """Rows of ``features``: each joined row is filed under its left row's batch and line."""
        return [(fsid, *left_refs[row], key, vector, label)
                for row, key, vector, label in zip(joined.left_rows, joined.keys, joined.vectors, joined.labels)]


def join_spec_toml(name: str, run_id: str, sources: list[str], fsids: list[str], time_column: str | None) -> str:
    """What a joined feature set was made of, in TOML (its ``spec_toml``).

    >>> print(join_spec_toml("people", "r1", ["a", "b"], ["f1", "f2"], None), end="")
    join = "people"
    run_id = "r1"
    sources = ["a", "b"]
    source_feature_sets = ["f1", "f2"]
    """
    text = (f"join = {json.dumps(name)}\nrun_id = {json.dumps(run_id)}\nsources = {json.dumps(sources)}\n"
            f"source_feature_sets = {json.dumps(fsids)}\n")
    return text + (f"time_column = {json.dumps(time_column)}\n" if time_column else "")
