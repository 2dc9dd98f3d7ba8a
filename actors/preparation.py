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
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from actors.partition_worker import PartitionWorker
from actors.raw_values import decode_batch, typed_value
from actors.wiring import WritesOnlineStore
from messages.codec import encode, printable
from messages.features import FeaturesGenerated
from messages.ingestion import RawIngested
from ml.columns import Columns, column_of
from storage.base import BatchEffects, DeadLetter
from storage.feature_store import FeatureRows
from storage.kafka import Record
from storage.postgres import add_dead_letters, add_to_outbox
from storage.settings import Settings

if TYPE_CHECKING:
    from ml.batch_chunks import Chunk

__all__ = ["PreparationWorker", "feature_part", "read_raw_rows", "stored_feature_set_id", "typed_value"]


def stored_feature_set_id(dataset: str, fitted_id: str) -> str:
    """The feature set's id in the stores: its spec and fitted state (``fitted_id``) for one
    dataset; two datasets with the same spec and statistics still have their own sets.

    >>> stored_feature_set_id("a", "0" * 20) != stored_feature_set_id("b", "0" * 20)
    True
    """
    return hashlib.sha256(f"{dataset}\x00{fitted_id}".encode()).hexdigest()[:20]


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


def feature_part(chunk: Chunk, lines: list[int], rows: list | Columns, key: str | None
                 ) -> tuple[FeatureRows, list[str], np.ndarray]:
    """Pure: a transformed piece shaped for the stores: its rows for the offline store,
    and every entity of the piece once with its last vector, for the online store."""
    kept = chunk.report.kept
    if key:
        entity = column_of(rows, key)
        keys = [None if entity[i] is None else str(entity[i]) for i in kept]
    else:
        keys = [None] * len(kept)
    labels = [None] * len(kept) if chunk.y is None else [str(v) for v in chunk.y.tolist()]
    last = {k: j for j, k in enumerate(keys) if k is not None}   # the last row of an entity wins
    latest = chunk.X[np.fromiter(last.values(), dtype=np.intp, count=len(last))]
    return FeatureRows([lines[i] for i in kept], keys, chunk.X, labels), list(last), latest


def _next_part(chunks: Iterator[Chunk], lines: list[int], rows: list | Columns, key: str | None, fsid: str,
               batch_id: str):
    """The next piece transformed, shaped and encoded for the offline store (in a
    thread: the event loop only sends it), or None after the last."""
    from storage.feature_store import PostgresFeatureStore

    with _collection_paused():
        chunk = next(chunks, None)
        if chunk is None:
            return None
        part, latest_keys, latest = feature_part(chunk, lines, rows, key)
        return PostgresFeatureStore.encoded(fsid, batch_id, part), latest_keys, latest


class _OnlineCopy:
    """The pieces' latest vectors written to the online store one after another, in
    order (a later piece's vector of an entity wins), while PostgreSQL takes the rows."""

    def __init__(self, online, dataset: str, feature_set_id: str) -> None:
        self._online, self._dataset, self._fsid = online, dataset, feature_set_id
        self._last: asyncio.Task | None = None

    def add(self, keys: list[str], X: np.ndarray) -> None:
        previous = self._last

        async def after_previous() -> None:
            if previous is not None:
                await previous
            await self._online.put_vectors(self._dataset, self._fsid, keys, X)

        self._last = asyncio.create_task(after_previous())

    async def done(self) -> None:
        if self._last is not None:
            await self._last

    async def cancel(self) -> None:
        if self._last is not None:
            self._last.cancel()   # cancels the piece it waits for, and so on back
            await asyncio.gather(self._last, return_exceptions=True)


async def read_raw_rows(pool, batch_id: str, typed: bool, only: Collection[str] | None = None
                        ) -> tuple[list[int], list | Columns]:
    """The line numbers and decoded rows of a raw batch, in line order (as ``Columns`` when
    they all hold the same columns, as a CSV batch's do); CSV text typed when ``typed``
    (the columns in ``only``, when given), in a thread.

    One query, then decoding: reading in pages and decoding each while the next is read
    was measured to cost more CPU on both sides (one page as one ``string_agg`` text:
    +40 % client, +70 % server), the decoding thread and the event loop taking the GIL
    from each other.
    """
    found = await pool.fetch('SELECT line_no, "values" FROM raw_records WHERE batch_id = $1 ORDER BY line_no',
                             batch_id)
    return [r[0] for r in found], await asyncio.to_thread(decode_batch, [r[1] for r in found], typed, only)


class PreparationWorker(WritesOnlineStore, PartitionWorker):
    consumer = "preparation"
    pause_between_reads = True
    #: One announced batch per transaction: its decoded rows stay in memory until the
    #: transaction that transforms and stores them commits, and a feature set fitted on a
    #: dataset's first batch is committed before its next batch is read (and reused).
    max_records_per_handle = 1

    def __init__(self, settings: Settings, name: str, topic: str = "raw.ingested", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)
        self.features = None

    async def open(self) -> None:
        from actors.wiring import import_plugins, signing_key_bytes
        from storage.feature_store import PostgresFeatureStore

        await asyncio.to_thread(import_plugins, self.settings.plugins)   # a spec's custom steps
        self.features = PostgresFeatureStore(self.pool, signing_key_bytes(self.settings))
        self.open_online_store()
        for dataset in await self.features.datasets_with_features():   # warm the online store
            await self.online.put_many(dataset, await self.features.latest_vectors(dataset))

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        for record in records:
            event = self.expect(record, effects, RawIngested)
            if event is None:
                continue
            if event.duplicate_of is not None:
                continue  # the batch was prepared when it first arrived
            try:
                await self._prepare(event, effects, record)
            except Exception as exc:  # a spec that does not fit this data: refused, not retried forever
                from ml.transforms import FeatureSpecError

                if not isinstance(exc, (FeatureSpecError, ValueError)):
                    raise
                effects.dead_letters.append(self._refused(record, event, exc))
        return effects

    def _refused(self, record: Record, event: RawIngested, exc: Exception) -> DeadLetter:
        return DeadLetter(self.topic, self.partition, record.offset, record.key, record.value,
                          printable(f"preparation of batch {event.batch_id} ({event.dataset}) failed: {exc}"))

    async def _prepare(self, event: RawIngested, effects: BatchEffects, record: Record) -> None:
        from ml.features import FeatureSpec, FittedFeatureSet, fit_feature_set

        spec_toml = await self.features.spec(event.dataset)
        if spec_toml is None:
            return  # no feature spec for this dataset: nothing to prepare
        spec = FeatureSpec.from_toml(spec_toml)
        stored = await self.features.latest_set(event.dataset, spec_toml)
        if stored is not None and await self.features.prepared(stored.feature_set_id, event.batch_id):
            return  # a replay: this batch's features were committed with the offset before
        fitted = FittedFeatureSet.from_bytes(stored.fitted) if stored is not None else None
        fmt = await self.pool.fetchval("SELECT format FROM raw_batches WHERE batch_id = $1", event.batch_id)
        # Everything CPU-bound runs in a thread so the actor keeps answering heartbeats.
        with _collection_paused():
            read = {*spec.raw_columns, spec.key, spec.label} - {None}   # what the feature set reads
            lines, rows = await read_raw_rows(self.pool, event.batch_id, fmt == "csv", read)
            fitted_here = fitted is None
            if fitted_here:
                fitted = await asyncio.to_thread(fit_feature_set, spec, rows)
        fsid = stored_feature_set_id(event.dataset, fitted.feature_set_id)
        new_set = (spec_toml, fitted.to_bytes(), list(fitted.feature_names)) if fitted_here else None
        effects.writes.append(self._write_features(record, event, spec.key, fsid, fitted, new_set, lines, rows))

    def _write_features(self, record: Record, event: RawIngested, key: str | None, fsid: str, fitted,
                        new_set: tuple[str, bytes, list[str]] | None, lines: list[int], rows: list | Columns):
        """The write that transforms the batch piece by piece inside the commit's
        transaction: PostgreSQL stores a piece (one COPY for the batch) and Redis takes
        its latest vectors while the next piece is transformed in a thread. The
        ``features.generated`` message, which counts the rows, is added to the outbox
        at the end. ``new_set`` (spec, fitted state, feature names) is the feature set
        fitted on this batch, stored first. A piece the feature set refuses (a custom
        step raising) rolls all of it back to a savepoint and leaves a dead letter
        instead, as a refused fit does."""
        store, online, log, chunk_rows = self.features, self.online, self.log, self.settings.prepare_chunk_rows

        async def write(conn) -> None:
            from ml.batch_chunks import BatchInChunks
            from ml.transforms import FeatureSpecError

            batch = BatchInChunks(fitted, rows, chunk_rows)
            try:
                async with conn.transaction():   # a savepoint
                    if new_set is not None:
                        spec_toml, fitted_bytes, names = new_set
                        await store.add_set(conn, event.dataset, spec_toml, fsid, fitted_bytes, names, event.batch_id)
                    copy = _OnlineCopy(online, event.dataset, fsid)
                    try:
                        n_rows = await store.write_vectors(conn, fsid, event.batch_id,
                                                           _parts(iter(batch), lines, rows, key, copy, fsid,
                                                                  event.batch_id))
                        await copy.done()
                    except BaseException:
                        await copy.cancel()
                        raise
                    report = batch.report()
                    quarantined = [(lines[q.index], q.reason) for q in report.quarantined]
                    summary = msgspec.structs.replace(report, kept=())   # the kept rows are the stored rows
                    await store.write_quality(conn, fsid, event.batch_id, quarantined, msgspec.json.encode(summary))
                    done = FeaturesGenerated(dataset=event.dataset, feature_set_id=fsid, batch_id=event.batch_id,
                                             n_rows=n_rows, n_quarantined=len(quarantined),
                                             fitted_here=new_set is not None,
                                             correlation_id=event.correlation_id, causation_id=event.msg_id)
            except (FeatureSpecError, ValueError) as exc:
                await add_dead_letters(conn, [self._refused(record, event, exc)])
                return
            await add_to_outbox(conn, [("features.generated", event.dataset.encode(), encode(done),
                                        f"features:{fsid}:{event.batch_id}")])
            log.info("batch prepared", dataset=event.dataset, batch=event.batch_id, feature_set=fsid,
                     rows=n_rows, quarantined=len(quarantined))
        return write


async def _parts(chunks: Iterator[Chunk], lines: list[int], rows: list | Columns, key: str | None,
                 copy: _OnlineCopy, fsid: str, batch_id: str):
    """The batch's pieces for the offline store's COPY, each transformed in a thread
    while the previous one is sent and stored (one piece ahead); each piece's latest
    vectors go to ``copy``."""
    def ahead() -> asyncio.Future:
        return asyncio.ensure_future(asyncio.to_thread(_next_part, chunks, lines, rows, key, fsid, batch_id))

    pending = ahead()
    try:
        while (part := await pending) is not None:
            pending = ahead()
            feature_rows, latest_keys, latest = part
            copy.add(latest_keys, latest)
            yield feature_rows
    finally:
        if not pending.done():   # the COPY gave up: the piece under way is not wanted
            pending.cancel()
