"""Offline ingestion: the rules every source format applies, and the errors they give.

A record is good when its values can be stored unchanged and its key, time and label
columns (when named) are usable; otherwise it becomes a :class:`RowError` naming the
line, the field when there is one, and the reason. A file that cannot be ingested at
all raises :class:`IngestError`.

Which partition (loader) handles a line, good or bad, is decided here too
(:func:`line_owner`), so that every partition applies the same rule and each line is
stored or reported by exactly one of them.

Nothing here does I/O.
"""

from __future__ import annotations

import math
import re
import zlib
from datetime import datetime
from typing import Literal, Sequence

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
        raise IngestError("dataset", f"{excerpt(name, 80)!r} is not a valid name: letters, digits, '_', '.', '-',"
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
        raise IngestError("format", f"{excerpt(str(fmt), 40)!r} is not one of {', '.join(FORMATS)}")
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
            raise IngestError("header", f"column {position} ({excerpt(name, 40)!r}): {problem}")
        if name in seen:
            raise IngestError("header", f"duplicate column name {name!r} (column {position})")
        seen.add(name)
    for option, column in (("key", key), ("time", time), ("label", label)):
        if column is not None and column not in seen:
            listed = ", ".join(repr(c) for c in list(columns)[:20]) + (", ..." if len(columns) > 20 else "")
            raise IngestError(option, f"column {column!r} is not in the header (columns: {listed})")
    return list(columns)


# --- row-level checks -----------------------------------------------------------------------

class RowRules:
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
            reason = key_problem(values[self.key])
            if reason:
                return self.key, reason
        if self.time is not None:
            if self.time not in values:
                return self.time, "missing time"
            reason = time_problem(values[self.time])
            if reason:
                return self.time, reason
        if self.label is not None and self.label not in values:
            return self.label, "missing label"
        return None


def key_problem(value: Scalar) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"key must be a string or an integer, not {json_type(value)}"
    if isinstance(value, str):
        if not value:
            return "empty key"
        if len(value) > MAX_KEY_CHARS:
            return f"key of {len(value)} characters exceeds the limit of {MAX_KEY_CHARS}"
        if _CONTROL.search(value):
            return "key contains control characters"
    return None


def time_problem(value: Scalar) -> str | None:
    if value is None or value == "":
        return "missing time"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"time must be a number or an ISO-8601 date, not {json_type(value)}"
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
    return f"not a time (a number of seconds or an ISO-8601 date): {excerpt(value, 40)!r}"


def text_problem(value: str) -> str:
    if "\x00" in value:
        return "contains a NUL character"
    return "not valid UTF-8"


def json_type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def excerpt(text: str, n_chars: int) -> str:
    """A printable start of ``text``: no control characters, no invalid UTF-8."""
    try:
        encoded = text[:n_chars].encode("utf-8", "surrogateescape")  # invalid bytes back to bytes ...
    except UnicodeEncodeError:
        encoded = text[:n_chars].encode("utf-8", "backslashreplace")
    head = printable(encoded.decode("utf-8", "backslashreplace"))  # ... shown as \xff
    return head + ("..." if len(text) > n_chars else "")


def raw_excerpt(raw: bytes) -> str:
    head = raw[:MAX_EXCERPT].rstrip(b"\r\n").decode("utf-8", "backslashreplace")
    return printable(head) + ("..." if len(raw) > MAX_EXCERPT else "")



# --- which partition handles a line ------------------------------------------------------------


def key_partition(value: Scalar, n_partitions: int) -> int:
    """The partition of a key value: CRC-32 of its text (UTF-8) modulo ``n_partitions``.
    Fixed by the definition of CRC-32, unlike ``hash()``: the same in every process.

    >>> [key_partition(k, 4) for k in ("a", "b", "user-1", 42)]
    [3, 1, 0, 0]
    """
    return zlib.crc32(str(value).encode("utf-8", "surrogatepass")) % n_partitions


def readable_key(value: object) -> bool:
    """Whether ``value`` is a usable key: a non-empty string (valid text, no control
    characters, at most 256 characters) or an integer."""
    if isinstance(value, str):
        return bool(value) and len(value) <= MAX_KEY_CHARS and not _CONTROL.search(value) \
            and not _BAD_TEXT.search(value)
    return isinstance(value, int) and not isinstance(value, bool)


def line_owner(line_no: int, key_value: object, n_partitions: int) -> int:
    """The partition that stores or reports the record that starts on ``line_no``.

    A record whose key can be read (``key_value`` passes :func:`readable_key`) belongs
    to the partition of its key, whether the record is good or not; a record without
    a readable key (no key column, a missing, empty or invalid key, a line that is not
    a record at all) belongs to partition ``line_no % n_partitions``. Pass ``None`` as
    ``key_value`` when the key cannot be read. Every partition applies this same rule,
    so each line is handled by exactly one of them.

    >>> line_owner(6, "a", 4), line_owner(6, "", 4), line_owner(6, None, 4), line_owner(6, 42, 4)
    (3, 2, 2, 0)
    """
    if key_value is not None and readable_key(key_value):
        return key_partition(key_value, n_partitions)
    return line_no % n_partitions
