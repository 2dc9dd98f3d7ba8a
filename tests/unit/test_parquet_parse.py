"""Parquet sources: rows as JSON scalars, row errors for what a scalar cannot hold."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from actors.batch_parse import IngestError, ParsedRow, RowError, parse_file


def write(path, table: pa.Table) -> str:
    pq.write_table(table, path)
    return str(path)


def test_rows_keep_their_values_and_dates_become_iso_text(tmp_path):
    table = pa.table({"id": ["a", "b"], "x": [1.5, None], "n": [1, 2],
                      "ts": [dt.datetime(2026, 1, 1, 12), dt.datetime(2026, 1, 2)]})
    rows = list(parse_file(write(tmp_path / "t.parquet", table), "parquet", key="id", time="ts"))
    assert rows == [ParsedRow(2, {"id": "a", "x": 1.5, "n": 1, "ts": "2026-01-01T12:00:00"}),
                    ParsedRow(3, {"id": "b", "x": None, "n": 2, "ts": "2026-01-02T00:00:00"})]


def test_nested_nul_and_infinite_values_are_row_errors_and_good_rows_land(tmp_path):
    table = pa.table({"id": ["a", "b", "c", "d"], "tags": [[1], [2], [3], [4]]})
    errors = list(parse_file(write(tmp_path / "n.parquet", table), "parquet", key="id"))
    assert all(isinstance(e, RowError) and e.field == "tags" and "nested" in e.reason for e in errors)
    table = pa.table({"id": ["a", "b\x00", "c"], "x": [1.0, 2.0, float("inf")]})
    items = list(parse_file(write(tmp_path / "m.parquet", table), "parquet", key="id"))
    assert isinstance(items[0], ParsedRow)
    assert isinstance(items[1], RowError) and "NUL" in items[1].reason
    assert isinstance(items[2], RowError) and items[2].field == "x"


def test_missing_key_column_not_parquet_and_empty_files_are_refused(tmp_path):
    path = write(tmp_path / "k.parquet", pa.table({"x": [1]}))
    with pytest.raises(IngestError) as missing:
        parse_file(path, "parquet", key="id")
    assert missing.value.field == "key"
    (tmp_path / "fake.parquet").write_text("id,x\n1,2\n")
    with pytest.raises(IngestError) as fake:
        parse_file(str(tmp_path / "fake.parquet"), "parquet")
    assert fake.value.field == "file"
    empty = write(tmp_path / "e.parquet", pa.table({"id": pa.array([], pa.string())}))
    with pytest.raises(IngestError) as none:
        parse_file(empty, "parquet")
    assert "empty" in none.value.reason
    with pytest.raises(IngestError) as absent:
        parse_file(str(tmp_path / "absent.parquet"), "parquet")
    assert absent.value.field == "path"
