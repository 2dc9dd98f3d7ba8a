"""Offline ingestion, text sources: physical lines read in bounded pieces, and CSV.

:class:`Lines` reads a file in blocks of 1 MiB and hands out physical lines (each at
most ``limit`` bytes; a longer one is skipped without being held) or, when it can,
whole *runs*: consecutive complete lines that hold no quote, no carriage return, no
NUL and only valid UTF-8. A CSV record in such a run is exactly one line and its
fields are ``line.split(delimiter)`` (what the csv module would give), so a run is
parsed with a few string operations per line. Lines a run cannot hold go through the
general path, one record at a time, with the csv module for quoted fields.

:func:`csv_rows` keeps only the lines of one partition (see
:func:`actors.batch_rules.line_owner`): a line of another partition costs a split and
a CRC of its key, and builds no values.
"""

from __future__ import annotations

import csv
import zlib
from collections import deque
from typing import BinaryIO, Iterator

import msgspec

from actors.batch_rules import (
    _BAD_TEXT, _CONTROL, MAX_EXCERPT, MAX_KEY_CHARS, IngestError, RowError, RowRules, line_owner, raw_excerpt,
    text_problem, time_problem,
)

#: Bytes read from the file at a time.
BLOCK_BYTES = 1 << 20

_encode = msgspec.json.Encoder().encode
#: Bytes that JSON must escape (besides the quote, which a run never holds) or a key may not
#: hold, newlines apart; with the lead byte of U+0080-U+00BF (which include the C1 controls)
#: they make a run "special": checked per key, values encoded by msgspec.
_SPECIAL_BYTES = bytes(range(0x00, 0x0a)) + bytes(range(0x0b, 0x20)) + b"\x7f\\"


class Overlong:
    """Stands for a physical line longer than the row limit (its bytes were skipped)."""

    __slots__ = ("head", "n_bytes")

    def __init__(self, head: bytes, n_bytes: int) -> None:
        self.head, self.n_bytes = head, n_bytes


class Lines:
    """Physical lines of a binary file, each at most ``limit`` bytes, with push-back,
    and runs of plain lines (:meth:`take_run`)."""

    def __init__(self, f: BinaryIO, limit: int) -> None:
        self._f, self._limit = f, limit
        self._back: deque[tuple[int, bytes | Overlong]] = deque()
        self._next_no = 1
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        """Read one more block into the buffer; False at the end of the file."""
        if self._eof:
            return False
        more = self._f.read(BLOCK_BYTES)
        if not more:
            self._eof = True
            return False
        self._buf = self._buf[self._pos:] + more
        self._pos = 0
        return True

    def next(self) -> tuple[int, bytes | Overlong] | None:
        """The next physical line (with its line ending) and its number, or ``None`` at the end."""
        if self._back:
            return self._back.popleft()
        most = self._limit + 2  # the content, and a line ending of up to two bytes
        while True:
            end = self._buf.find(b"\n", self._pos, self._pos + most)
            if end >= 0:
                raw = self._buf[self._pos:end + 1]
                self._pos = end + 1
                break
            if len(self._buf) - self._pos >= most:
                raw = None  # no line ending within the limit
                break
            if not self._fill():
                if self._pos >= len(self._buf):
                    return None
                raw = self._buf[self._pos:]
                self._pos = len(self._buf)
                break
        line_no, self._next_no = self._next_no, self._next_no + 1
        if raw is None:
            return line_no, self._skip_overlong()
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte order mark is not content
        if len(raw.rstrip(b"\r\n")) > self._limit:
            return line_no, Overlong(raw[:MAX_EXCERPT], len(raw))
        return line_no, raw

    def _skip_overlong(self) -> Overlong:
        """Skip the rest of a line longer than the limit, holding at most one block of it."""
        head, n_bytes = self._buf[self._pos:self._pos + MAX_EXCERPT], 0
        while True:
            end = self._buf.find(b"\n", self._pos)
            if end >= 0:
                n_bytes += end + 1 - self._pos
                self._pos = end + 1
                return Overlong(head, n_bytes)
            n_bytes += len(self._buf) - self._pos
            self._buf, self._pos = b"", 0
            if not self._fill():
                return Overlong(head, n_bytes)

    def push_back(self, lines: list[tuple[int, bytes | Overlong]]) -> None:
        """Make ``lines`` (in order) the next ones returned."""
        self._back.extendleft(reversed(lines))

    def take_run(self) -> tuple[int, str, bool] | None:
        """``(first line number, text, special)`` of the next complete lines, up to the
        first that holds a quote, a carriage return, a NUL or invalid UTF-8, and at most
        ``limit`` bytes in all (so no line in it is overlong); ``None`` when the next line
        is not such a plain line (read it with :meth:`next`). The text ends with a newline;
        ``special`` says whether it holds a backslash, a control character other than the
        newlines, or a character from U+0080 to U+00BF."""
        if self._back or self._next_no == 1:
            return None  # pushed-back lines first; line 1 may start with a byte order mark
        while True:
            end = self._buf.rfind(b"\n", self._pos, self._pos + self._limit)
            if end >= 0 or not self._fill():
                break
        if end < 0:
            return None
        buf, start, stop = self._buf, self._pos, end + 1
        for special in (b'"', b"\r", b"\x00"):
            at = buf.find(special, start, stop)
            if at >= 0:
                stop = buf.rfind(b"\n", start, at) + 1
                if stop <= start:
                    return None
        raw = buf[start:stop]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            stop = buf.rfind(b"\n", start, start + exc.start) + 1
            if stop <= start:
                return None
            raw = buf[start:stop]
            text = raw.decode("utf-8")
        special = len(raw.translate(None, _SPECIAL_BYTES)) != len(raw) or b"\xc2" in raw
        first_no = self._next_no
        self._next_no += text.count("\n")
        self._pos = stop
        return first_no, text, special


def first_content_line(lines: Lines) -> tuple[int, bytes | Overlong] | None:
    while (item := lines.next()) is not None:
        if isinstance(item[1], Overlong) or item[1].strip():
            return item
    return None


def decode(raw: bytes) -> tuple[str, bool]:
    """The text of ``raw``, and whether it holds a NUL or invalid UTF-8 (kept as surrogate
    escapes, so that the field holding it can be named and refused)."""
    try:
        return raw.decode("utf-8"), b"\x00" in raw
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), True


# --- CSV records --------------------------------------------------------------------------------


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


def _next_record(lines: Lines, delimiter: str, max_row_bytes: int) -> _Record | None:
    """The next CSV record (blank lines skipped), or ``None`` at the end; a quoted field
    may span lines, up to ``max_row_bytes`` in all.

    A record that breaks the CSV rules (unterminated quote, stray quote after a
    quoted field) is reported at its first line, and the lines after that first line
    are read again as records of their own: one bad quote costs one line, not the
    rest of the file.
    """
    while (item := lines.next()) is not None:
        line_no, first = item
        if isinstance(first, Overlong):
            return _Record(line_no, None, f"line of {first.n_bytes} bytes exceeds the limit of {max_row_bytes}",
                           first.head, False)
        body = first[:-1] if first.endswith(b"\n") else first
        body = body[:-1] if body.endswith(b"\r") else body
        if not body:
            continue  # blank line
        text, suspect = decode(first)
        if b'"' not in body and b"\r" not in body:
            # No quote and no stray carriage return: exactly what the csv module would give.
            return _Record(line_no, text[:len(text) - (len(first) - len(body))].split(delimiter), None, first,
                           suspect)
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
            return _Record(line_no, None, reason, first, feed.suspect, column=column)
        raw = first + b"".join(r for _, r in feed.taken) if feed.taken else first  # type: ignore[misc]
        return _Record(line_no, fields, None, raw, feed.suspect, n_lines=1 + len(feed.taken))
    return None


class _RecordLines:
    """The lines one CSV record is read from: its first line, then more while a quoted
    field is open, up to ``max_row_bytes`` in all (a longer record is left unfinished)."""

    def __init__(self, lines: Lines, first_text: str, first_size: int, suspect: bool, max_row_bytes: int) -> None:
        self._lines, self._first, self._max = lines, first_text, max_row_bytes
        self.size, self.suspect = first_size, suspect
        self.taken: list[tuple[int, bytes | Overlong]] = []
        self.stopped = ""  # why no more lines were given

    def __iter__(self) -> Iterator[str]:
        yield self._first
        while (more := self._lines.next()) is not None:
            more_raw = more[1]
            if isinstance(more_raw, Overlong) or self.size + len(more_raw) > self._max:
                self._lines.push_back([more])
                self.stopped = f"no closing quote within the limit of {self._max} bytes"
                return
            self.taken.append(more)
            self.size += len(more_raw)
            more_text, bad = decode(more_raw)
            self.suspect = self.suspect or bad
            yield more_text
        self.stopped = "no closing quote before the end of the file"


def read_header(lines: Lines, delimiter: str, max_row_bytes: int) -> list[str] | None:
    """The fields of the first record, or ``None`` for a file without one."""
    record = _next_record(lines, delimiter, max_row_bytes)
    if record is None:
        return None
    if record.error is not None:
        raise IngestError("header", f"line {record.line_no}: {record.error}")
    return record.fields  # NUL and invalid UTF-8 in names are refused by check_header


# --- CSV rows of one partition ----------------------------------------------------------------------


class Sink:
    """What a parser keeps for one partition, in line order: ``(line_no, values as JSON
    text)`` per good record and a :class:`RowError` per bad one."""

    __slots__ = ("errors", "records")

    def __init__(self) -> None:
        self.records: list[tuple[int, str]] = []
        self.errors: list[RowError] = []

    def __len__(self) -> int:
        return len(self.records) + len(self.errors)

    def add_values(self, line_no: int, values: dict) -> None:
        self.records.append((line_no, _encode(values).decode()))

    def take(self) -> tuple[list[tuple[int, str]], list[RowError]]:
        taken = self.records, self.errors
        self.records, self.errors = [], []
        return taken


class CsvPlan:
    """What :func:`csv_rows` needs about one CSV source and one partition."""

    def __init__(self, header: list[str], delimiter: str, max_row_bytes: int, rules: RowRules, partition: int,
                 n_partitions: int, after_line: int) -> None:
        self.header, self.delimiter, self.max_row_bytes, self.rules = header, delimiter, max_row_bytes, rules
        self.n_columns = len(header)
        self.key_index = header.index(rules.key) if rules.key is not None else -1
        self.time_index = header.index(rules.time) if rules.time is not None else -1
        self.partition, self.n_partitions, self.after_line = partition, n_partitions, after_line
        self.values_json = _json_object_builder(header)


#: Records wider than this get their JSON from a % template (see _json_object_builder).
_MAX_BUILT_COLUMNS = 256


def _json_object_builder(names: list[str]):
    """A function from the fields of a plain record (no quote, backslash or control
    character in them) to the JSON text of its values, ``{"name":"field",...}``.

    Built as an f-string over the fields, with every piece of JSON text around them (the
    names, encoded once) bound as a default argument: the generated source holds only
    generated identifiers, never a column name. Half the time of ``template % fields``.

    Wider records (more than 256 columns) use ``template % fields``.

    >>> _json_object_builder(["id", "name"])(["7", "Ada"])
    '{"id":"7","name":"Ada"}'
    """
    pieces = [("{" if i == 0 else '",') + _encode(name).decode() + ':"' for i, name in enumerate(names)]
    pieces.append('"}')
    if len(names) > _MAX_BUILT_COLUMNS:  # compiling the f-string grows faster than linearly
        template = "%s".join(piece.replace("%", "%%") for piece in pieces)
        return lambda fields: template % tuple(fields)
    defaults = {f"_p{i}": piece for i, piece in enumerate(pieces)}
    body = "".join(f"{{_p{i}}}{{f[{i}]}}" for i in range(len(names))) + f"{{_p{len(names)}}}"
    source = f"lambda f, {', '.join(f'{k}={k}' for k in defaults)}: f'{body}'"
    return eval(source, {"__builtins__": {}}, defaults)  # noqa: S307 - source built from identifiers only


def csv_rows(lines: Lines, plan: CsvPlan, sink: Sink) -> Iterator[None]:
    """Put the records of ``plan.partition`` into ``sink``, yielding after each run or record."""
    after, partition, n_partitions = plan.after_line, plan.partition, plan.n_partitions
    key_index = plan.key_index
    while True:
        run = lines.take_run()
        if run is not None:
            first_no, text, special = run
            if first_no + text.count("\n") - 1 > after:
                _csv_run(first_no, text, not special, plan, sink)
            yield None
            continue
        record = _next_record(lines, plan.delimiter, plan.max_row_bytes)
        if record is None:
            return
        no = record.line_no
        if record.error is not None or len(record.fields) != plan.n_columns or key_index < 0:
            owner = no % n_partitions
        else:
            owner = line_owner(no, record.fields[key_index], n_partitions)
        if owner == partition and no > after:
            _csv_record_item(record, plan, sink)
        yield None


def _csv_run(first_no: int, text: str, clean: bool, plan: CsvPlan, sink: Sink) -> None:
    """The records of a run of plain lines (one record per line, no quotes) that belong to
    the partition: good ones as JSON text, others through :func:`_csv_record_item`. In a
    ``clean`` run no key holds a control character and no value needs escaping in JSON."""
    lines = text.split("\n")
    lines.pop()  # the text ends with a newline
    header, delimiter, n_columns = plan.header, plan.delimiter, plan.n_columns
    key_index, time_index = plan.key_index, plan.time_index
    partition, n_partitions, after = plan.partition, plan.n_partitions, plan.after_line
    big = plan.rules.max_field_bytes // 4
    values_json, records, crc32 = plan.values_json, sink.records, zlib.crc32
    no = first_no - 1
    for line in lines:
        no += 1
        if not line:
            continue  # blank line
        fields = line.split(delimiter)
        if len(fields) != n_columns:
            if no % n_partitions == partition and no > after:
                _csv_record_item(_Record(no, fields, None, (line + "\n").encode(), False), plan, sink)
            continue
        good_key = True
        if key_index >= 0:
            key = fields[key_index]
            if key and len(key) <= MAX_KEY_CHARS and (clean or not _CONTROL.search(key)):
                if crc32(key.encode()) % n_partitions != partition:
                    continue
            elif no % n_partitions != partition:
                continue
            else:
                good_key = False
        elif no % n_partitions != partition:
            continue
        if no <= after:
            continue
        if not good_key or len(line) > big or (time_index >= 0 and time_problem(fields[time_index])):
            _csv_record_item(_Record(no, fields, None, (line + "\n").encode(), False), plan, sink)
        elif clean:
            records.append((no, values_json(fields)))
        else:
            sink.add_values(no, dict(zip(header, fields)))


def _csv_record_item(record: _Record, plan: CsvPlan, sink: Sink) -> None:
    """Check one record of the partition: its values into ``sink``, or its error."""
    header, n_columns, rules = plan.header, plan.n_columns, plan.rules
    no = record.line_no
    if record.error is not None:
        field = header[record.column] if 0 <= record.column < n_columns else None
        sink.errors.append(RowError(no, field, record.error, raw_excerpt(record.raw)))
        return
    fields = record.fields
    if len(fields) != n_columns:
        span = f" (lines {no}-{no + record.n_lines - 1})" if record.n_lines > 1 else ""
        if len(fields) < n_columns:
            sink.errors.append(RowError(no, header[len(fields)],
                                        f"missing: expected {n_columns} fields, found {len(fields)}{span}",
                                        raw_excerpt(record.raw)))
        else:
            sink.errors.append(RowError(no, None, f"expected {n_columns} fields, found {len(fields)}{span}",
                                        raw_excerpt(record.raw)))
        return
    problem = None
    if record.suspect:
        problem = next(((name, text_problem(value)) for name, value in zip(header, fields)
                        if _BAD_TEXT.search(value)), None)
    if problem is None and len(record.raw) > rules.max_field_bytes:
        problem = next(((name, reason) for name, value in zip(header, fields)
                        if (reason := rules.field_too_big(name, value))), None)
    values = dict(zip(header, fields))
    if problem is None:
        problem = rules.check(values)
    if problem is not None:
        sink.errors.append(RowError(no, problem[0], problem[1], raw_excerpt(record.raw)))
        return
    sink.add_values(no, values)
