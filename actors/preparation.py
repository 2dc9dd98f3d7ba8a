"""Preparation: each announced raw batch of a dataset with a feature spec becomes
features, in the offline store (PostgreSQL) and, latest vector per entity, in the
online store (Redis); ``features.generated`` announces them.

The first batch prepared with a spec is the training batch: the feature set is
fitted on it, stored signed, and reused for every later batch, so the same rows
always give the same vectors, offline and online (the same transform code).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
from contextlib import contextmanager
from collections.abc import Collection
from dataclasses import dataclass

import msgspec
import numpy as np

from actors.partition_worker import PartitionWorker
from actors.raw_values import decode_rows, typed_value
from messages.codec import encode, printable
from messages.features import FeaturesGenerated
from messages.ingestion import RawIngested
from storage.base import BatchEffects, DeadLetter
from storage.feature_store import FeatureRows
from storage.kafka import Record
from storage.settings import Settings

__all__ = ["PreparationWorker", "Prepared", "prepare_rows", "read_raw_rows", "stored_feature_set_id",
           "typed_value"]


def stored_feature_set_id(dataset: str, fitted_id: str) -> str:
    """The feature set's id in the stores: its spec and fitted state (``fitted_id``) for one
    dataset; two datasets with the same spec and statistics still have their own sets.

    >>> stored_feature_set_id("a", "0" * 20) != stored_feature_set_id("b", "0" * 20)
    True
    """
    return hashlib.sha256(f"{dataset}\x00{fitted_id}".encode()).hexdigest()[:20]


@dataclass
class Prepared:
    fitted: object
    rows: FeatureRows
    quarantined: list[tuple[int, str]]                            # (line, reason)
    report_json: bytes
    latest_keys: list[str]                                        # every entity once ...
    latest: np.ndarray                                            # ... and its last vector


@contextmanager
def _collection_paused():
    """The cyclic garbage collector off while a batch's rows are built: creating 200k
    dicts would otherwise run full collections over the growing heap again and again
    (~0.5 s per 200k rows here); they hold no cycles, nothing is left for it to find."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare_rows(spec, fitted, lines: list[int], rows: list) -> Prepared:
    """Pure and CPU-bound: fit the feature set on the decoded rows when there is none
    yet, transform them, and shape the outputs for the stores."""
    from ml.features import fit_feature_set

    with _collection_paused():
        fitted = fitted if fitted is not None else fit_feature_set(spec, rows)
        X, y, report = fitted.transform_batch(rows)
        labels = [None] * len(X) if y is None else [str(v) for v in y.tolist()]
        key = spec.key
        keys = [None if not key or rows[i].get(key) is None else str(rows[i][key]) for i in report.kept]
        last = {k: j for j, k in enumerate(keys) if k is not None}   # the last row of an entity wins
        summary = msgspec.structs.replace(report, kept=())   # the kept indices are the stored rows themselves
        return Prepared(fitted, FeatureRows([lines[i] for i in report.kept], keys, X, labels),
                        [(lines[q.index], q.reason) for q in report.quarantined], msgspec.json.encode(summary),
                        list(last), X[np.fromiter(last.values(), dtype=np.intp, count=len(last))])


async def read_raw_rows(pool, batch_id: str, typed: bool, only: Collection[str] | None = None
                        ) -> tuple[list[int], list]:
    """The line numbers and decoded rows of a raw batch, in line order; CSV text typed
    when ``typed`` (the columns in ``only``, when given), in a thread.

    One query, then decoding: reading in pages and decoding each while the next is read
    was measured to cost more CPU on both sides (one page as one ``string_agg`` text:
    +40 % client, +70 % server), the decoding thread and the event loop taking the GIL
    from each other.
    """
    found = await pool.fetch('SELECT line_no, "values" FROM raw_records WHERE batch_id = $1 ORDER BY line_no',
                             batch_id)
    return [r[0] for r in found], await asyncio.to_thread(decode_rows, [r[1] for r in found], typed, only)


class PreparationWorker(PartitionWorker):
    consumer = "preparation"
    pause_between_reads = True

    def __init__(self, settings: Settings, name: str, topic: str = "raw.ingested", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)
        self.features = self.online = self._redis = None

    async def open(self) -> None:
        from actors.wiring import signing_key_bytes
        from storage.feature_store import PostgresFeatureStore, RedisOnlineStore
        from storage.redis_store import connect_redis

        self.features = PostgresFeatureStore(self.pool, signing_key_bytes(self.settings))
        self._redis = connect_redis(self.settings.redis_url)
        self.online = RedisOnlineStore(self._redis, self.settings.cluster_name, self.settings.online_ttl_s)
        for dataset in await self.features.datasets_with_features():   # warm the online store
            await self.online.put_many(dataset, await self.features.latest_vectors(dataset))

    async def teardown(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        await super().teardown()

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        # Feature sets fitted in this chunk are not committed yet: later batches of the
        # same dataset in the chunk must reuse them, not fit again.
        self._fitted_in_chunk: dict[tuple[str, str], object] = {}
        for record in records:
            event = self.expect(record, effects, RawIngested)
            if event is None:
                continue
            if event.duplicate_of is not None:
                continue  # the batch was prepared when it first arrived
            try:
                await self._prepare(event, effects)
            except Exception as exc:  # a spec that does not fit this data: refused, not retried forever
                from ml.transforms import FeatureSpecError

                if not isinstance(exc, (FeatureSpecError, ValueError)):
                    raise
                effects.dead_letters.append(DeadLetter(
                    self.topic, self.partition, record.offset, record.key, record.value,
                    printable(f"preparation of batch {event.batch_id} ({event.dataset}) failed: {exc}")))
        return effects

    async def _prepare(self, event: RawIngested, effects: BatchEffects) -> None:
        from ml.features import FeatureSpec, FittedFeatureSet

        spec_toml = await self.features.spec(event.dataset)
        if spec_toml is None:
            return  # no feature spec for this dataset: nothing to prepare
        spec = FeatureSpec.from_toml(spec_toml)
        stored = await self.features.latest_set(event.dataset, spec_toml)
        if stored is not None and await self.features.prepared(stored.feature_set_id, event.batch_id):
            return  # a replay: this batch's features were committed with the offset before
        fitted_earlier = self._fitted_in_chunk.get((event.dataset, spec_toml))
        fmt = await self.pool.fetchval("SELECT format FROM raw_batches WHERE batch_id = $1", event.batch_id)
        fitted = FittedFeatureSet.from_bytes(stored.fitted) if stored is not None else fitted_earlier
        # Everything CPU-bound runs in a thread so the actor keeps answering heartbeats.
        with _collection_paused():
            read = {*spec.raw_columns, spec.key, spec.label} - {None}   # what the feature set reads
            lines, rows = await read_raw_rows(self.pool, event.batch_id, fmt == "csv", read)
            result = await asyncio.to_thread(prepare_rows, spec, fitted, lines, rows)
            del rows
        fitted_here = fitted is None
        self._fitted_in_chunk[(event.dataset, spec_toml)] = result.fitted
        fsid = stored_feature_set_id(event.dataset, result.fitted.feature_set_id)
        store, names, fitted_bytes = self.features, list(result.fitted.feature_names), result.fitted.to_bytes()

        online = self.online

        async def write(conn) -> None:
            # The online copy is written while PostgreSQL takes the offline rows (two other
            # processes), and is complete before the transaction commits.
            copying = asyncio.create_task(
                online.put_vectors(event.dataset, fsid, result.latest_keys, result.latest))
            try:
                if fitted_here:
                    await store.add_set(conn, event.dataset, spec_toml, fsid, fitted_bytes, names, event.batch_id)
                await store.write_batch(conn, fsid, event.batch_id, result.rows, result.quarantined,
                                        result.report_json)
            except BaseException:
                copying.cancel()
                await asyncio.gather(copying, return_exceptions=True)
                raise
            await copying

        effects.writes.append(write)
        out, quarantined = result.rows, result.quarantined
        done = FeaturesGenerated(dataset=event.dataset, feature_set_id=fsid, batch_id=event.batch_id,
                                 n_rows=len(out), n_quarantined=len(quarantined), fitted_here=fitted_here,
                                 correlation_id=event.correlation_id, causation_id=event.msg_id)
        effects.outbox.append(("features.generated", event.dataset.encode(), encode(done),
                               f"features:{fsid}:{event.batch_id}"))
        self.log.info("batch prepared", dataset=event.dataset, batch=event.batch_id, feature_set=fsid,
                      rows=len(out), quarantined=len(quarantined))
