"""The raw store of the offline line (asyncpg): batches of records stored unchanged.

A batch is begun once per (dataset, file checksum): the same file submitted again is
recognised and stores nothing; a batch still ``loading`` (its loader was restarted)
is resumed under the same ``batch_id``.

Rows are written per partition in one of two ways. :meth:`PostgresRawStore.append_chunk`
is the loaders' path: a partition's rows arrive in line order, so what is stored of a
partition is a prefix of it, and a chunk is one binary COPY straight into
``raw_records`` after :meth:`~PostgresRawStore.stored_through`, with the chunk's rejects
and the partition's progress in the same transaction (and the caller's fence, when it
gives one). :meth:`~PostgresRawStore.write_rows` takes rows in any order and skips the
lines already stored (COPY into a temporary table, then ``INSERT ... ON CONFLICT DO
NOTHING``): slower, for replays of unknown extent. Completing a batch counts what landed
and, in the same transaction, can put its announcement in the outbox.

Records and rejects are append-only in the database itself (triggers refuse UPDATE,
DELETE and TRUNCATE); a batch row changes once, from ``loading`` to ``complete``.

The store takes rows and rejects structurally (anything with ``line_no`` and
``values``, or ``line_no``, ``field``, ``reason`` and ``raw``), such as
:class:`actors.batch_parse.ParsedRow` and :class:`actors.batch_parse.RowError`.
"""

from __future__ import annotations

import abc
import re
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol, Sequence

import asyncpg
import msgspec

from messages.types import Name

#: The dataset-name pattern of :data:`messages.types.Name`, checked again before any write.
_DATASET = re.compile(Name.__metadata__[0].pattern)
_CHECKSUM = re.compile(r"^[0-9a-f]{64}\Z")
_COLUMN = re.compile(r"^[^\x00-\x1f\x7f]{1,128}\Z")
FORMATS = ("csv", "jsonl", "parquet")
#: Longest text kept in a reject's ``field``, ``reason`` and ``raw`` columns.
MAX_REJECT_TEXT = 4096

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class RowLike(Protocol):
    line_no: int
    values: Mapping[str, Any]


class RejectLike(Protocol):
    line_no: int
    field: str | None
    reason: str
    raw: str


class UnknownBatch(LookupError):
    """No batch has this id."""


class BatchConflict(ValueError):
    """The batch cannot take this write: it is complete, belongs to another dataset,
    or is loading with other options."""


@dataclass(frozen=True)
class RawBatch:
    batch_id: str
    dataset: str
    checksum: str
    format: str
    source_path: str
    key_column: str | None
    time_column: str | None
    label_column: str | None
    n_rows: int
    n_rejected: int
    state: str          # 'loading' | 'complete'
    created_at: float   # seconds since the epoch
    completed_at: float | None

    @property
    def complete(self) -> bool:
        return self.state == "complete"


@dataclass(frozen=True)
class StoredRow:
    line_no: int
    partition: int
    values: dict[str, Any]


@dataclass(frozen=True)
class StoredReject:
    line_no: int
    field: str | None
    reason: str
    raw: str


#: Builds a batch's announcement from its final counts: (topic, key, payload).
Announce = Callable[[RawBatch], tuple[str, bytes | None, bytes]]
#: Runs first in a write's transaction (receives the connection); raises to refuse the write.
Hold = Callable[[Any], Awaitable[None]]

_RECORD_COLUMNS = ("batch_id", "dataset", "line_no", "partition", "values")


class RawStore(abc.ABC):
    """Port: where offline ingestion keeps batches; adapters below, fakes in tests."""

    @abc.abstractmethod
    async def begin_batch(self, dataset: str, checksum: str, fmt: str, path: str, key: str | None = None,
                          time: str | None = None, label: str | None = None) -> tuple[str, str | None]:
        """``(batch_id, duplicate_of)``: a new or resumed batch (``duplicate_of`` None), or
        the complete batch that already holds this file (``duplicate_of == batch_id``)."""

    @abc.abstractmethod
    async def write_rows(self, batch_id: str, dataset: str, partition: int, rows: Sequence[RowLike]) -> int:
        """Store ``rows`` of one partition; rows already stored are skipped. The number stored now."""

    @abc.abstractmethod
    async def write_rejects(self, batch_id: str, errors: Sequence[RejectLike]) -> int:
        """Store refused lines; lines already stored are skipped. The number stored now."""

    @abc.abstractmethod
    async def complete_batch(self, batch_id: str, announce: Announce | None = None) -> RawBatch:
        """Count what landed and mark the batch complete (idempotent)."""

    @abc.abstractmethod
    async def batch(self, batch_id: str) -> RawBatch | None: ...


_BATCH_COLUMNS = ("batch_id, dataset, checksum, format, source_path, key_column, time_column, label_column,"
                  " n_rows, n_rejected, state, extract(epoch FROM created_at) AS created,"
                  " extract(epoch FROM completed_at) AS completed")


class PostgresRawStore(RawStore):
    """The raw store in PostgreSQL (tables of ``schema/0003_raw_batches.sql``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def begin_batch(self, dataset: str, checksum: str, fmt: str, path: str, key: str | None = None,
                          time: str | None = None, label: str | None = None) -> tuple[str, str | None]:
        _check_batch_args(dataset, checksum, fmt, path, key, time, label)
        batch_id = uuid.uuid4().hex
        inserted = await self._pool.fetchval(
            "INSERT INTO raw_batches (batch_id, dataset, checksum, format, source_path, key_column, time_column,"
            " label_column) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (dataset, checksum) DO NOTHING RETURNING batch_id",
            batch_id, dataset, checksum, fmt, path, key, time, label,
        )
        if inserted is not None:
            return inserted, None
        found = await self.find_batch(dataset, checksum)
        if found is None:  # cannot happen: batches are never deleted
            raise RuntimeError(f"raw batch of {dataset!r} with checksum {checksum} vanished")
        if found.complete:
            return found.batch_id, found.batch_id
        options = (fmt, key, time, label)
        stored = (found.format, found.key_column, found.time_column, found.label_column)
        if options != stored:
            raise BatchConflict(
                f"batch {found.batch_id} of {dataset!r} is loading this file with format/key/time/label"
                f" {stored}, not {options}: resubmit with those options to resume it")
        return found.batch_id, None

    async def write_rows(self, batch_id: str, dataset: str, partition: int, rows: Sequence[RowLike]) -> int:
        records = [(row.line_no, partition, _encode_values(row)) for row in rows]
        async with self._pool.acquire() as conn, conn.transaction():
            await _loading_batch(conn, batch_id, dataset)
            if not records:
                return 0
            await conn.execute(  # one round trip; the notice "already exists" is not wanted
                "SET LOCAL client_min_messages = warning;"
                ' CREATE TEMP TABLE IF NOT EXISTS raw_records_in (line_no integer, partition integer, "values" jsonb)'
                " ON COMMIT DELETE ROWS")
            await conn.copy_records_to_table("raw_records_in", records=records,
                                             columns=("line_no", "partition", "values"))
            status = await conn.execute(
                'INSERT INTO raw_records (batch_id, dataset, line_no, partition, "values")'
                ' SELECT $1, $2, line_no, partition, "values" FROM raw_records_in'
                " ON CONFLICT (batch_id, line_no) DO NOTHING",
                batch_id, dataset,
            )
        return _count(status)

    async def stored_through(self, batch_id: str, partition: int) -> tuple[int, int]:
        """``(n_rows, last line)`` stored of one partition of a batch (``(0, 0)`` when none).
        Rows appended with :meth:`append_chunk` are the partition's prefix up to that line."""
        row = await self._pool.fetchrow(
            "SELECT count(*) AS n, COALESCE(max(line_no), 0) AS last FROM raw_records"
            " WHERE batch_id = $1 AND partition = $2", batch_id, partition)
        return row["n"], row["last"]

    async def append_chunk(self, batch_id: str, dataset: str, partition: int, records: Sequence[tuple[int, str]],
                           errors: Sequence[RejectLike] = (), *, n_rows: int | None = None,
                           hold: Hold | None = None) -> None:
        """Append ``records`` (``(line_no, values as JSON text)``, in line order, all after
        :meth:`stored_through`) of one partition with one COPY, store ``errors`` (lines
        already stored are skipped) and record ``n_rows`` as the partition's progress, in one
        transaction that first runs ``hold`` (a writer's fence) and locks the loading batch.
        A line stored already is :class:`BatchConflict` and nothing of the chunk is stored."""
        async with self._pool.acquire() as conn, conn.transaction():
            if hold is not None:
                await hold(conn)
            await _loading_batch(conn, batch_id, dataset)
            if records:
                try:
                    await conn.copy_records_to_table(
                        "raw_records", columns=_RECORD_COLUMNS,
                        records=[(batch_id, dataset, line_no, partition, values) for line_no, values in records])
                except asyncpg.UniqueViolationError:
                    raise BatchConflict(f"batch {batch_id}, partition {partition}: lines {records[0][0]} to"
                                        f" {records[-1][0]} overlap what is stored; append after the last stored"
                                        " line") from None
            if errors:
                await _insert_rejects(conn, batch_id, errors)
            if n_rows is not None:
                await conn.execute(
                    "INSERT INTO raw_batch_progress (batch_id, partition, n_rows) VALUES ($1, $2, $3)"
                    " ON CONFLICT (batch_id, partition) DO UPDATE SET n_rows = EXCLUDED.n_rows, updated_at = now()",
                    batch_id, partition, n_rows)

    async def write_rejects(self, batch_id: str, errors: Sequence[RejectLike]) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            await _loading_batch(conn, batch_id, None)
            if not errors:
                return 0
            return await _insert_rejects(conn, batch_id, errors)

    async def complete_batch(self, batch_id: str, announce: Announce | None = None, *,
                             conn: asyncpg.Connection | None = None, n_rows: int | None = None) -> RawBatch:
        """Count the stored rows and rejects and mark the batch complete; a complete batch
        is returned as it is. With ``announce``, its message goes into the outbox in the
        same transaction (once per batch, whatever the number of calls). With ``conn``,
        the work joins that connection's transaction.

        ``n_rows``, when given, is taken as the number of stored rows instead of counting
        them (a count over a large fresh batch visits every row): only for a caller that
        counted them in the very transactions that stored them, as the loaders do."""
        if conn is not None:
            async with conn.transaction():
                return await _complete(conn, batch_id, announce, n_rows)
        async with self._pool.acquire() as own, own.transaction():
            return await _complete(own, batch_id, announce, n_rows)

    async def batch(self, batch_id: str) -> RawBatch | None:
        row = await self._pool.fetchrow(f"SELECT {_BATCH_COLUMNS} FROM raw_batches WHERE batch_id = $1", batch_id)
        return None if row is None else _batch(row)

    async def find_batch(self, dataset: str, checksum: str) -> RawBatch | None:
        row = await self._pool.fetchrow(
            f"SELECT {_BATCH_COLUMNS} FROM raw_batches WHERE dataset = $1 AND checksum = $2", dataset, checksum)
        return None if row is None else _batch(row)

    async def rows(self, batch_id: str, partition: int | None = None) -> list[StoredRow]:
        """The stored records of a batch (of one partition), in line order."""
        found = await self._pool.fetch(
            'SELECT line_no, partition, "values"::text AS v FROM raw_records'
            " WHERE batch_id = $1 AND ($2::integer IS NULL OR partition = $2) ORDER BY line_no",
            batch_id, partition,
        )
        return [StoredRow(r["line_no"], r["partition"], _decoder.decode(r["v"])) for r in found]

    async def rejects(self, batch_id: str) -> list[StoredReject]:
        found = await self._pool.fetch(
            "SELECT line_no, field, reason, raw FROM raw_rejects WHERE batch_id = $1 ORDER BY line_no", batch_id)
        return [StoredReject(r["line_no"], r["field"], r["reason"], r["raw"]) for r in found]


def _check_batch_args(dataset: str, checksum: str, fmt: str, path: str, key: str | None, time: str | None,
                      label: str | None) -> None:
    if not isinstance(dataset, str) or not _DATASET.match(dataset):
        raise ValueError(f"dataset: {dataset!r} is not a valid name")
    if not isinstance(checksum, str) or not _CHECKSUM.match(checksum):
        raise ValueError("checksum: expected 64 lowercase hex digits (sha256)")
    if fmt not in FORMATS:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if not isinstance(path, str) or not path or "\x00" in path or len(path) > 4096:
        raise ValueError("path: expected 1 to 4096 characters without NUL")
    for option, column in (("key", key), ("time", time), ("label", label)):
        if column is not None and (not isinstance(column, str) or not _COLUMN.match(column)):
            raise ValueError(f"{option}: {column!r} is not a valid column name")


async def _loading_batch(conn: asyncpg.Connection, batch_id: str, dataset: str | None) -> None:
    """Lock the batch row against completion for this transaction; refuse a closed or foreign batch."""
    row = await conn.fetchrow("SELECT dataset, state FROM raw_batches WHERE batch_id = $1 FOR SHARE", batch_id)
    if row is None:
        raise UnknownBatch(f"no raw batch {batch_id!r}")
    if dataset is not None and row["dataset"] != dataset:
        raise BatchConflict(f"batch {batch_id} belongs to dataset {row['dataset']!r}, not {dataset!r}")
    if row["state"] != "loading":
        raise BatchConflict(f"batch {batch_id} is {row['state']}: nothing more is stored in it")


async def _insert_rejects(conn: asyncpg.Connection, batch_id: str, errors: Sequence[RejectLike]) -> int:
    """Store refused lines (lines already stored are skipped); the number stored now."""
    status = await conn.execute(
        "INSERT INTO raw_rejects (batch_id, line_no, field, reason, raw)"
        " SELECT $1, l, f, r, w FROM unnest($2::integer[], $3::text[], $4::text[], $5::text[]) AS u(l, f, r, w)"
        " ON CONFLICT (batch_id, line_no) DO NOTHING",
        batch_id,
        [e.line_no for e in errors],
        [None if e.field is None else _clean(e.field) for e in errors],
        [_clean(e.reason) for e in errors],
        [_clean(getattr(e, "raw", "") or "") for e in errors],
    )
    return _count(status)


async def _complete(conn: asyncpg.Connection, batch_id: str, announce: Announce | None,
                    n_rows: int | None = None) -> RawBatch:
    row = await conn.fetchrow(f"SELECT {_BATCH_COLUMNS} FROM raw_batches WHERE batch_id = $1 FOR UPDATE", batch_id)
    if row is None:
        raise UnknownBatch(f"no raw batch {batch_id!r}")
    if row["state"] == "loading":
        row = await conn.fetchrow(
            "UPDATE raw_batches SET state = 'complete', completed_at = now(),"
            " n_rows = COALESCE($2, (SELECT count(*) FROM raw_records WHERE batch_id = $1)),"
            " n_rejected = (SELECT count(*) FROM raw_rejects WHERE batch_id = $1)"
            f" WHERE batch_id = $1 RETURNING {_BATCH_COLUMNS}",
            batch_id, n_rows,
        )
    batch = _batch(row)
    if announce is not None:
        topic, key, payload = announce(batch)
        await conn.execute(
            "INSERT INTO outbox (topic, msg_key, payload, dedup_key) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (dedup_key) DO NOTHING",
            topic, key, payload, f"raw-batch-complete:{batch_id}",
        )
    return batch


def _batch(row: asyncpg.Record) -> RawBatch:
    return RawBatch(row["batch_id"], row["dataset"], row["checksum"], row["format"], row["source_path"],
                    row["key_column"], row["time_column"], row["label_column"], row["n_rows"], row["n_rejected"],
                    row["state"], float(row["created"]),
                    None if row["completed"] is None else float(row["completed"]))


def _encode_values(row: RowLike) -> str:
    text = _encoder.encode(row.values)
    if b"\\u0000" in text and any(isinstance(v, str) and "\x00" in v for v in _all_text(row.values)):
        raise ValueError(f"line {row.line_no}: a NUL character cannot be stored (jsonb refuses it);"
                         " the parser reports such lines as row errors")
    return text.decode()


def _all_text(values: Mapping[str, Any]) -> Iterable[Any]:
    for name, value in values.items():
        yield name
        yield value


def _clean(text: str) -> str:
    """Text a PostgreSQL text column takes: no NUL, valid UTF-8, bounded."""
    text = text[:MAX_REJECT_TEXT].replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _count(status: str) -> int:
    """The row count of a command status such as ``INSERT 0 42``."""
    return int(status.rsplit(" ", 1)[-1])


__all__ = ["Announce", "BatchConflict", "Hold", "PostgresRawStore", "RawBatch", "RawStore", "StoredReject", "StoredRow",
           "UnknownBatch"]
