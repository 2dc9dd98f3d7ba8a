"""Offline ingestion, the pure part: checksum, parse and partition one source file.

Nothing here touches a database, the broker or Ray; the only I/O is reading the file
whose path is given, streamed in bounded pieces (a file of any size is parsed in
memory bounded by ``max_row_bytes`` and the chunk size).

The parser keeps values as they are in the file ("stored unchanged"): CSV fields stay
strings, JSONL keeps its JSON scalars. What cannot be stored unchanged, or is not a
record at all, becomes a :class:`RowError` that names the line, the field when there
is one, and the reason; the parser then goes on with the next line, so the good rows
of a batch still land. Problems with the file as a whole (empty file, missing or
hostile columns, unknown format, bad dataset name) raise :class:`IngestError` before
any row is produced.

Line numbers are physical lines of the file, counted from 1 (the CSV header is line
1); a CSV record whose quoted field spans several lines has the number of its first
line.

A loader stores one partition of a file: :func:`parse_chunks` gives it only the lines
its partition owns (:func:`actors.batch_rules.line_owner`: the partition of the key
when the key can be read, else the line number modulo the number of partitions), in
chunks of values already encoded as the JSON text the raw store keeps. Lines of other
partitions are dropped before any value is built. :func:`parse_file` gives the same
records one at a time, decoded.

Examples
--------
>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "people.csv"
>>> _ = path.write_bytes(b'id,name,age\\n1,Ada,36\\n2,"Grace, H.",x,y\\n3,Alan,41\\n')
>>> for item in parse_file(path, "csv", key="id", time=None, label=None):
...     print(item)
line 2: {'id': '1', 'name': 'Ada', 'age': '36'}
line 3: expected 3 fields, found 4
line 4: {'id': '3', 'name': 'Alan', 'age': '41'}
>>> rows = [r for r in parse_file(path, "csv", key="id") if isinstance(r, ParsedRow)]
>>> [[r.line_no for r in part] for part in partition_rows(rows, 2, key="id")]
[[], [2, 4]]
>>> [chunk.records for chunk in parse_chunks(path, "csv", key="id", partition=1, n_partitions=2)]
[[(2, '{"id":"1","name":"Ada","age":"36"}'), (4, '{"id":"3","name":"Alan","age":"41"}')]]
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from typing import Iterable, Iterator

import msgspec

from actors.batch_rules import (
    DATASET_PATTERN, DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_ROW_BYTES, FORMATS, MAX_COLUMN_CHARS, MAX_EXCERPT, Format,
    IngestError, ParsedRow, RowError, RowRules, Scalar, check_header, check_options, column_problem, excerpt,
    json_type, key_partition, line_owner, raw_excerpt, text_problem, validate_dataset_name,
)
from actors.batch_text import CsvPlan, Lines, Overlong, Sink, csv_rows, first_content_line, read_header

#: Records per chunk that :func:`parse_chunks` gives by default.
DEFAULT_CHUNK_ROWS = 20_000

_json_decoder = msgspec.json.Decoder()


class ParsedChunk(msgspec.Struct, frozen=True):
    """Consecutive records of one partition: ``records`` holds ``(line_no, values as JSON
    text)`` per good record, ``errors`` a :class:`RowError` per bad one, each in line order."""

    records: list[tuple[int, str]]
    errors: list[RowError]


def file_checksum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 of the file's bytes as 64 lowercase hex digits, read in chunks.

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f"
    >>> _ = p.write_bytes(b"abc")
    >>> file_checksum(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# --- parsing ----------------------------------------------------------------------------------


def parse_chunks(path: str | os.PathLike, fmt: Format, *, key: str | None = None, time: str | None = None,
                 label: str | None = None, partition: int = 0, n_partitions: int = 1, after_line: int = 0,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
                 max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, delimiter: str = ",") -> Iterator[ParsedChunk]:
    """Stream the records of ``path`` that partition ``partition`` of ``n_partitions``
    owns and that start after line ``after_line``, in chunks of about ``chunk_rows``.

    The records and errors are those of :func:`parse_file`, the values encoded as JSON
    text. File-level problems raise :class:`IngestError` from this call, before any
    record is read.
    """
    for name, value, least in (("partition", partition, 0), ("n_partitions", n_partitions, 1),
                               ("after_line", after_line, 0), ("chunk_rows", chunk_rows, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise IngestError(name, f"{value!r} is not an integer of at least {least}")
    if partition >= n_partitions:
        raise IngestError("partition", f"{partition} is not below n_partitions ({n_partitions})")
    check_options(fmt, key=key, time=time, label=label)
    if max_field_bytes < 1 or max_row_bytes < 1:
        raise IngestError("options", "max_field_bytes and max_row_bytes must be positive")
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise IngestError("delimiter", f"{delimiter!r} is not a single character other than a quote or newline")
    if csv.field_size_limit() < max_row_bytes:
        # The csv module refuses fields over 128 KiB by default (a process-wide setting,
        # only ever raised here); this parser applies its own limits per field and row.
        csv.field_size_limit(max_row_bytes)
    rules = RowRules(key, time, label, max_field_bytes)
    owner = (partition, n_partitions, after_line)
    sink = Sink()
    if fmt == "parquet":
        parquet = _open_parquet(path, key=key, time=time, label=label)
        return _chunked(_parquet_rows(parquet, rules, owner, sink), sink, chunk_rows, None)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise IngestError("path", f"cannot open {excerpt(os.fsdecode(path), 200)!r}: {exc.strerror}") from None
    try:
        lines = Lines(f, max_row_bytes)
        if fmt == "csv":
            header = read_header(lines, delimiter, max_row_bytes)
            check_header(header, key=key, time=time, label=label)
            plan = CsvPlan(header, delimiter, max_row_bytes, rules, partition, n_partitions, after_line)
            return _chunked(csv_rows(lines, plan, sink), sink, chunk_rows, f)
        first = first_content_line(lines)
        if first is None:
            raise IngestError("file", "empty file: no records")
        lines.push_back([first])
        return _chunked(_jsonl_rows(lines, max_row_bytes, rules, owner, sink), sink, chunk_rows, f)
    except BaseException:
        f.close()
        raise


def parse_file(path: str | os.PathLike, fmt: Format, *, key: str | None = None, time: str | None = None,
               label: str | None = None, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
               max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, delimiter: str = ",", partition: int = 0,
               n_partitions: int = 1) -> Iterator[ParsedRow | RowError]:
    """Stream the records of ``path``: a :class:`ParsedRow` per good record, a
    :class:`RowError` per bad one (only those of ``partition`` when ``n_partitions`` > 1).

    File-level problems raise :class:`IngestError` from this call, before any record
    is read: unknown format, hostile options, unreadable or empty file, and (CSV) a
    header that is unparsable, has duplicate or hostile names, or lacks a column named
    by ``key``, ``time`` or ``label``.

    Row-level problems become :class:`RowError`: malformed CSV (wrong number of
    fields, unterminated or stray quotes), invalid JSON or a JSON line that is not an
    object, nested objects or arrays, NUL characters, invalid UTF-8, a field larger
    than ``max_field_bytes`` or a line larger than ``max_row_bytes``, a missing or
    empty key, a key that is not a string or an integer, a missing or unparsable time
    (a number of seconds or an ISO-8601 date), a missing label (JSONL; a CSV row
    always has every column), hostile JSON member names.
    """
    chunks = parse_chunks(path, fmt, key=key, time=time, label=label, partition=partition,
                          n_partitions=n_partitions, chunk_rows=1000, max_field_bytes=max_field_bytes,
                          max_row_bytes=max_row_bytes, delimiter=delimiter)
    return _items(chunks)


def _items(chunks: Iterator[ParsedChunk]) -> Iterator[ParsedRow | RowError]:
    """The records of ``chunks`` one at a time, in line order, values decoded."""
    try:
        for chunk in chunks:
            errors = iter(chunk.errors)
            error = next(errors, None)
            for line_no, text in chunk.records:
                while error is not None and error.line_no < line_no:
                    yield error
                    error = next(errors, None)
                yield ParsedRow(line_no, _json_decoder.decode(text))
            if error is not None:
                yield error
                yield from errors
    finally:
        chunks.close()


def _chunked(rows: Iterator[None], sink: Sink, chunk_rows: int, f) -> Iterator[ParsedChunk]:
    """Chunks of what ``rows`` puts into ``sink``; closes ``f`` at the end."""
    try:
        for _ in rows:
            if len(sink) >= chunk_rows:
                yield ParsedChunk(*sink.take())
        if len(sink):
            yield ParsedChunk(*sink.take())
    finally:
        if f is not None:
            f.close()


# --- JSONL ------------------------------------------------------------------------------------------


def _jsonl_rows(lines: Lines, max_row_bytes: int, rules: RowRules, owner: tuple[int, int, int],
                sink: Sink) -> Iterator[None]:
    partition, n_partitions, after = owner
    key = rules.key
    while (item := lines.next()) is not None:
        no, raw = item
        yield None
        if no <= after or (key is None and no % n_partitions != partition):
            continue  # (without a key column, the line number alone says whose a line is)
        if isinstance(raw, Overlong):
            if no % n_partitions == partition:
                sink.errors.append(RowError(no, None, f"line of {raw.n_bytes} bytes exceeds the limit of"
                                                      f" {max_row_bytes}", raw_excerpt(raw.head)))
            continue
        if not raw.strip():
            continue  # blank line
        try:
            obj = _json_decoder.decode(raw)
        except UnicodeDecodeError as exc:
            if no % n_partitions == partition:
                bad_byte = exc.object[exc.start] if isinstance(exc.object, bytes) else 0
                sink.errors.append(RowError(no, _field_with_bad_utf8(raw), f"not valid UTF-8 (byte 0x{bad_byte:02x})",
                                            raw_excerpt(raw)))
            continue
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if no % n_partitions == partition:
                sink.errors.append(RowError(no, None, f"invalid JSON: {exc}", raw_excerpt(raw)))
            continue
        except RecursionError:
            if no % n_partitions == partition:
                sink.errors.append(RowError(no, None, "invalid JSON: nested too deeply", raw_excerpt(raw)))
            continue
        if not isinstance(obj, dict):
            if no % n_partitions == partition:
                sink.errors.append(RowError(no, None, f"expected a JSON object, found {json_type(obj)}",
                                            raw_excerpt(raw)))
            continue
        if n_partitions > 1 and line_owner(no, obj.get(key) if key is not None else None, n_partitions) != partition:
            continue
        problem = _json_values_problem(obj, rules)
        if problem is None:
            problem = rules.check(obj)
        if problem is not None:
            sink.errors.append(RowError(no, problem[0], problem[1], raw_excerpt(raw)))
            continue
        sink.add_values(no, obj)


def _json_values_problem(obj: dict, rules: RowRules) -> tuple[str | None, str] | None:
    for name, value in obj.items():
        problem = column_problem(name)
        if problem:
            return excerpt(name, MAX_COLUMN_CHARS) or None, problem
        if isinstance(value, (dict, list)):
            return name, f"nested {json_type(value)} (only scalar values are stored)"
        if isinstance(value, str):
            if "\x00" in value:
                return name, text_problem(value)
            reason = rules.field_too_big(name, value)
            if reason:
                return name, reason
        elif isinstance(value, float) and not math.isfinite(value):
            return name, "number is not finite"
    return None


def _field_with_bad_utf8(raw: bytes) -> str | None:
    """The member whose name or value holds the invalid UTF-8, when the line still parses."""
    try:
        obj = _json_decoder.decode(raw.decode("utf-8", "replace"))
    except (msgspec.MsgspecError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    for name, value in obj.items():
        if "\ufffd" in name:
            return excerpt(name, MAX_COLUMN_CHARS)
        if isinstance(value, str) and "\ufffd" in value:
            return name
    return None


# --- Parquet ----------------------------------------------------------------------------------------


def _open_parquet(path, *, key: str | None, time: str | None, label: str | None):
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - a dependency of the project
        raise IngestError("format", "parquet needs the pyarrow package") from None
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise IngestError("path", f"cannot open {excerpt(os.fsdecode(path), 200)!r}: no such file") from None
    except Exception as exc:
        raise IngestError("file", f"not a readable Parquet file ({excerpt(str(exc), 200)})") from None
    check_header(list(parquet.schema_arrow.names), key=key, time=time, label=label)
    if parquet.metadata.num_rows == 0:
        raise IngestError("file", "empty file: no records")
    return parquet


def _parquet_rows(parquet, rules: RowRules, owner: tuple[int, int, int], sink: Sink) -> Iterator[None]:
    """Rows of a Parquet file, read in record batches; row ``n`` (from 1) has line number ``n + 1``
    as if a header were line 1. Dates become ISO-8601 text; nested, binary and NUL-bearing
    values are row errors."""
    partition, n_partitions, after = owner
    key = rules.key
    line_no = 1
    for batch in parquet.iter_batches(batch_size=10_000):
        for record in batch.to_pylist():
            line_no += 1
            if line_no <= after or (key is None and line_no % n_partitions != partition):
                continue
            if n_partitions > 1 and key is not None:
                key_value, reason = _parquet_scalar(record.get(key))
                if line_owner(line_no, None if reason else key_value, n_partitions) != partition:
                    continue
            values: dict[str, Scalar] = {}
            problem = None
            for name, value in record.items():
                value, reason = _parquet_scalar(value)
                reason = reason or (rules.field_too_big(name, value) if isinstance(value, str) else None)
                if reason:
                    problem = (name, reason)
                    break
                values[name] = value
            problem = problem or rules.check(values)
            if problem:
                sink.errors.append(RowError(line_no, problem[0], problem[1], excerpt(repr(record), MAX_EXCERPT)))
            else:
                sink.add_values(line_no, values)
        yield None


def _parquet_scalar(value) -> tuple[Scalar, str | None]:
    """A Parquet cell as a JSON scalar, or the reason it cannot be one."""
    import datetime as dt
    import decimal

    if value is None or isinstance(value, (bool, int)):
        return value, None
    if isinstance(value, float):
        return (None, None) if math.isnan(value) else (value, None) if math.isfinite(value) else \
            (None, "infinite number")
    if isinstance(value, str):
        return (value, None) if "\x00" not in value else (None, "NUL character in text")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat(), None
    if isinstance(value, decimal.Decimal):
        return float(value), None
    if isinstance(value, (list, dict)):
        return None, "nested values (lists, structs) are not scalars"
    return None, f"unsupported value type {type(value).__name__}"


# --- partitioning -------------------------------------------------------------------------------


def partition_of(row: ParsedRow, n_partitions: int, key: str | None = None) -> int:
    """The partition of ``row``: CRC-32 of its key value when there is a key column,
    else its line number, modulo ``n_partitions``. The same row always gets the same one,
    the one :func:`parse_chunks` gives it to.

    >>> partition_of(ParsedRow(7, {"id": "u1"}), 4, key="id") == partition_of(ParsedRow(9, {"id": "u1"}), 4, key="id")
    True
    >>> partition_of(ParsedRow(7, {}), 4)
    3
    """
    if key is not None:
        value = row.values.get(key)
        if value is not None:
            return key_partition(value, n_partitions)
    return row.line_no % n_partitions


def partition_rows(rows: Iterable[ParsedRow], n_partitions: int, key: str | None = None) -> list[list[ParsedRow]]:
    """``rows`` split into ``n_partitions`` lists by :func:`partition_of`, order kept in each."""
    if isinstance(n_partitions, bool) or not isinstance(n_partitions, int) or n_partitions < 1:
        raise ValueError(f"n_partitions must be a positive integer, not {n_partitions!r}")
    parts: list[list[ParsedRow]] = [[] for _ in range(n_partitions)]
    for row in rows:
        parts[partition_of(row, n_partitions, key)].append(row)
    return parts


__all__ = [
    "DATASET_PATTERN", "DEFAULT_CHUNK_ROWS", "FORMATS", "IngestError", "ParsedChunk", "ParsedRow", "RowError",
    "Scalar", "check_header", "check_options", "column_problem", "file_checksum", "line_owner", "parse_chunks",
    "parse_file", "partition_of", "partition_rows", "validate_dataset_name",
]
