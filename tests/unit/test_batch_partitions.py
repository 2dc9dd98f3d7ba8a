"""Each loader parses only its partition of a file: every line, good or bad, is stored or
reported by exactly one partition, and what each keeps is what the whole file gives."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors.batch_rules
import actors.batch_text
from actors.batch_parse import (
    IngestError, ParsedRow, RowError, line_owner, parse_chunks, parse_file, partition_of,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Pieces of CSV that exercise both the plain-line path and the general one.
csv_pieces = st.lists(st.sampled_from([
    b"k1,2,3\n", b"k2,x,y\n", b"7,a,b\n", b",1,2\n", b"k3,1\n", b"k4,1,2,3\n", b'"q,1",2,3\n', b'k5,"a\nb",c\n',
    b'"', b",", b"\n", b"\r\n", b"\r", b"\x00", b"\xff", b"\\", b"\t", b"\x7f", b"%s", b"\xc3\xa9", b"\xc2\x85",
    b"\xc2\xb0", b"x" * 40,
    b"k" * 300 + b",1,2\n",
]), max_size=40).map(b"".join)


def write(tmp_path: Path, content: bytes, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def by_partition(path: Path, fmt: str, n: int, **options) -> list[list[ParsedRow | RowError]]:
    return [list(parse_file(path, fmt, partition=p, n_partitions=n, **options)) for p in range(n)]


def assert_split_exactly(parts: list[list], whole: list, n: int, key: str | None) -> None:
    """Every item of the whole file in exactly one partition, in line order, nothing else."""
    merged = sorted((item for part in parts for item in part), key=lambda i: i.line_no)
    assert merged == whole
    for p, part in enumerate(parts):
        assert [i.line_no for i in part] == sorted({i.line_no for i in part})
        for item in part:
            if isinstance(item, ParsedRow):
                assert partition_of(item, n, key) == p


@FUZZ
@given(body=csv_pieces, n=st.integers(1, 4), key=st.sampled_from(["id", None]))
def test_csv_partitions_split_the_file_exactly(tmp_path, body, n, key):
    path = write(tmp_path, b"id,a,b\n" + body, "p.csv")
    options = dict(key=key, max_field_bytes=60, max_row_bytes=200)
    whole = list(parse_file(path, "csv", **options))
    assert_split_exactly(by_partition(path, "csv", n, **options), whole, n, key)


@FUZZ
@given(body=csv_pieces, n=st.integers(1, 3), time=st.sampled_from([None, "a"]))
def test_plain_lines_give_what_the_general_csv_path_gives(tmp_path, monkeypatch, body, n, time):
    path = write(tmp_path, b"id,a,b\n" + body, "g.csv")
    options = dict(key="id", time=time, max_field_bytes=60, max_row_bytes=200)
    fast = by_partition(path, "csv", n, **options)
    with monkeypatch.context() as patched:
        patched.setattr(actors.batch_text.Lines, "take_run", lambda self: None)  # every line the general way
        general = by_partition(path, "csv", n, **options)
    assert fast == general


jsonl_lines = st.lists(st.one_of(
    st.fixed_dictionaries({"id": st.one_of(st.text(max_size=5), st.integers(), st.none(), st.booleans()),
                           "x": st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=1))}
                          ).map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b"not json", b"[1]", b"", b'{"x": 1}', b'{"id": "\xff"}', b'{"id": "k", "x": 1e999}']),
), max_size=25).map(lambda lines: b"\n".join(lines) + b"\n")


@FUZZ
@given(body=jsonl_lines, n=st.integers(1, 4), key=st.sampled_from(["id", None]))
def test_jsonl_partitions_split_the_file_exactly(tmp_path, body, n, key):
    path = write(tmp_path, b'{"id": "first", "x": 0}\n' + body, "p.jsonl")
    whole = list(parse_file(path, "jsonl", key=key))
    assert_split_exactly(by_partition(path, "jsonl", n, key=key), whole, n, key)


def test_a_bad_row_is_reported_by_the_partition_of_its_key_else_by_its_line_number(tmp_path):
    path = write(tmp_path, b"id,ts,x\n"            # 1
                           b"a,1,ok\n"              # 2: good
                           b"a,yesterday,x\n"       # 3: bad time, key 'a' readable
                           b",5,x\n"                # 4: empty key
                           b"b,1,x,extra\n"         # 5: wrong field count
                           b'"b,1,x\n', "own.csv")  # 6: unterminated quote
    parts = by_partition(path, "csv", 4, key="id", time="ts")
    where = {item.line_no: p for p, part in enumerate(parts) for item in part}
    a = line_owner(2, "a", 4)
    assert where == {2: a, 3: a, 4: 4 % 4, 5: 5 % 4, 6: 6 % 4}
    assert sum(isinstance(i, RowError) for part in parts for i in part) == 4


def test_chunks_hold_json_text_of_the_values_and_resume_after_a_line(tmp_path):
    body = b"".join(b"k%d,%d,caf\xc3\xa9 %%s\n" % (i, i) for i in range(50)) + b"k50,1,tab\there\n"
    path = write(tmp_path, b"id,n,s\n" + body, "c.csv")
    chunks = list(parse_chunks(path, "csv", key="id", partition=1, n_partitions=2, chunk_rows=10))
    records = [r for c in chunks for r in c.records]
    assert all(len(c.records) >= 10 for c in chunks[:-1])
    rows = {r.line_no: r for r in parse_file(path, "csv", key="id")}
    for line_no, text in records:
        assert text == msgspec.json.encode(rows[line_no].values).decode()
    middle = records[len(records) // 2][0]
    later = [r for c in parse_chunks(path, "csv", key="id", partition=1, n_partitions=2, after_line=middle)
             for r in c.records]
    assert later == [r for r in records if r[0] > middle]


def test_values_json_is_what_msgspec_gives_whatever_the_column_names(tmp_path):
    names = ["id", 'q"uote', "back\\slash", "{brace}", "per%cent", "f'{x}'", "été", "tab\tbed"[:3]]
    header = ",".join(f'"{n}"' if '"' not in n else '"q""uote"' for n in names).encode()
    path = write(tmp_path, header + b"\n" + b"".join(b"k%d,1,2,3,4,5,6,7\n" % i for i in range(20)), "n.csv")
    [chunk] = parse_chunks(path, "csv", key="id")
    for line_no, text in chunk.records:
        assert text == msgspec.json.encode(dict(zip(names, [f"k{line_no - 2}", *"1234567"]))).decode()
    wide = ["id", *(f"c%{i}" for i in range(1000))]
    path = write(tmp_path, ",".join(wide).encode() + b"\n" + b"k," + b",".join(b"%d" % i for i in range(1000)) + b"\n",
                 "wide.csv")
    [chunk] = parse_chunks(path, "csv", key="id")
    assert chunk.records == [(2, msgspec.json.encode(dict(zip(wide, ["k", *map(str, range(1000))]))).decode())]


@pytest.mark.parametrize("options, field", [
    ({"partition": 2, "n_partitions": 2}, "partition"),
    ({"partition": -1, "n_partitions": 2}, "partition"),
    ({"n_partitions": 0}, "n_partitions"),
    ({"after_line": -1}, "after_line"),
    ({"chunk_rows": 0}, "chunk_rows"),
])
def test_bad_partition_options_are_refused(tmp_path, options, field):
    with pytest.raises(IngestError) as info:
        parse_chunks(write(tmp_path, b"id\n1\n", "o.csv"), "csv", **options)
    assert info.value.field == field


@pytest.mark.parametrize("module", [actors.batch_rules, actors.batch_text], ids=lambda m: m.__name__)
def test_module_doctests_pass(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
