"""Unit tests of the pure part of offline ingestion: checksum, parser, header and name checks, partitioning."""

from __future__ import annotations

import csv
import doctest
import io
import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors.batch_parse
import messages.ingestion
from actors.batch_parse import (
    IngestError, ParsedRow, RowError, check_header, file_checksum, parse_file, partition_of, partition_rows,
    validate_dataset_name,
)
from messages.ingestion import IngestBatch, RawIngested, SourceAvailable

HEADER = b"id,ts,text,label\n"


def write(tmp_path: Path, content: bytes, name: str = "source.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def parse(path: Path, fmt: str = "csv", **options) -> list[ParsedRow | RowError]:
    return list(parse_file(path, fmt, **options))


def good(items) -> list[ParsedRow]:
    return [i for i in items if isinstance(i, ParsedRow)]


def bad(items) -> list[RowError]:
    return [i for i in items if isinstance(i, RowError)]


def only_error(items) -> RowError:
    errors = bad(items)
    assert len(errors) == 1, errors
    return errors[0]


def ingest_error(call, *args, **kwargs) -> IngestError:
    with pytest.raises(IngestError) as info:
        result = call(*args, **kwargs)
        list(result) if result is not None and not isinstance(result, str) else None
    assert isinstance(info.value, ValueError)
    assert str(info.value) == f"{info.value.field}: {info.value.reason}"
    return info.value


# --- good CSV ---------------------------------------------------------------------------------


def test_good_csv_rows_keep_their_values_as_strings(tmp_path):
    path = write(tmp_path, HEADER + b"1,1700000000,hello,a\n2,2024-05-01T10:00:00Z,\xc3\xa9t\xc3\xa9,b\n")
    rows = parse(path, key="id", time="ts", label="label")
    assert rows == [
        ParsedRow(2, {"id": "1", "ts": "1700000000", "text": "hello", "label": "a"}),
        ParsedRow(3, {"id": "2", "ts": "2024-05-01T10:00:00Z", "text": "été", "label": "b"}),
    ]


def test_csv_values_are_unchanged_not_converted(tmp_path):
    path = write(tmp_path, b"id,x,y,z\n007,1.50, padded ,\n")
    [row] = parse(path, key="id")
    assert row.values == {"id": "007", "x": "1.50", "y": " padded ", "z": ""}


def test_quoted_fields_with_commas_quotes_and_newlines(tmp_path):
    path = write(tmp_path, HEADER + b'1,5,"a, b",x\n2,6,"say ""hi""",y\n3,7,"two\nlines",z\n4,8,after,w\n')
    rows = parse(path, key="id", time="ts", label="label")
    assert [r.line_no for r in rows] == [2, 3, 4, 6]
    assert [r.values["text"] for r in rows] == ["a, b", 'say "hi"', "two\nlines", "after"]


def test_crlf_line_endings_bom_blank_lines_and_no_final_newline(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfid,x\r\n1,a\r\n\r\n\n2,b")
    assert parse(path, key="id") == [ParsedRow(2, {"id": "1", "x": "a"}), ParsedRow(5, {"id": "2", "x": "b"})]


def test_values_that_look_hostile_are_data_and_kept(tmp_path):
    text = "'; DROP TABLE raw_records; --"
    path = write(tmp_path, b'id,x\n1,"' + text.encode() + b'"\n2,../../etc/passwd\n')
    assert [r.values["x"] for r in parse(path, key="id")] == [text, "../../etc/passwd"]


def test_header_only_file_has_no_rows(tmp_path):
    assert parse(write(tmp_path, HEADER), key="id") == []


def test_another_delimiter(tmp_path):
    path = write(tmp_path, b"id;x\n1;a,b\n")
    assert parse(path, key="id", delimiter=";") == [ParsedRow(2, {"id": "1", "x": "a,b"})]


def test_csv_agrees_with_the_csv_module_on_well_formed_files(tmp_path):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["id", "a", "b"])
    for i in range(200):
        writer.writerow([f"k{i}", f"v,{i}" if i % 3 else f'q"{i}', "multi\nline" if i % 7 == 0 else str(i * 1.5)])
    path = write(tmp_path, buffer.getvalue().encode())
    expected = list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))
    assert [r.values for r in parse(path, key="id")] == expected


csv_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.lists(st.lists(csv_text, min_size=3, max_size=3), max_size=15))
def test_whatever_the_csv_module_writes_is_read_back_unchanged(tmp_path, table):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["id", "a", "b"])
    writer.writerows([f"k{i}", *row[1:]] for i, row in enumerate(table))
    path = write(tmp_path, buffer.getvalue().encode("utf-8"), "h.csv")
    expected = list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))
    assert [r.values for r in parse(path, key="id")] == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | st.lists(st.sampled_from(
    [b"1,2,3\n", b'"', b",", b"\n", b"\r", b"\x00", b"\xff", b'"a""b"', b"x" * 40]), max_size=40).map(b"".join))
def test_arbitrary_bytes_never_break_the_parser(tmp_path, body):
    path = write(tmp_path, b"id,a,b\n" + body, "fuzz.csv")
    items = parse(path, key="id", max_field_bytes=30, max_row_bytes=100)
    numbers = [i.line_no for i in items]
    assert numbers == sorted(set(numbers))  # one result per record, in file order
    for item in items:
        if isinstance(item, ParsedRow):
            assert list(item.values) == ["id", "a", "b"]
            assert all("\x00" not in v and len(v.encode()) <= 30 for v in item.values.values())
        else:
            assert "\x00" not in item.raw and "\x00" not in item.reason
            item.raw.encode("utf-8")  # storable text


# --- good JSONL ---------------------------------------------------------------------------------


def test_good_jsonl_keeps_json_scalars(tmp_path):
    lines = [{"id": 1, "ts": 1.7e9, "x": 0.25, "flag": True, "none": None, "s": "été", "big": 10**30},
             {"id": "k2", "ts": "2024-01-01", "x": -3}]
    path = write(tmp_path, "\n".join(json.dumps(d, ensure_ascii=False) for d in lines).encode() + b"\n\n",
                 "s.jsonl")
    rows = parse(path, "jsonl", key="id", time="ts")
    assert rows == [ParsedRow(1, lines[0]), ParsedRow(2, lines[1])]
    assert type(rows[0].values["id"]) is int and type(rows[0].values["x"]) is float


def test_jsonl_rows_may_have_different_members(tmp_path):
    path = write(tmp_path, b'{"id": 1, "a": 1}\n{"id": 2, "b": "x"}\n', "s.jsonl")
    assert [r.values for r in parse(path, "jsonl", key="id")] == [{"id": 1, "a": 1}, {"id": 2, "b": "x"}]


# --- empty files and headers ------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\r\n"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_empty_file_is_refused(tmp_path, content, fmt):
    err = ingest_error(parse_file, write(tmp_path, content), fmt)
    assert err.field == "file" and "empty" in err.reason


@pytest.mark.parametrize("option", ["key", "time", "label"])
def test_missing_named_column_is_refused(tmp_path, option):
    path = write(tmp_path, b"a,b\n1,2\n")
    err = ingest_error(parse_file, path, "csv", **{option: "nope"})
    assert err.field == option
    assert "'nope' is not in the header" in err.reason


def test_duplicate_column_names_are_refused(tmp_path):
    err = ingest_error(parse_file, write(tmp_path, b"id,x,x\n1,2,3\n"), "csv")
    assert err.field == "header" and "duplicate column name 'x'" in err.reason


@pytest.mark.parametrize("name, why", [
    (b"a\x01b", "control characters"),
    (b"a\x00b", "control characters"),
    (b"tab\there", "control characters"),
    (b"x" * 129, "129 characters"),
    (b"", "empty column name"),
    (b"\xff\xfe", "not valid UTF-8"),
])
def test_hostile_column_names_are_refused(tmp_path, name, why):
    err = ingest_error(parse_file, write(tmp_path, b"id," + name + b"\n1,2\n"), "csv")
    assert err.field == "header" and why in err.reason
    assert "column 2" in err.reason


def test_column_names_with_quotes_or_sql_are_just_names(tmp_path):
    path = write(tmp_path, b'id,"it\'s ""x""","a; DROP TABLE t"\n1,2,3\n')
    [row] = parse(path, key="id")
    assert row.values == {"id": "1", "it's \"x\"": "2", "a; DROP TABLE t": "3"}


def test_a_header_of_128_characters_is_accepted(tmp_path):
    [row] = parse(write(tmp_path, b"id," + b"c" * 128 + b"\n1,2\n"))
    assert row.values["c" * 128] == "2"


def test_malformed_header_is_refused(tmp_path):
    err = ingest_error(parse_file, write(tmp_path, b'id,"x\n'), "csv")
    assert err.field == "header" and "unterminated" in err.reason


def test_check_header_directly():
    assert check_header(["id", "y"], key="id", label="y") == ["id", "y"]
    assert ingest_error(check_header, None).field == "file"
    assert ingest_error(check_header, [], key="id").field == "file"


@pytest.mark.parametrize("options, field", [
    ({"key": "a\x00"}, "key"), ({"label": "x" * 200}, "label"), ({"time": ""}, "time"),
    ({"key": "a", "label": "a"}, "options"), ({"max_field_bytes": 0}, "options"), ({"delimiter": '"'}, "delimiter"),
])
def test_hostile_or_clashing_options_are_refused(tmp_path, options, field):
    assert ingest_error(parse_file, write(tmp_path, b"a\n1\n"), "csv", **options).field == field


@pytest.mark.parametrize("fmt", ["xlsx", "CSV", "", "../csv"])
def test_unknown_format_is_refused(tmp_path, fmt):
    assert ingest_error(parse_file, write(tmp_path, b"a\n1\n"), fmt).field == "format"


def test_missing_file_is_an_ingest_error_naming_the_path(tmp_path):
    err = ingest_error(parse_file, tmp_path / "nope.csv", "csv")
    assert err.field == "path" and "nope.csv" in err.reason
    assert ingest_error(parse_file, tmp_path, "csv").field == "path"  # a directory


def test_file_level_errors_are_raised_by_the_call_itself(tmp_path):
    with pytest.raises(IngestError):
        parse_file(write(tmp_path, b""), "csv")  # no iteration needed


# --- malformed CSV lines ------------------------------------------------------------------------


def test_too_many_fields_names_the_line(tmp_path):
    items = parse(write(tmp_path, HEADER + b"1,2,x,a\n2,3,y,b,extra\n3,4,z,c\n"))
    error = only_error(items)
    assert (error.line_no, error.field) == (3, None)
    assert error.reason == "expected 4 fields, found 5"
    assert error.raw == "2,3,y,b,extra"
    assert [r.line_no for r in good(items)] == [2, 4]


def test_too_few_fields_names_the_first_missing_column(tmp_path):
    error = only_error(parse(write(tmp_path, HEADER + b"1,2\n")))
    assert (error.line_no, error.field) == (2, "text")
    assert "expected 4 fields, found 2" in error.reason


def test_unterminated_quote_costs_its_line_only(tmp_path):
    content = HEADER + b'1,5,"never closed,a\n2,6,fine,b\n3,7,"quoted",c\n4,8,also fine,d\n'
    items = parse(write(tmp_path, content), key="id", time="ts", label="label")
    error = only_error(items)
    assert (error.line_no, error.field) == (2, "text")
    assert error.reason.startswith("unterminated quoted field")
    assert [r.line_no for r in good(items)] == [3, 4, 5]


def test_unterminated_quote_at_the_end_of_the_file(tmp_path):
    items = parse(write(tmp_path, HEADER + b'1,5,ok,a\n2,6,"open,b\n3,7,last,c\n'))
    error = only_error(items)
    assert error.line_no == 3 and "end of the file" in error.reason
    assert [r.line_no for r in good(items)] == [2, 4]


def test_unterminated_quote_is_bounded_by_the_row_limit(tmp_path):
    filler = b"".join(b"%d,1,row,x\n" % i for i in range(100))
    items = parse(write(tmp_path, HEADER + b'0,1,"open,x\n' + filler), max_row_bytes=300)
    error = only_error(items)
    assert error.line_no == 2 and "within the limit of 300 bytes" in error.reason
    assert len(good(items)) == 100


def test_stray_quote_after_a_quoted_field(tmp_path):
    items = parse(write(tmp_path, HEADER + b'1,2,"ab"c,x\n2,3,ok,y\n'))
    error = only_error(items)
    assert error.line_no == 2 and error.reason.startswith("malformed CSV")
    assert [r.line_no for r in good(items)] == [3]


def test_stray_carriage_return_in_an_unquoted_field(tmp_path):
    items = parse(write(tmp_path, HEADER + b"1,2,a\rb,x\n2,3,ok,y\n"))
    assert only_error(items).line_no == 2
    assert len(good(items)) == 1


def test_multi_line_record_with_wrong_field_count_names_its_lines(tmp_path):
    items = parse(write(tmp_path, b'id,x\n1,"a\nb",extra\n2,ok\n'))
    error = only_error(items)
    assert error.line_no == 2 and "(lines 2-3)" in error.reason
    assert [r.line_no for r in good(items)] == [4]


# --- bytes that cannot be stored --------------------------------------------------------------


def test_nul_byte_is_refused_naming_the_field(tmp_path):
    items = parse(write(tmp_path, HEADER + b"1,2,a\x00b,x\n2,3,ok,y\n"))
    error = only_error(items)
    assert (error.line_no, error.field, error.reason) == (2, "text", "contains a NUL character")
    assert "\x00" not in error.raw and "\\x00" in error.raw
    assert len(good(items)) == 1


def test_invalid_utf8_is_refused_naming_the_field(tmp_path):
    items = parse(write(tmp_path, HEADER + b"1,2,ok,x\n2,3,caf\xe9,y\n3,4,fine,z\n"))
    error = only_error(items)
    assert (error.line_no, error.field, error.reason) == (3, "text", "not valid UTF-8")
    assert "\\xe9" in error.raw
    assert [r.line_no for r in good(items)] == [2, 4]


def test_huge_field_is_refused_naming_the_field(tmp_path):
    big = b"x" * 5000
    items = parse(write(tmp_path, HEADER + b"1,2," + big + b",a\n2,3,ok,b\n"), max_field_bytes=4096)
    error = only_error(items)
    assert (error.line_no, error.field) == (2, "text")
    assert error.reason == "field of 5000 bytes exceeds the limit of 4096"
    assert len(error.raw) < 300
    assert len(good(items)) == 1


def test_field_limit_counts_bytes_not_characters(tmp_path):
    path = write(tmp_path, HEADER + b"1,2," + "é".encode() * 600 + b",a\n")  # 600 characters, 1,200 bytes
    assert only_error(parse(path, max_field_bytes=1000)).field == "text"
    assert len(good(parse(path, max_field_bytes=1200))) == 1


def test_field_at_the_default_limit_is_kept(tmp_path):
    value = b"y" * (1 << 20)
    items = parse(write(tmp_path, HEADER + b"1,2," + value + b",a\n1,2," + value + b"z,a\n"))
    assert [r.line_no for r in good(items)] == [2]
    assert only_error(items).line_no == 3


def test_quoted_fields_over_the_csv_modules_own_limit_are_kept(tmp_path):
    value = b"a,b " * 125_000  # 500 kB, quoted because of the commas
    items = parse(write(tmp_path, HEADER + b'1,2,"' + value + b'",x\n2,3,"' + value * 3 + b'",y\n'))
    assert [r.values["text"] for r in good(items)] == [value.decode()]
    assert (only_error(items).line_no, only_error(items).field) == (3, "text")


def test_overlong_line_is_skipped_without_being_held(tmp_path):
    items = parse(write(tmp_path, HEADER + b"1,2," + b"x" * 100_000 + b",a\n2,3,ok,b\n"), max_row_bytes=1000)
    error = only_error(items)
    assert error.line_no == 2 and "exceeds the limit of 1000" in error.reason
    assert [r.line_no for r in good(items)] == [3]


# --- keys, times, labels ("wrong types") -------------------------------------------------------


@pytest.mark.parametrize("value, reason", [
    (b"", "empty key"),
    (b"k" * 257, "257 characters"),
    (b'"a\x01b"', "control characters"),
])
def test_bad_csv_keys(tmp_path, value, reason):
    error = only_error(parse(write(tmp_path, b"id,x\n" + value + b",1\n"), key="id"))
    assert error.field == "id" and reason in error.reason


@pytest.mark.parametrize("value", [b"yesterday", b"nan", b"inf", b"2024-13-45", b"12:00 tomorrow"])
def test_bad_csv_times(tmp_path, value):
    error = only_error(parse(write(tmp_path, b"id,ts\n1," + value + b"\n"), key="id", time="ts"))
    assert error.field == "ts"


@pytest.mark.parametrize("value", [b"1700000000", b"1.7e9", b"-5", b"2024-01-01", b"2024-01-01T10:11:12.5+02:00",
                                   b"2024-01-01 10:11:12Z"])
def test_good_csv_times(tmp_path, value):
    assert len(good(parse(write(tmp_path, b"id,ts\n1," + value + b"\n"), key="id", time="ts"))) == 1


def test_empty_csv_time_is_missing(tmp_path):
    error = only_error(parse(write(tmp_path, b"id,ts\n1,\n"), time="ts"))
    assert (error.field, error.reason) == ("ts", "missing time")


def test_empty_csv_label_is_kept(tmp_path):
    assert parse(write(tmp_path, b"id,y\n1,\n"), key="id", label="y") == [ParsedRow(2, {"id": "1", "y": ""})]


@pytest.mark.parametrize("obj, field, reason", [
    ({"x": 1}, "id", "missing key"),
    ({"id": 1.5}, "id", "not a number"),
    ({"id": True}, "id", "not a boolean"),
    ({"id": None}, "id", "not null"),
    ({"id": ""}, "id", "empty key"),
    ({"id": 1, "y": 1}, "ts", "missing time"),
    ({"id": 1, "ts": "soon", "y": 1}, "ts", "not a time"),
    ({"id": 1, "ts": True, "y": 1}, "ts", "not a boolean"),
    ({"id": 1, "ts": 5}, "y", "missing label"),
])
def test_wrong_types_and_missing_columns_in_jsonl(tmp_path, obj, field, reason):
    path = write(tmp_path, json.dumps(obj).encode() + b"\n", "s.jsonl")
    error = only_error(parse(path, "jsonl", key="id", time="ts", label="y"))
    assert (error.line_no, error.field) == (1, field)
    assert reason in error.reason


def test_jsonl_null_label_is_kept(tmp_path):
    path = write(tmp_path, b'{"id": 7, "y": null}\n', "s.jsonl")
    assert parse(path, "jsonl", key="id", label="y") == [ParsedRow(1, {"id": 7, "y": None})]


# --- malformed JSONL ----------------------------------------------------------------------------


@pytest.mark.parametrize("line, field, reason", [
    (b'{"id": 1, ', None, "invalid JSON"),
    (b"{'id': 1}", None, "invalid JSON"),
    (b'{"id": 1} {"id": 2}', None, "invalid JSON"),
    (b'{"id": 1, "x": NaN}', None, "invalid JSON"),
    (b'{"id": 1, "x": 1e400}', None, "invalid JSON"),
    (b'[1, 2]', None, "expected a JSON object, found an array"),
    (b'"text"', None, "expected a JSON object, found a string"),
    (b'{"id": 1, "x": {"a": 1}}', "x", "nested an object"),
    (b'{"id": 1, "x": [1]}', "x", "nested an array"),
    (b'{"id": 1, "x": "a\\u0000b"}', "x", "NUL"),
    (b'{"id": 1, "x": "caf\xe9"}', "x", "not valid UTF-8"),
    (b'{"id": 1, "x": "a\x00b"}', None, "invalid JSON"),
    (b'{"id": 1, "a\\u0001b": 2}', "a\\x01b", "control characters"),
    (b'{"id": 1, "": 2}', None, "empty column name"),
])
def test_bad_jsonl_lines_are_row_errors(tmp_path, line, field, reason):
    path = write(tmp_path, b'{"id": 0}\n' + line + b'\n{"id": 2}\n', "s.jsonl")
    items = parse(path, "jsonl", key="id")
    error = only_error(items)
    assert (error.line_no, error.field) == (2, field)
    assert reason in error.reason, error.reason
    assert "\x00" not in error.raw and "\x00" not in error.reason
    assert [r.line_no for r in good(items)] == [1, 3]


def test_huge_jsonl_field_and_line(tmp_path):
    path = write(tmp_path, b'{"id": 1, "x": "' + b"z" * 3000 + b'"}\n{"id": 2, "x": "' + b"z" * 20000 + b'"}\n'
                 b'{"id": 3}\n', "s.jsonl")
    items = parse(path, "jsonl", key="id", max_field_bytes=2048, max_row_bytes=10000)
    first, second = bad(items)
    assert (first.line_no, first.field) == (1, "x") and "3000 bytes" in first.reason
    assert (second.line_no, second.field) == (2, None) and "exceeds the limit of 10000" in second.reason
    assert [r.line_no for r in good(items)] == [3]


def test_deeply_nested_json_is_a_row_error(tmp_path):
    path = write(tmp_path, b'{"id": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", "s.jsonl")
    assert only_error(parse(path, "jsonl")).line_no == 1


# --- dataset names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["iris", "Iris_2024.v1-final", "a", "a" * 63])
def test_good_dataset_names(name):
    assert validate_dataset_name(name) == name


@pytest.mark.parametrize("name", [
    "", "a" * 64, "1abc", "_x", ".hidden", "../etc/passwd", "a/../../b", "a/b", "..\\windows", "x'y", 'x"y',
    "x'; DROP TABLE raw_records; --", "a b", "a\x00", "a\nb", "naïve", "robert');--", None, 42, b"iris",
])
def test_hostile_dataset_names_are_refused(name):
    err = ingest_error(validate_dataset_name, name)
    assert err.field == "dataset"
    assert "\x00" not in err.reason and "\n" not in err.reason


@given(st.text(max_size=80))
def test_dataset_names_agree_with_the_message_type(name):
    try:
        msgspec.json.decode(msgspec.json.encode({"type": "ingest.batch", "dataset": name, "path": "/p",
                                                 "format": "csv"}), type=IngestBatch)
        accepted = True
    except msgspec.ValidationError:
        accepted = False
    try:
        validate_dataset_name(name)
        valid = True
    except IngestError:
        valid = False
    assert accepted == valid


# --- checksum -----------------------------------------------------------------------------------


def test_checksum_is_sha256_hex(tmp_path):
    assert file_checksum(write(tmp_path, b"")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_checksum_is_stable_and_independent_of_chunk_size_and_name(tmp_path):
    content = bytes(range(256)) * 5000
    a, b = write(tmp_path, content, "a.csv"), write(tmp_path, content, "b.csv")
    assert file_checksum(a) == file_checksum(a) == file_checksum(b) == file_checksum(a, chunk_size=7)
    assert file_checksum(write(tmp_path, content + b"\n", "c.csv")) != file_checksum(a)


# --- partitioning -------------------------------------------------------------------------------

row_values = st.dictionaries(st.sampled_from(["id", "x"]), st.one_of(st.text(max_size=8), st.integers()),
                             max_size=2)
row_lists = st.lists(st.builds(ParsedRow, st.integers(1, 10**6), row_values), max_size=60)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(rows=row_lists, n=st.integers(1, 9), key=st.sampled_from([None, "id"]))
def test_every_row_lands_in_exactly_one_partition_the_same_each_time(rows, n, key):
    parts = partition_rows(rows, n, key=key)
    assert len(parts) == n
    placed = [(i, p) for p, part in enumerate(parts) for i in map(id, part)]
    assert sorted(i for i, _ in placed) == sorted(map(id, rows))  # each row exactly once
    assert partition_rows(list(rows), n, key=key) == parts  # same input, same partitions
    for p, part in enumerate(parts):
        assert all(partition_of(r, n, key) == p for r in part)
        assert part == [r for r in rows if partition_of(r, n, key) == p]  # file order kept


@given(key_value=st.one_of(st.text(max_size=20), st.integers()), a=st.integers(1, 10**6),
       b=st.integers(1, 10**6), n=st.integers(1, 16))
def test_rows_with_the_same_key_share_a_partition(key_value, a, b, n):
    first, second = ParsedRow(a, {"id": key_value}), ParsedRow(b, {"id": key_value})
    assert partition_of(first, n, "id") == partition_of(second, n, "id")


def test_partitioning_is_stable_across_runs():
    # crc32 is fixed by its definition, unlike hash(): the same key goes to the same worker in every process.
    assert [partition_of(ParsedRow(1, {"id": k}), 4, "id") for k in ("a", "b", "user-1", 42)] == [3, 1, 0, 0]
    assert [partition_of(ParsedRow(n, {}), 3) for n in (2, 3, 4)] == [2, 0, 1]


def test_rows_without_a_key_column_go_by_line_number(tmp_path):
    path = write(tmp_path, b"x\n" + b"".join(b"%d\n" % i for i in range(10)))
    parts = partition_rows(good(parse(path)), 3)
    assert [[r.line_no for r in part] for part in parts] == [[3, 6, 9], [4, 7, 10], [2, 5, 8, 11]]


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_bad_partition_counts_are_refused(n):
    with pytest.raises(ValueError):
        partition_rows([], n)


# --- streaming and messages -----------------------------------------------------------------------


def test_the_parser_streams(tmp_path):
    path = write(tmp_path, HEADER + b"".join(b"%d,1,x,y\n" % i for i in range(100_000)))
    rows = parse_file(path, "csv", key="id")
    assert next(rows) == ParsedRow(2, {"id": "0", "ts": "1", "text": "x", "label": "y"})
    rows.close()  # closes the file


@pytest.mark.parametrize("message", [
    SourceAvailable(dataset="iris", path="/data/iris.csv", format="csv", label_column="species"),
    IngestBatch(dataset="iris", path="/data/iris.jsonl", format="jsonl", key_column="id", time_column="ts"),
    RawIngested(dataset="iris", batch_id="b1", checksum="a" * 64, n_rows=10, n_rejected=2),
    RawIngested(dataset="iris", batch_id="b1", checksum="a" * 64, n_rows=10, n_rejected=2, duplicate_of="b1"),
], ids=lambda m: type(m).__name__)
def test_ingestion_messages_round_trip_with_their_tags(message):
    wire = msgspec.json.encode(message)
    assert json.loads(wire)["type"] == type(message).__struct_config__.tag
    assert msgspec.json.decode(wire, type=type(message)) == message


@pytest.mark.parametrize("payload, where", [
    ({"dataset": "../x", "path": "/p", "format": "csv"}, "$.dataset"),
    ({"dataset": "x", "path": "/p", "format": "xlsx"}, "$.format"),
    ({"dataset": "x", "path": "/p\x00", "format": "csv"}, "$.path"),
    ({"dataset": "x", "path": "/p", "format": "csv", "key_column": "a\nb"}, "$.key_column"),
])
def test_ingestion_commands_validate_their_fields(payload, where):
    with pytest.raises(msgspec.ValidationError, match=r"\$\.\w+") as info:
        msgspec.json.decode(json.dumps({"type": "ingest.batch", **payload}), type=IngestBatch)
    assert where in str(info.value)


def test_raw_ingested_counts_and_checksum_are_validated():
    base = {"type": "raw.ingested", "dataset": "x", "batch_id": "b", "checksum": "a" * 64, "n_rows": 1,
            "n_rejected": 0}
    for change in ({"n_rows": -1}, {"checksum": "A" * 64}, {"batch_id": "a b"}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(json.dumps({**base, **change}), type=RawIngested)


@pytest.mark.parametrize("module", [actors.batch_parse, messages.ingestion], ids=lambda m: m.__name__)
def test_module_doctests_pass(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
