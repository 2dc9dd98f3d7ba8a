"""Offline ingestion, the pure part: checksum, parse and partition one source file.

Nothing here touches a database, the broker or Ray; the only I/O is reading the file
whose path is given, streamed in bounded pieces (a file of any size is parsed in
memory bounded by ``max_row_bytes``).

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
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import zlib
from collections import deque
from datetime import datetime
from typing import BinaryIO, Iterable, Iterator, Literal, Sequence

import msgspec

from messages.codec import printable
from messages.types import Name

#: A value as it was in the file: CSV gives strings, JSONL any JSON scalar.
Scalar = str | int | float | bool | None
Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")

#: Column names longer than this are refused (the same bound as message records).
MAX_COLUMN_CHARS = 128
#: Key values longer than this are refused (the bound of an entity key).
MAX_KEY_CHARS = 256
#: How much of a bad line is kept with its error, in bytes.
MAX_EXCERPT = 200
DEFAULT_MAX_FIELD_BYTES = 1 << 20
DEFAULT_MAX_ROW_BYTES = 8 << 20

#: Dataset names: the one pattern of :data:`messages.types.Name`.
DATASET_PATTERN: str = Name.__metadata__[0].pattern
_DATASET = re.compile(DATASET_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BAD_TEXT = re.compile(r"[\x00\ud800-\udfff]")  # NUL, or a byte that was not UTF-8 (surrogate escape)


class IngestError(ValueError):
    """A source that cannot be ingested at all; ``field`` names what, ``reason`` says why.

    >>> err = IngestError("dataset", "must start with a letter")
    >>> err.field, str(err)
    ('dataset', 'dataset: must start with a letter')
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ParsedRow(msgspec.Struct, frozen=True):
    """One good record: its first line number and its values exactly as in the file."""

    line_no: int
    values: dict[str, Scalar]

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.values}"


class RowError(msgspec.Struct, frozen=True):
    """One refused record: its line, the field (``None`` for the line as a whole), why,
    and a printable excerpt of the raw line (no NUL, no invalid UTF-8)."""

    line_no: int
    field: str | None
    reason: str
    raw: str = ""

    def __str__(self) -> str:
        where = f"line {self.line_no}" + (f", field {self.field!r}" if self.field is not None else "")
        return f"{where}: {self.reason}"


# --- file-level checks ---------------------------------------------------------------------


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


def validate_dataset_name(name: object) -> str:
    """``name`` if it is a safe dataset name, else :class:`IngestError` with ``field="dataset"``.

    Letters, digits, ``_``, ``.``, ``-``; starts with a letter; at most 63 characters.
    That refuses quotes, spaces, SQL fragments, slashes and path traversal.

    >>> validate_dataset_name("iris.v2")
    'iris.v2'
    >>> try:
    ...     validate_dataset_name("../etc/passwd")
    ... except IngestError as e:
    ...     print(e.field, "|", e.reason[:35])
    dataset | '../etc/passwd' is not a valid name
    """
    if not isinstance(name, str):
        raise IngestError("dataset", f"must be a string, not {type(name).__name__}")
    if not _DATASET.match(name):
        raise IngestError("dataset", f"{_excerpt(name, 80)!r} is not a valid name: letters, digits, '_', '.', '-',"
                                     " starting with a letter, at most 63 characters")
    return name


def column_problem(name: str) -> str | None:
    """Why ``name`` cannot be a column name, or ``None`` when it can."""
    if not name:
        return "empty column name"
    if len(name) > MAX_COLUMN_CHARS:
        return f"column name of {len(name)} characters exceeds the limit of {MAX_COLUMN_CHARS}"
    if _CONTROL.search(name):
        return "column name contains control characters"
    if _BAD_TEXT.search(name):
        return "column name is not valid UTF-8"
    return None


def check_options(fmt: object, *, key: str | None, time: str | None, label: str | None) -> None:
    """Refuse an unknown format and hostile or clashing column options."""
    if fmt not in FORMATS:
        raise IngestError("format", f"{_excerpt(str(fmt), 40)!r} is not one of {', '.join(FORMATS)}")
    named = {"key": key, "time": time, "label": label}
    for option, column in named.items():
        if column is None:
            continue
        if not isinstance(column, str):
            raise IngestError(option, f"column name must be a string, not {type(column).__name__}")
        problem = column_problem(column)
        if problem:
            raise IngestError(option, problem)
    given = [c for c in named.values() if c is not None]
    if len(set(given)) != len(given):
        raise IngestError("options", "key, time and label must name different columns")


def check_header(columns: Sequence[str] | None, *, key: str | None = None, time: str | None = None,
                 label: str | None = None) -> list[str]:
    """The header's column names if they can be ingested, else :class:`IngestError`.

    ``None`` or no columns means the file is empty. Refused: empty, overlong (more
    than 128 characters) or control-character names, duplicates, and a key, time or
    label column named in the options but absent from the header.

    >>> check_header(["id", "x", "y"], key="id", label="y")
    ['id', 'x', 'y']
    >>> try:
    ...     check_header(["id", "x"], key="id", label="y")
    ... except IngestError as e:
    ...     print(e)
    label: column 'y' is not in the header (columns: 'id', 'x')
    """
    if not columns:
        raise IngestError("file", "empty file: no header and no records")
    seen: set[str] = set()
    for position, name in enumerate(columns, start=1):
        problem = column_problem(name)
        if problem:
            raise IngestError("header", f"column {position} ({_excerpt(name, 40)!r}): {problem}")
        if name in seen:
            raise IngestError("header", f"duplicate column name {name!r} (column {position})")
        seen.add(name)
    for option, column in (("key", key), ("time", time), ("label", label)):
        if column is not None and column not in seen:
            listed = ", ".join(repr(c) for c in list(columns)[:20]) + (", ..." if len(columns) > 20 else "")
            raise IngestError(option, f"column {column!r} is not in the header (columns: {listed})")
    return list(columns)


# --- parsing ----------------------------------------------------------------------------------


def parse_file(path: str | os.PathLike, fmt: Format, *, key: str | None = None, time: str | None = None,
               label: str | None = None, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
               max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, delimiter: str = ",",
               ) -> Iterator[ParsedRow | RowError]:
    """Stream the records of ``path``: a :class:`ParsedRow` per good record, a
    :class:`RowError` per bad one.

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
    check_options(fmt, key=key, time=time, label=label)
    if max_field_bytes < 1 or max_row_bytes < 1:
        raise IngestError("options", "max_field_bytes and max_row_bytes must be positive")
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise IngestError("delimiter", f"{delimiter!r} is not a single character other than a quote or newline")
    if csv.field_size_limit() < max_row_bytes:
        # The csv module refuses fields over 128 KiB by default (a process-wide setting,
        # only ever raised here); this parser applies its own limits per field and row.
        csv.field_size_limit(max_row_bytes)
    if fmt == "parquet":
        return _parquet_rows(path, _RowRules(key, time, label, max_field_bytes), key=key, time=time, label=label)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise IngestError("path", f"cannot open {_excerpt(os.fsdecode(path), 200)!r}: {exc.strerror}") from None
    try:
        lines = _Lines(f, max_row_bytes)
        rules = _RowRules(key, time, label, max_field_bytes)
        if fmt == "csv":
            header = _read_header(lines, delimiter, max_row_bytes)
            check_header(header, key=key, time=time, label=label)
            return _closing(f, _csv_rows(lines, header, delimiter, max_row_bytes, rules))
        first = _first_content_line(lines)
        if first is None:
            raise IngestError("file", "empty file: no records")
        lines.push_back([first])
        return _closing(f, _jsonl_rows(lines, max_row_bytes, rules))
    except BaseException:
        f.close()
        raise


def _parquet_rows(path, rules: "_RowRules", *, key: str | None, time: str | None, label: str | None
                  ) -> Iterator[ParsedRow | RowError]:
    """Rows of a Parquet file, read in record batches; row ``n`` (from 1) has line number ``n + 1``
    as if a header were line 1. Dates become ISO-8601 text; nested, binary and NUL-bearing
    values are row errors."""
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - a dependency of the project
        raise IngestError("format", "parquet needs the pyarrow package") from None
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise IngestError("path", f"cannot open {_excerpt(os.fsdecode(path), 200)!r}: no such file") from None
    except Exception as exc:
        raise IngestError("file", f"not a readable Parquet file ({_excerpt(str(exc), 200)})") from None
    check_header(list(parquet.schema_arrow.names), key=key, time=time, label=label)
    if parquet.metadata.num_rows == 0:
        raise IngestError("file", "empty file: no records")
    return _parquet_iter(parquet, rules)


def _parquet_iter(parquet, rules: "_RowRules") -> Iterator[ParsedRow | RowError]:
    line_no = 1
    for batch in parquet.iter_batches(batch_size=10_000):
        for record in batch.to_pylist():
            line_no += 1
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
                yield RowError(line_no, problem[0], problem[1], _excerpt(repr(record), MAX_EXCERPT))
            else:
                yield ParsedRow(line_no, values)


def _parquet_scalar(value) -> tuple[Scalar, str | None]:
    """A Parquet cell as a JSON scalar, or the reason it cannot be one."""
    import datetime as dt
    import decimal
    import math

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


def _closing(f: BinaryIO, rows: Iterator[ParsedRow | RowError]) -> Iterator[ParsedRow | RowError]:
    try:
        yield from rows
    finally:
        f.close()


class _Overlong:
    """Stands for a physical line longer than the row limit (its bytes were skipped)."""

    __slots__ = ("head", "n_bytes")

    def __init__(self, head: bytes, n_bytes: int) -> None:
        self.head, self.n_bytes = head, n_bytes


class _Lines:
    """Physical lines of a binary file, each at most ``limit`` bytes, with push-back."""

    def __init__(self, f: BinaryIO, limit: int) -> None:
        self._f, self._limit = f, limit
        self._back: deque[tuple[int, bytes | _Overlong]] = deque()
        self._next_no = 1

    def next(self) -> tuple[int, bytes | _Overlong] | None:
        if self._back:
            return self._back.popleft()
        raw = self._f.readline(self._limit + 2)
        if not raw:
            return None
        line_no, self._next_no = self._next_no, self._next_no + 1
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte order mark is not content
        if not raw.endswith(b"\n") and len(raw) >= self._limit + 2:
            head, n_bytes = raw[:MAX_EXCERPT], len(raw)
            while True:  # skip the rest of the line without holding it
                chunk = self._f.readline(1 << 16)
                n_bytes += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            return line_no, _Overlong(head, n_bytes)
        if len(raw.rstrip(b"\r\n")) > self._limit:
            return line_no, _Overlong(raw[:MAX_EXCERPT], len(raw))
        return line_no, raw

    def push_back(self, lines: list[tuple[int, bytes | _Overlong]]) -> None:
        """Make ``lines`` (in order) the next ones returned."""
        self._back.extendleft(reversed(lines))


def _first_content_line(lines: _Lines) -> tuple[int, bytes | _Overlong] | None:
    while (item := lines.next()) is not None:
        if isinstance(item[1], _Overlong) or item[1].strip():
            return item
    return None


def _decode(raw: bytes) -> tuple[str, bool]:
    """The text of ``raw``, and whether it holds a NUL or invalid UTF-8 (kept as surrogate
    escapes, so that the field holding it can be named and refused)."""
    try:
        return raw.decode("utf-8"), b"\x00" in raw
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), True


class _Record:
    """A CSV record: its fields or the reason it is malformed, and its raw bytes."""

    __slots__ = ("column", "error", "fields", "line_no", "n_lines", "raw", "suspect")

    def __init__(self, line_no: int, fields: list[str] | None, error: str | None, raw: bytes, suspect: bool,
                 n_lines: int = 1, column: int = -1) -> None:
        self.line_no, self.fields, self.error, self.raw = line_no, fields, error, raw
        #: whether the raw bytes hold a NUL or invalid UTF-8 (then each field is checked)
        self.suspect = suspect
        self.n_lines = n_lines
        #: for an unterminated quote: the index of the field it was opened in, else -1
        self.column = column


def _csv_records(lines: _Lines, delimiter: str, max_row_bytes: int) -> Iterator[_Record]:
    """Records of CSV text; a quoted field may span lines, up to ``max_row_bytes`` in all.

    A record that breaks the CSV rules (unterminated quote, stray quote after a
    quoted field) is reported at its first line, and the lines after that first line
    are read again as records of their own: one bad quote costs one line, not the
    rest of the file.
    """
    while (item := lines.next()) is not None:
        line_no, first = item
        if isinstance(first, _Overlong):
            yield _Record(line_no, None, f"line of {first.n_bytes} bytes exceeds the limit of {max_row_bytes}",
                          first.head, False)
            continue
        body = first[:-1] if first.endswith(b"\n") else first
        body = body[:-1] if body.endswith(b"\r") else body
        if not body:
            continue  # blank line
        text, suspect = _decode(first)
        if b'"' not in body and b"\r" not in body:
            # No quote and no stray carriage return: exactly what the csv module would give.
            yield _Record(line_no, text[:len(text) - (len(first) - len(body))].split(delimiter), None, first,
                          suspect)
            continue
        feed = _RecordLines(lines, text, len(first), suspect, max_row_bytes)
        try:
            fields = next(csv.reader(feed, delimiter=delimiter, strict=True))
        except csv.Error as exc:
            message, column = str(exc), -1
            if message == "unexpected end of data":
                reason = f"unterminated quoted field ({feed.stopped or 'no closing quote'})"
            elif feed.taken:  # the quote opened on this line ran on into the next lines and broke there
                reason = (f"unterminated quoted field (the quote opened here runs on to line {feed.taken[-1][0]},"
                          f" where the CSV breaks: {message})")
            else:
                reason = f"malformed CSV: {message}"
            if reason.startswith("unterminated"):  # the field the quote was opened in
                column = len(next(csv.reader([text], delimiter=delimiter, strict=False), [""])) - 1
            if feed.taken:
                lines.push_back(feed.taken)  # read the following lines again on their own
            yield _Record(line_no, None, reason, first, feed.suspect, column=column)
            continue
        raw = first + b"".join(r for _, r in feed.taken) if feed.taken else first  # type: ignore[misc]
        yield _Record(line_no, fields, None, raw, feed.suspect, n_lines=1 + len(feed.taken))


class _RecordLines:
    """The lines one CSV record is read from: its first line, then more while a quoted
    field is open, up to ``max_row_bytes`` in all (a longer record is left unfinished)."""

    def __init__(self, lines: _Lines, first_text: str, first_size: int, suspect: bool, max_row_bytes: int) -> None:
        self._lines, self._first, self._max = lines, first_text, max_row_bytes
        self.size, self.suspect = first_size, suspect
        self.taken: list[tuple[int, bytes | _Overlong]] = []
        self.stopped = ""  # why no more lines were given

    def __iter__(self) -> Iterator[str]:
        yield self._first
        while (more := self._lines.next()) is not None:
            more_raw = more[1]
            if isinstance(more_raw, _Overlong) or self.size + len(more_raw) > self._max:
                self._lines.push_back([more])
                self.stopped = f"no closing quote within the limit of {self._max} bytes"
                return
            self.taken.append(more)
            self.size += len(more_raw)
            more_text, bad = _decode(more_raw)
            self.suspect = self.suspect or bad
            yield more_text
        self.stopped = "no closing quote before the end of the file"


def _read_header(lines: _Lines, delimiter: str, max_row_bytes: int) -> list[str] | None:
    for record in _csv_records(lines, delimiter, max_row_bytes):
        if record.error is not None:
            raise IngestError("header", f"line {record.line_no}: {record.error}")
        return record.fields  # NUL and invalid UTF-8 in names are refused by check_header
    return None


class _RowRules:
    """Checks every format applies to a record's values."""

    def __init__(self, key: str | None, time: str | None, label: str | None, max_field_bytes: int) -> None:
        self.key, self.time, self.label = key, time, label
        self.max_field_bytes = max_field_bytes

    def field_too_big(self, name: str, value: str) -> str | None:
        if len(value) * 4 <= self.max_field_bytes:
            return None
        n_bytes = len(value.encode("utf-8", "surrogatepass"))
        if n_bytes > self.max_field_bytes:
            return f"field of {n_bytes} bytes exceeds the limit of {self.max_field_bytes}"
        return None

    def check(self, values: dict[str, Scalar]) -> tuple[str, str] | None:
        """(field, reason) of the first broken rule about the key, time and label columns."""
        if self.key is not None:
            if self.key not in values:
                return self.key, "missing key"
            reason = _key_problem(values[self.key])
            if reason:
                return self.key, reason
        if self.time is not None:
            if self.time not in values:
                return self.time, "missing time"
            reason = _time_problem(values[self.time])
            if reason:
                return self.time, reason
        if self.label is not None and self.label not in values:
            return self.label, "missing label"
        return None


def _key_problem(value: Scalar) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"key must be a string or an integer, not {_json_type(value)}"
    if isinstance(value, str):
        if not value:
            return "empty key"
        if len(value) > MAX_KEY_CHARS:
            return f"key of {len(value)} characters exceeds the limit of {MAX_KEY_CHARS}"
        if _CONTROL.search(value):
            return "key contains control characters"
    return None


def _time_problem(value: Scalar) -> str | None:
    if value is None or value == "":
        return "missing time"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"time must be a number or an ISO-8601 date, not {_json_type(value)}"
    if isinstance(value, (int, float)):
        return None if math.isfinite(value) else "time is not a finite number"
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        return None if math.isfinite(number) else "time is not a finite number"
    if len(value) <= 64:
        try:
            datetime.fromisoformat(value.strip())
            return None
        except ValueError:
            pass
    return f"not a time (a number of seconds or an ISO-8601 date): {_excerpt(value, 40)!r}"


def _csv_rows(lines: _Lines, header: list[str], delimiter: str, max_row_bytes: int,
              rules: _RowRules) -> Iterator[ParsedRow | RowError]:
    n_columns = len(header)
    for record in _csv_records(lines, delimiter, max_row_bytes):
        no = record.line_no
        if record.error is not None:
            field = header[record.column] if 0 <= record.column < n_columns else None
            yield RowError(no, field, record.error, _raw_excerpt(record.raw))
            continue
        fields = record.fields
        if len(fields) != n_columns:
            span = f" (lines {no}-{no + record.n_lines - 1})" if record.n_lines > 1 else ""
            if len(fields) < n_columns:
                yield RowError(no, header[len(fields)],
                               f"missing: expected {n_columns} fields, found {len(fields)}{span}",
                               _raw_excerpt(record.raw))
            else:
                yield RowError(no, None, f"expected {n_columns} fields, found {len(fields)}{span}",
                               _raw_excerpt(record.raw))
            continue
        problem = None
        if record.suspect:
            problem = next(((name, _text_problem(value)) for name, value in zip(header, fields)
                            if _BAD_TEXT.search(value)), None)
        if problem is None and len(record.raw) > rules.max_field_bytes:
            problem = next(((name, reason) for name, value in zip(header, fields)
                            if (reason := rules.field_too_big(name, value))), None)
        values: dict[str, Scalar] = dict(zip(header, fields))
        if problem is None:
            problem = rules.check(values)
        if problem is not None:
            yield RowError(no, problem[0], problem[1], _raw_excerpt(record.raw))
            continue
        yield ParsedRow(no, values)


_json_decoder = msgspec.json.Decoder()


def _jsonl_rows(lines: _Lines, max_row_bytes: int, rules: _RowRules) -> Iterator[ParsedRow | RowError]:
    while (item := lines.next()) is not None:
        no, raw = item
        if isinstance(raw, _Overlong):
            yield RowError(no, None, f"line of {raw.n_bytes} bytes exceeds the limit of {max_row_bytes}",
                           _raw_excerpt(raw.head))
            continue
        if not raw.strip():
            continue  # blank line
        try:
            obj = _json_decoder.decode(raw)
        except UnicodeDecodeError as exc:
            bad_byte = exc.object[exc.start] if isinstance(exc.object, bytes) else 0
            yield RowError(no, _field_with_bad_utf8(raw), f"not valid UTF-8 (byte 0x{bad_byte:02x})",
                           _raw_excerpt(raw))
            continue
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            yield RowError(no, None, f"invalid JSON: {exc}", _raw_excerpt(raw))
            continue
        except RecursionError:
            yield RowError(no, None, "invalid JSON: nested too deeply", _raw_excerpt(raw))
            continue
        if not isinstance(obj, dict):
            yield RowError(no, None, f"expected a JSON object, found {_json_type(obj)}", _raw_excerpt(raw))
            continue
        problem = _json_values_problem(obj, rules)
        if problem is None:
            problem = rules.check(obj)
        if problem is not None:
            yield RowError(no, problem[0], problem[1], _raw_excerpt(raw))
            continue
        yield ParsedRow(no, obj)


def _json_values_problem(obj: dict, rules: _RowRules) -> tuple[str | None, str] | None:
    for name, value in obj.items():
        problem = column_problem(name)
        if problem:
            return _excerpt(name, MAX_COLUMN_CHARS) or None, problem
        if isinstance(value, (dict, list)):
            return name, f"nested {_json_type(value)} (only scalar values are stored)"
        if isinstance(value, str):
            if "\x00" in value:
                return name, _text_problem(value)
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
            return _excerpt(name, MAX_COLUMN_CHARS)
        if isinstance(value, str) and "\ufffd" in value:
            return name
    return None


def _text_problem(value: str) -> str:
    if "\x00" in value:
        return "contains a NUL character"
    return "not valid UTF-8"


def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _excerpt(text: str, n_chars: int) -> str:
    """A printable start of ``text``: no control characters, no invalid UTF-8."""
    try:
        encoded = text[:n_chars].encode("utf-8", "surrogateescape")  # invalid bytes back to bytes ...
    except UnicodeEncodeError:
        encoded = text[:n_chars].encode("utf-8", "backslashreplace")
    head = printable(encoded.decode("utf-8", "backslashreplace"))  # ... shown as \xff
    return head + ("..." if len(text) > n_chars else "")


def _raw_excerpt(raw: bytes) -> str:
    head = raw[:MAX_EXCERPT].rstrip(b"\r\n").decode("utf-8", "backslashreplace")
    return printable(head) + ("..." if len(raw) > MAX_EXCERPT else "")


# --- partitioning -------------------------------------------------------------------------------


def partition_of(row: ParsedRow, n_partitions: int, key: str | None = None) -> int:
    """The partition of ``row``: CRC-32 of its key value when there is a key column,
    else its line number, modulo ``n_partitions``. The same row always gets the same one.

    >>> partition_of(ParsedRow(7, {"id": "u1"}), 4, key="id") == partition_of(ParsedRow(9, {"id": "u1"}), 4, key="id")
    True
    >>> partition_of(ParsedRow(7, {}), 4)
    3
    """
    if key is not None:
        value = row.values.get(key)
        if value is not None:
            return zlib.crc32(str(value).encode("utf-8", "surrogatepass")) % n_partitions
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
    "DATASET_PATTERN", "FORMATS", "IngestError", "ParsedRow", "RowError", "Scalar", "check_header",
    "check_options", "column_problem", "file_checksum", "parse_file", "partition_of", "partition_rows",
    "validate_dataset_name",
]
