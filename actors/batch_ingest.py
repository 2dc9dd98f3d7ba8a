"""Offline ingestion: a coordinator turns each IngestBatch / SourceAvailable into one
raw batch and N partition tasks; N loaders store their share of the rows unchanged.

Both are partition workers: what they do for a message and the offset they consumed
commit in one transaction. A loader parses only the lines its partition owns and
appends them in chunks, each chunk in a transaction fenced by its claim; a loader killed
mid-batch replays its task and resumes after the last line it stored, so every row is
stored exactly once. The last loader to finish completes the batch and announces it
(``raw.ingested``) through the outbox.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Iterator

from actors.batch_parse import (
    IngestError, ParsedChunk, check_options, file_checksum, parse_chunks, parse_file, validate_dataset_name,
)
from actors.partition_worker import PartitionWorker
from messages.base import caused_by
from messages.codec import encode
from messages.ingestion import IngestBatch, LoadPartition, RawIngested, SourceAvailable
from storage.base import BatchEffects
from storage.kafka import Record
from storage.settings import Settings

#: Rows of a partition written per COPY (and transaction).
WRITE_CHUNK = 20_000


def set_request(request_id: str, dataset: str, state: str, batch_id: str | None = None, error: str | None = None):
    """A write (for BatchEffects.writes) that records where an ingestion request stands."""
    async def write(conn) -> None:
        await conn.execute(
            "INSERT INTO ingest_requests (request_id, dataset, state, batch_id, error) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (request_id) DO UPDATE SET state = EXCLUDED.state, batch_id = EXCLUDED.batch_id,"
            " error = EXCLUDED.error, updated_at = now()",
            request_id, dataset[:63], state, batch_id, error)
    return write


def follow_batch(request_id: str, dataset: str, batch_id: str):
    """A write that makes the request wait on ``batch_id``, or complete at once if the batch
    completed meanwhile. It locks the batch row, as the completing loader does, so the two
    cannot miss each other (a resubmission racing the batch's completion used to wait forever)."""
    async def write(conn) -> None:
        state = await conn.fetchval("SELECT state FROM raw_batches WHERE batch_id = $1 FOR UPDATE", batch_id)
        await set_request(request_id, dataset, "complete" if state == "complete" else "loading", batch_id)(conn)
    return write


def batch_requests_complete(batch_id: str):
    """A write that marks every request waiting on ``batch_id`` complete (the same file
    may have been submitted again while it was loading)."""
    async def write(conn) -> None:
        await conn.execute("UPDATE ingest_requests SET state = 'complete', updated_at = now()"
                           " WHERE batch_id = $1 AND state = 'loading'", batch_id)
    return write


class IngestCoordinator(PartitionWorker):
    """Consumes ``ingest``: checks the source, opens the batch, hands out partition tasks."""

    consumer = "ingest-coordinator"

    def __init__(self, settings: Settings, name: str, topic: str = "ingest", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)
        self.store = None

    async def open(self) -> None:
        from storage.raw_store import PostgresRawStore

        self.store = PostgresRawStore(self.pool)

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        for record in records:
            command = self.expect(record, effects, IngestBatch, SourceAvailable)
            if command is not None:
                await self._open_batch(command, effects)
        return effects

    async def _open_batch(self, command: IngestBatch | SourceAvailable, effects: BatchEffects) -> None:
        request = command.msg_id
        try:
            validate_dataset_name(command.dataset)
            check_options(command.format, key=command.key_column, time=command.time_column,
                          label=command.label_column)
            if not os.path.isfile(command.path):
                raise IngestError("path", f"{command.path!r} is not a readable file on the ingestion workers")
            next(iter(parse_file(command.path, command.format, key=command.key_column,
                                 time=command.time_column, label=command.label_column)), None)
            checksum = file_checksum(command.path)
        except IngestError as exc:
            effects.writes.append(set_request(request, command.dataset, "failed", error=str(exc)))
            return
        batch_id, duplicate_of = await self.store.begin_batch(
            command.dataset, checksum, command.format, command.path, command.key_column,
            command.time_column, command.label_column)
        if duplicate_of is not None:
            batch = await self.store.batch(duplicate_of)
            effects.writes.append(set_request(request, command.dataset, "duplicate", batch_id=duplicate_of))
            done = RawIngested(dataset=command.dataset, batch_id=duplicate_of, checksum=checksum,
                               n_rows=batch.n_rows, n_rejected=batch.n_rejected, duplicate_of=duplicate_of,
                               **caused_by(command))
            effects.outbox.append(("raw.ingested", command.dataset.encode(), encode(done),
                                   f"raw.ingested:{request}"))
            return
        effects.writes.append(follow_batch(request, command.dataset, batch_id))
        n = self.settings.ingest_workers
        for partition in range(n):
            task = LoadPartition(request_id=request, batch_id=batch_id, dataset=command.dataset,
                                 path=command.path, format=command.format, partition=partition,
                                 n_partitions=n, key_column=command.key_column,
                                 time_column=command.time_column, label_column=command.label_column,
                                 **caused_by(command))
            effects.outbox.append(("ingest.tasks", batch_id.encode(), encode(task),
                                   f"task:{batch_id}:{partition}", partition))


def _next_chunk(chunks: Iterator[ParsedChunk]) -> ParsedChunk | Exception | None:
    """The next chunk, ``None`` at the end, or the error that says the file cannot be read
    any more (it changed or vanished since it was accepted)."""
    try:
        return next(chunks, None)
    except (IngestError, OSError) as exc:
        return exc


class _Load:
    """A partition task a loader is working on: where its message is, its chunks to come,
    and the rows of the partition stored so far."""

    __slots__ = ("chunks", "offset", "stored", "task")

    def __init__(self, offset: int, task: LoadPartition, chunks: Iterator[ParsedChunk], stored: int) -> None:
        self.offset, self.task, self.chunks, self.stored = offset, task, chunks, stored


class BatchLoader(PartitionWorker):
    """Consumes one partition of ``ingest.tasks``: stores its share of each batch's rows.

    A loader works on several tasks at once, one chunk of each in turn, so a batch
    submitted while a large one is loading is not kept waiting until that one is done
    (several datasets ingest at once). The consumed offset advances past a task only
    when it is done; a task met again after a restart resumes after its partition's
    last stored line, or is skipped when its partition is done already.
    """

    consumer = "batch-loader"
    #: Tasks worked on at once; more wait in the topic.
    max_loads = 8

    def __init__(self, settings: Settings, name: str, topic: str = "ingest.tasks", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)  # (its own step(): no handle())
        self.store = None
        self.loads: list[_Load] = []
        self._read_to = 0        # the offset after the last record read
        self._writing: asyncio.Future | None = None

    async def open(self) -> None:
        from storage.raw_store import PostgresRawStore

        self.store = PostgresRawStore(self.pool)
        self._read_to = self.offset
        # The parse thread holds the GIL for up to the switch interval at a time, and a COPY's
        # data leaves the event loop 64 KiB at a time: at the default 5 ms, a quarter to a third
        # of the COPY's time in PostgreSQL was spent waiting for the next piece; at 1 ms, a tenth.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))

    async def step(self) -> None:
        """Take new tasks, store one chunk of the next task in turn, and commit what finished
        with the offset of the oldest task still loading. While tasks are loading, new ones
        are looked for only while a chunk is parsed, and the partition is paused in
        between: its fetcher would otherwise poll the broker every few milliseconds."""
        effects = BatchEffects()
        room = self.max_loads - len(self.loads)
        if not self.loads:
            records = await self._reader.read(timeout_ms=200, max_records=room)
            await self._take(records, effects)
        else:
            load = self.loads.pop(0)
            parsing = asyncio.ensure_future(asyncio.to_thread(_next_chunk, load.chunks))
            records = []
            try:
                if room:
                    records = await self._reader.read(timeout_ms=50, max_records=room, idle_backoff=False,
                                                      then_pause=True)
            finally:
                parsed = await parsing
            await self._take(records, effects, busy=load)
            await self._turn(load, parsed, effects)
        self.n_processed += len(records)
        next_offset = min(load.offset for load in self.loads) if self.loads else self._read_to
        if next_offset == self.offset and not (effects.writes or effects.dead_letters or effects.outbox):
            return
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing  # what the commit announces must have landed
        await self.ledger.commit(self.claim, next_offset, effects)
        self.offset = next_offset
        self.last_checkpoint_offset, self.last_checkpoint_at = next_offset, time.time()

    async def _take(self, records: list[Record], effects: BatchEffects, busy: _Load | None = None) -> None:
        """Start the tasks of ``records`` (``busy``: the load whose chunk is being parsed)."""
        for record in records:
            self._read_to = record.offset + 1
            task = self.expect(record, effects, LoadPartition)
            if task is None:
                continue
            if any(load.task.batch_id == task.batch_id and load.task.partition == task.partition
                   for load in (*self.loads, busy) if load is not None):
                continue  # the same task again (a redelivery): the load under way stores it
            await self._start(record.offset, task, effects)

    async def _start(self, offset: int, task: LoadPartition, effects: BatchEffects) -> None:
        """Begin a task after what its partition has stored already; a task whose partition
        (or whole batch) is done already only completes the requests waiting on it, and a
        task of a batch that does not exist fails its request."""
        done = await self.pool.fetchrow(
            "SELECT b.state = 'complete' OR t.batch_id IS NOT NULL AS done FROM raw_batches b"
            " LEFT JOIN raw_batch_tasks t ON t.batch_id = b.batch_id AND t.partition = $2 WHERE b.batch_id = $1",
            task.batch_id, task.partition)
        if done is None:  # (its batch is begun before a task is published; batches are never removed)
            effects.writes.append(set_request(task.request_id, task.dataset, "failed",
                                              error=f"batch: no raw batch {task.batch_id!r}"))
            return
        if done["done"]:  # a replayed task: the work is done
            effects.writes.append(batch_requests_complete(task.batch_id))
            return
        stored, after_line = await self.store.stored_through(task.batch_id, task.partition)
        try:
            chunks = parse_chunks(task.path, task.format, key=task.key_column, time=task.time_column,
                                  label=task.label_column, partition=task.partition, n_partitions=task.n_partitions,
                                  after_line=after_line, chunk_rows=WRITE_CHUNK)
        except (IngestError, OSError) as exc:  # the file changed or vanished since it was accepted
            effects.writes.append(set_request(task.request_id, task.dataset, "failed", task.batch_id, str(exc)))
            return
        self.loads.append(_Load(offset, task, chunks, stored))

    async def _turn(self, load: _Load, parsed: ParsedChunk | Exception | None, effects: BatchEffects) -> None:
        """Write the chunk just parsed for ``load`` in the background, once the previous
        chunk's write is done (its task finishes when there is no chunk left). Rows of a
        partition are appended in line order, each chunk in a transaction fenced by this
        loader's claim, so what is stored of a partition is always a prefix of it."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing
        task = load.task
        if isinstance(parsed, Exception):  # the file changed or vanished since it was accepted
            load.chunks.close()
            effects.writes.append(set_request(task.request_id, task.dataset, "failed", task.batch_id, str(parsed)))
        elif parsed is None:
            effects.writes.append(self._finish(task, load.stored))
        else:
            load.stored += len(parsed.records)
            self._writing = asyncio.ensure_future(self.store.append_chunk(
                task.batch_id, task.dataset, task.partition, parsed.records, parsed.errors, n_rows=load.stored,
                hold=self._hold))
            self.loads.append(load)

    async def _hold(self, conn) -> None:
        """Fence a chunk's transaction with this incarnation's claim of the partition."""
        await self.ledger.hold(conn, self.claim)

    async def teardown(self) -> None:
        if self._writing is not None and not self._writing.done():
            await asyncio.wait([self._writing], timeout=30)  # a write in flight ends before the pool closes
        for load in self.loads:
            try:
                load.chunks.close()
            except ValueError:  # still being parsed in its thread (the worker was cancelled)
                pass
        await super().teardown()

    def _finish(self, task: LoadPartition, n_rows: int):
        store = self.store

        async def write(conn) -> None:
            # Serialise the loaders of one batch on its row, then see whether all are done. The
            # row lock comes first: the insert below takes a key-share lock on the same row (its
            # foreign key), and two loaders each holding one while asking for the row lock
            # deadlocked when they finished at the same time.
            await conn.execute("SELECT 1 FROM raw_batches WHERE batch_id = $1 FOR UPDATE", task.batch_id)
            await conn.execute(
                "INSERT INTO raw_batch_tasks (batch_id, partition, n_partitions, n_rows) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (batch_id, partition) DO NOTHING",
                task.batch_id, task.partition, task.n_partitions, n_rows)
            done, n_stored = await conn.fetchrow(
                "SELECT count(*), sum(n_rows) FROM raw_batch_tasks WHERE batch_id = $1", task.batch_id)
            if done < task.n_partitions:
                return

            def announce(batch):
                event = RawIngested(dataset=batch.dataset, batch_id=batch.batch_id, checksum=batch.checksum,
                                    n_rows=batch.n_rows, n_rejected=batch.n_rejected,
                                    correlation_id=task.correlation_id, causation_id=task.msg_id)
                return "raw.ingested", batch.dataset.encode(), encode(event)

            # Each loader counted the rows of its partition in the transactions that stored them.
            await store.complete_batch(task.batch_id, announce, conn=conn, n_rows=n_stored)
            await batch_requests_complete(task.batch_id)(conn)
        return write

    def heartbeat(self) -> dict:
        beat = super().heartbeat()
        beat["loading"] = [{"batch_id": load.task.batch_id, "dataset": load.task.dataset, "rows": load.stored}
                           for load in self.loads] or None
        return beat


__all__ = ["IngestCoordinator", "BatchLoader"]
