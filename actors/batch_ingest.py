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

from actors.batch_parse import IngestError, check_options, file_checksum, parse_chunks, parse_file, validate_dataset_name
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


class BatchLoader(PartitionWorker):
    """Consumes one partition of ``ingest.tasks``: stores its share of a batch's rows."""

    consumer = "batch-loader"

    def __init__(self, settings: Settings, name: str, topic: str = "ingest.tasks", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)
        self.store = None
        self.current: dict | None = None

    async def open(self) -> None:
        from storage.raw_store import PostgresRawStore

        self.store = PostgresRawStore(self.pool)

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        for record in records:
            task = self.expect(record, effects, LoadPartition)
            if task is not None:
                await self._load(task, effects)
        return effects

    async def _load(self, task: LoadPartition, effects: BatchEffects) -> None:
        """Store this partition's rows, chunk by chunk, after the ones already stored; the
        task's completion and, for the last partition, the batch's, join the offset's
        transaction.

        The rows of a partition are appended in line order, each chunk in a transaction
        fenced by this worker's claim, so what is stored is a prefix of the partition and a
        restarted loader resumes after its last stored line. While one chunk is written the
        next is parsed (in a thread: the event loop stays free for the write and heartbeats).
        """
        existing = await self.store.batch(task.batch_id)
        if existing is not None and existing.complete:  # a replayed task: the work is done
            effects.writes.append(batch_requests_complete(task.batch_id))
            return
        stored, after_line = await self.store.stored_through(task.batch_id, task.partition)
        self.current = {"batch_id": task.batch_id, "rows": stored}
        try:
            chunks = parse_chunks(task.path, task.format, key=task.key_column, time=task.time_column,
                                  label=task.label_column, partition=task.partition, n_partitions=task.n_partitions,
                                  after_line=after_line, chunk_rows=WRITE_CHUNK)
            writing: asyncio.Task | None = None
            try:
                while True:
                    chunk = await asyncio.to_thread(next, chunks, None)
                    if writing is not None:
                        await writing
                        self.current["rows"] = stored
                    if chunk is None:
                        break
                    stored += len(chunk.records)
                    writing = asyncio.ensure_future(self.store.append_chunk(
                        task.batch_id, task.dataset, task.partition, chunk.records, chunk.errors, n_rows=stored,
                        hold=self._hold))
            finally:
                if writing is not None and not writing.done():
                    await asyncio.wait([writing])  # never leave a write behind (its error is raised above)
                chunks.close()
        except (IngestError, OSError) as exc:  # the file changed or vanished since it was accepted
            effects.writes.append(set_request(task.request_id, task.dataset, "failed", task.batch_id, str(exc)))
            return
        effects.writes.append(self._finish(task, stored))
        self.current = None

    async def _hold(self, conn) -> None:
        """Fence a chunk's transaction with this incarnation's claim of the partition."""
        await self.ledger.hold(conn, self.claim)

    def _finish(self, task: LoadPartition, n_rows: int):
        store = self.store

        async def write(conn) -> None:
            await conn.execute(
                "INSERT INTO raw_batch_tasks (batch_id, partition, n_partitions, n_rows) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (batch_id, partition) DO NOTHING",
                task.batch_id, task.partition, task.n_partitions, n_rows)
            # Serialise the loaders of one batch on its row, then see whether all are done.
            await conn.execute("SELECT 1 FROM raw_batches WHERE batch_id = $1 FOR UPDATE", task.batch_id)
            done = await conn.fetchval("SELECT count(*) FROM raw_batch_tasks WHERE batch_id = $1", task.batch_id)
            if done < task.n_partitions:
                return

            def announce(batch):
                event = RawIngested(dataset=batch.dataset, batch_id=batch.batch_id, checksum=batch.checksum,
                                    n_rows=batch.n_rows, n_rejected=batch.n_rejected,
                                    correlation_id=task.correlation_id, causation_id=task.msg_id)
                return "raw.ingested", batch.dataset.encode(), encode(event)

            await store.complete_batch(task.batch_id, announce, conn=conn)
            await batch_requests_complete(task.batch_id)(conn)
        return write

    def heartbeat(self) -> dict:
        beat = super().heartbeat()
        beat["loading"] = dict(self.current) if self.current else None
        return beat


__all__ = ["IngestCoordinator", "BatchLoader"]
