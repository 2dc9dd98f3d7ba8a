"""The offline raw store against the cluster's real PostgreSQL: batches land once, unchanged,
append-only; duplicates and replays store nothing twice; bad lines are kept as rejects."""

from __future__ import annotations

import csv
import io
import json
import shutil
import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest

from actors.batch_parse import (
    IngestError, ParsedRow, RowError, file_checksum, parse_chunks, parse_file, partition_of, partition_rows,
    validate_dataset_name,
)
from messages.codec import encode
from messages.ingestion import RawIngested
from storage.raw_store import BatchConflict, PostgresRawStore, RawBatch, UnknownBatch

pytestmark = pytest.mark.integration

N_PARTITIONS = 4


@pytest.fixture
def store(db) -> PostgresRawStore:
    return PostgresRawStore(db)


def dataset_name(prefix: str = "ds") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def generated_csv(path: Path, n_rows: int) -> list[dict[str, str]]:
    """A CSV of ``n_rows`` with quoted commas, quotes, newlines and non-ASCII text;
    its rows as the csv module reads them."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["id", "ts", "amount", "note", "label"])
    for i in range(n_rows):
        note = ("plain" if i % 5 else f'says "hi", {i}') if i % 97 else "two\nlines é"
        writer.writerow([f"c{i % 1000}", 1_700_000_000 + i, f"{i * 0.25:.2f}", note, i % 2])
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    return list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))


async def ingest(store: PostgresRawStore, path: Path, dataset: str, fmt: str = "csv", *, key: str | None = "id",
                 time: str | None = None, label: str | None = None, n_partitions: int = N_PARTITIONS,
                 ) -> tuple[RawBatch, str | None]:
    """What an ingestion pipeline does with one file, partition by partition."""
    validate_dataset_name(dataset)
    checksum = file_checksum(path)
    batch_id, duplicate_of = await store.begin_batch(dataset, checksum, fmt, str(path), key, time, label)
    if duplicate_of is not None:
        return await store.batch(batch_id), duplicate_of
    items = list(parse_file(path, fmt, key=key, time=time, label=label))
    rows = [i for i in items if isinstance(i, ParsedRow)]
    for partition, part in enumerate(partition_rows(rows, n_partitions, key=key)):
        await store.write_rows(batch_id, dataset, partition, part)
    await store.write_rejects(batch_id, [i for i in items if isinstance(i, RowError)])
    return await store.complete_batch(batch_id), None


async def count(db, table: str, batch_id: str) -> int:
    return await db.fetchval(f"SELECT count(*) FROM {table} WHERE batch_id = $1", batch_id)


# --- a batch lands exactly once, unchanged ------------------------------------------------------


async def test_a_10000_row_csv_lands_exactly_once_and_unchanged(store, db, tmp_path):
    path = tmp_path / "orders.csv"
    expected = generated_csv(path, 10_000)
    dataset = dataset_name("orders")
    batch, duplicate_of = await ingest(store, path, dataset, key="id", time="ts", label="label")
    assert duplicate_of is None
    assert (batch.state, batch.n_rows, batch.n_rejected) == ("complete", 10_000, 0)
    assert (batch.dataset, batch.checksum, batch.format) == (dataset, file_checksum(path), "csv")
    assert (batch.key_column, batch.time_column, batch.label_column) == ("id", "ts", "label")
    assert batch.completed_at is not None and batch.completed_at >= batch.created_at

    stored = await store.rows(batch.batch_id)
    assert len(stored) == 10_000 == await count(db, "raw_records", batch.batch_id)
    assert len({r.line_no for r in stored}) == 10_000
    assert [r.values for r in stored] == expected  # every value exactly as the file has it
    assert all(r.partition == partition_of(ParsedRow(r.line_no, r.values), N_PARTITIONS, "id") for r in stored)
    assert {r.partition for r in stored} == set(range(N_PARTITIONS))
    assert await db.fetchval("SELECT count(DISTINCT dataset) FROM raw_records WHERE batch_id = $1",
                             batch.batch_id) == 1


async def test_jsonl_values_keep_their_json_types(store, tmp_path):
    records = [{"id": 1, "ts": 1.7e9, "x": 0.1, "ok": True, "none": None, "big": 10**30, "s": "été \"q\" \\"},
               {"id": "k2", "ts": "2024-01-01T00:00:00Z", "x": -7, "ok": False}]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    batch, _ = await ingest(store, path, dataset_name("events"), "jsonl", key="id", time="ts")
    assert (batch.n_rows, batch.n_rejected) == (2, 0)
    stored = await store.rows(batch.batch_id)
    assert [r.values for r in stored] == records
    assert type(stored[1].values["x"]) is int and type(stored[0].values["x"]) is float


# --- the raw store refuses changes --------------------------------------------------------------


async def test_update_delete_and_truncate_of_records_and_rejects_are_refused(store, db, tmp_path):
    path = tmp_path / "small.csv"
    path.write_bytes(b"id,x\n1,a\n2,b\n3,c,extra\n")
    batch, _ = await ingest(store, path, dataset_name("frozen"))
    assert (batch.n_rows, batch.n_rejected) == (2, 1)
    refused = [
        ("UPDATE raw_records SET \"values\" = '{}'::jsonb WHERE batch_id = $1", "UPDATE"),
        ("UPDATE raw_records SET partition = partition + 1 WHERE batch_id = $1", "UPDATE"),
        ("DELETE FROM raw_records WHERE batch_id = $1", "DELETE"),
        ("UPDATE raw_rejects SET reason = 'fine' WHERE batch_id = $1", "UPDATE"),
        ("DELETE FROM raw_rejects WHERE batch_id = $1", "DELETE"),
    ]
    for sql, op in refused:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f"append-only: {op} refused"):
            await db.execute(sql, batch.batch_id)
    for table in ("raw_records", "raw_rejects", "raw_batches"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="TRUNCATE refused"):
            await db.execute(f"TRUNCATE {table} CASCADE")
    assert await count(db, "raw_records", batch.batch_id) == 2
    assert await count(db, "raw_rejects", batch.batch_id) == 1
    assert [r.values for r in await store.rows(batch.batch_id)] == [{"id": "1", "x": "a"}, {"id": "2", "x": "b"}]


async def test_a_complete_batch_row_cannot_change_or_go(store, db, tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(b"id\n1\n")
    batch, _ = await ingest(store, path, dataset_name("sealed"))
    for sql in ("UPDATE raw_batches SET n_rows = 99 WHERE batch_id = $1",
                "UPDATE raw_batches SET state = 'loading', completed_at = NULL WHERE batch_id = $1",
                "DELETE FROM raw_batches WHERE batch_id = $1"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.execute(sql, batch.batch_id)
    assert await store.batch(batch.batch_id) == batch


async def test_a_loading_batch_may_change_only_its_state_and_counts(store, db):
    dataset = dataset_name("loading")
    batch_id, _ = await store.begin_batch(dataset, uuid.uuid4().hex * 2, "csv", "/data/x.csv", "id")
    for sql in ("UPDATE raw_batches SET dataset = 'other' WHERE batch_id = $1",
                "UPDATE raw_batches SET checksum = repeat('0', 64) WHERE batch_id = $1",
                "UPDATE raw_batches SET key_column = 'y' WHERE batch_id = $1",
                "DELETE FROM raw_batches WHERE batch_id = $1"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.execute(sql, batch_id)
    await db.execute("UPDATE raw_batches SET n_rows = 5 WHERE batch_id = $1", batch_id)  # allowed while loading
    done = await store.complete_batch(batch_id)
    assert (done.state, done.n_rows, done.n_rejected) == ("complete", 0, 0)  # counted, not trusted


# --- duplicates, replays, resumption -----------------------------------------------------------


async def test_the_same_file_again_is_a_duplicate_and_stores_nothing(store, db, tmp_path):
    path = tmp_path / "first.csv"
    generated_csv(path, 500)
    dataset = dataset_name("dup")
    first, _ = await ingest(store, path, dataset, key="id")
    n_batches = await db.fetchval("SELECT count(*) FROM raw_batches WHERE dataset = $1", dataset)

    copy = tmp_path / "renamed copy.csv"
    shutil.copyfile(path, copy)
    for source in (path, copy):
        again, duplicate_of = await ingest(store, source, dataset, key="id")
        assert duplicate_of == first.batch_id == again.batch_id
        assert again == first
    assert await db.fetchval("SELECT count(*) FROM raw_batches WHERE dataset = $1", dataset) == n_batches == 1
    assert await count(db, "raw_records", first.batch_id) == 500

    other, duplicate_of = await ingest(store, path, dataset_name("dup-other"), key="id")
    assert duplicate_of is None and other.batch_id != first.batch_id  # the same file in another dataset
    path.write_bytes(path.read_bytes() + b"c1,1,2,x,0\n")
    changed, duplicate_of = await ingest(store, path, dataset, key="id")
    assert duplicate_of is None and changed.n_rows == 501  # a changed file is a new batch


async def test_a_replayed_partition_stores_nothing_twice(store, db, tmp_path):
    path = tmp_path / "replay.csv"
    path.write_bytes(b"id,x\n" + b"".join(b"k%d,%d\n" % (i, i) for i in range(1000)) + b"bad,line,here\n")
    dataset = dataset_name("replay")
    batch_id, _ = await store.begin_batch(dataset, file_checksum(path), "csv", str(path), "id")
    items = list(parse_file(path, "csv", key="id"))
    parts = partition_rows([i for i in items if isinstance(i, ParsedRow)], N_PARTITIONS, key="id")
    errors = [i for i in items if isinstance(i, RowError)]

    assert await store.write_rows(batch_id, dataset, 0, parts[0]) == len(parts[0])
    assert await store.write_rows(batch_id, dataset, 0, parts[0]) == 0  # the replay
    assert await store.write_rows(batch_id, dataset, 0, parts[0][: len(parts[0]) // 2]) == 0
    for partition, part in enumerate(parts):
        await store.write_rows(batch_id, dataset, partition, part)  # partition 0 once more
    assert await store.write_rejects(batch_id, errors) == 1
    assert await store.write_rejects(batch_id, errors) == 0
    done = await store.complete_batch(batch_id)
    assert (done.n_rows, done.n_rejected) == (1000, 1)
    assert await count(db, "raw_records", batch_id) == 1000
    assert await store.complete_batch(batch_id) == done  # completing again changes nothing


async def test_a_restarted_loader_resumes_its_loading_batch(store, db, tmp_path):
    path = tmp_path / "resume.csv"
    generated_csv(path, 2000)
    dataset = dataset_name("resume")
    checksum = file_checksum(path)
    batch_id, duplicate_of = await store.begin_batch(dataset, checksum, "csv", str(path), "id", None, "label")
    rows = [i for i in parse_file(path, "csv", key="id", label="label") if isinstance(i, ParsedRow)]
    parts = partition_rows(rows, N_PARTITIONS, key="id")
    await store.write_rows(batch_id, dataset, 0, parts[0])
    await store.write_rows(batch_id, dataset, 1, parts[1][:100])
    # ... the loader dies here; its successor submits the same file again:
    resumed_id, duplicate_of = await store.begin_batch(dataset, checksum, "csv", str(path), "id", None, "label")
    assert (resumed_id, duplicate_of) == (batch_id, None)
    with pytest.raises(BatchConflict, match="loading this file with"):
        await store.begin_batch(dataset, checksum, "csv", str(path), "other", None, "label")
    for partition, part in enumerate(parts):
        await store.write_rows(resumed_id, dataset, partition, part)
    done = await store.complete_batch(resumed_id)
    assert (done.n_rows, done.n_rejected) == (2000, 0)
    assert await count(db, "raw_records", batch_id) == 2000


async def test_a_complete_batch_takes_no_more_rows(store, tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"id\n1\n")
    dataset = dataset_name("closed")
    batch, _ = await ingest(store, path, dataset)
    with pytest.raises(BatchConflict, match="complete"):
        await store.write_rows(batch.batch_id, dataset, 0, [ParsedRow(9, {"id": "9"})])
    with pytest.raises(BatchConflict, match="complete"):
        await store.write_rejects(batch.batch_id, [RowError(9, None, "late")])
    with pytest.raises(BatchConflict, match="belongs to dataset"):
        await store.write_rows(batch.batch_id, dataset_name("else"), 0, [])
    with pytest.raises(UnknownBatch):
        await store.write_rows("no-such-batch", dataset, 0, [])
    with pytest.raises(UnknownBatch):
        await store.complete_batch("no-such-batch")


# --- bad input --------------------------------------------------------------------------------


async def test_malformed_lines_are_rejects_while_the_good_rows_land(store, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        b"id,ts,text,label\n"                    # 1
        b"1,1700000000,good,a\n"                 # 2
        b"2,1700000001,too,many,fields\n"        # 3
        b'3,1700000002,"never closed,b\n'        # 4
        b"4,1700000003,good again,c\n"           # 5
        b"5,1700000004,nul\x00byte,d\n"          # 6
        b"6,1700000005,caf\xe9,e\n"              # 7
        b"7,yesterday,wrong time,f\n"            # 8
        b",1700000006,no key,g\n"                # 9
        b"8,1700000007," + b"x" * (1 << 20) + b"y,h\n"   # 10: one byte over the field limit
        b"9,1700000008,short\n"                  # 11
        b'10,1700000009,"multi\nline",i\n'       # 12-13
        b"11,1700000010,\"'; DROP TABLE raw_records; --\",j\n"  # 14
    )
    batch, _ = await ingest(store, path, dataset_name("mixed"), key="id", time="ts", label="label")
    stored = await store.rows(batch.batch_id)
    assert [r.line_no for r in stored] == [2, 5, 12, 14]
    assert stored[2].values["text"] == "multi\nline"
    assert stored[3].values["text"] == "'; DROP TABLE raw_records; --"
    rejects = {r.line_no: r for r in await store.rejects(batch.batch_id)}
    assert (batch.n_rows, batch.n_rejected) == (4, len(rejects)) == (4, 8)
    expected = {
        3: (None, "expected 4 fields, found 5"),
        4: ("text", "unterminated quoted field"),
        6: ("text", "contains a NUL character"),
        7: ("text", "not valid UTF-8"),
        8: ("ts", "not a time"),
        9: ("id", "empty key"),
        10: ("text", "field of 1048577 bytes exceeds the limit of 1048576"),
        11: ("label", "missing: expected 4 fields, found 3"),
    }
    for line_no, (field, reason) in expected.items():
        assert rejects[line_no].field == field, rejects[line_no]
        assert reason in rejects[line_no].reason, rejects[line_no]
    assert rejects[6].raw == "5,1700000004,nul\\x00byte,d"
    assert rejects[7].raw == "6,1700000005,caf\\xe9,e"
    assert len(rejects[10].raw) < 300


async def test_rejects_with_hostile_text_are_stored_safely(store):
    dataset = dataset_name("texts")
    batch_id, _ = await store.begin_batch(dataset, uuid.uuid4().hex * 2, "jsonl", "/x.jsonl")
    hostile = [RowError(1, "a\x00b", "nul \x00 in reason", "raw \x00 and \udcff"),
               RowError(2, None, "'; DROP TABLE raw_rejects; --", "x" * 100_000)]
    assert await store.write_rejects(batch_id, hostile) == 2
    stored = await store.rejects(batch_id)
    assert [s.field for s in stored] == ["a\\x00b", None]
    assert stored[1].reason == "'; DROP TABLE raw_rejects; --"
    assert all("\x00" not in s.raw for s in stored) and len(stored[1].raw) <= 4096


async def test_nul_characters_never_reach_jsonb(store):
    dataset = dataset_name("nul")
    batch_id, _ = await store.begin_batch(dataset, uuid.uuid4().hex * 2, "jsonl", "/x.jsonl")
    with pytest.raises(ValueError, match="line 3: a NUL character"):
        await store.write_rows(batch_id, dataset, 0, [ParsedRow(2, {"a": "fine"}), ParsedRow(3, {"a": "x\x00"})])
    assert await store.write_rows(batch_id, dataset, 0, [ParsedRow(4, {"a": "literal \\u0000 text"})]) == 1
    assert [r.values for r in await store.rows(batch_id)] == [{"a": "literal \\u0000 text"}]


@pytest.mark.parametrize("name", [
    "x'; DROP TABLE raw_records; --", "../../etc/passwd", "a/b", 'quo"te', "it's", "", "a" * 64, "1st", "a b",
    "a\x00b", "ds;DELETE FROM raw_batches",
])
async def test_hostile_dataset_names_are_refused_before_any_write(store, db, tmp_path, name):
    path = tmp_path / "ok.csv"
    path.write_bytes(b"id\n1\n")
    before = await db.fetchval("SELECT count(*) FROM raw_batches")
    with pytest.raises(IngestError) as info:
        await ingest(store, path, name)
    assert info.value.field == "dataset"
    with pytest.raises(ValueError, match="^dataset:"):  # the store checks again
        await store.begin_batch(name, file_checksum(path), "csv", str(path), "id")
    assert await db.fetchval("SELECT count(*) FROM raw_batches") == before


async def test_bad_batch_arguments_are_refused_before_any_write(store):
    good = {"dataset": dataset_name("args"), "checksum": "a" * 64, "fmt": "csv", "path": "/p.csv"}
    for change in ({"checksum": "A" * 64}, {"checksum": "abc"}, {"fmt": "xlsx"}, {"path": "/p\x00"},
                   {"key": "a\nb"}, {"label": "x" * 129}):
        with pytest.raises(ValueError):
            await store.begin_batch(**{**good, **change})
    assert await store.find_batch(good["dataset"], "a" * 64) is None


# --- announcement ------------------------------------------------------------------------------


async def test_completion_puts_the_announcement_in_the_outbox_atomically(store, db, tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"id,x\n1,a\n2,b\n3\n")
    dataset = dataset_name("announce")
    checksum = file_checksum(path)
    batch_id, _ = await store.begin_batch(dataset, checksum, "csv", str(path), "id")
    items = list(parse_file(path, "csv", key="id"))
    await store.write_rows(batch_id, dataset, 0, [i for i in items if isinstance(i, ParsedRow)])
    await store.write_rejects(batch_id, [i for i in items if isinstance(i, RowError)])

    def announce(batch: RawBatch):
        event = RawIngested(dataset=batch.dataset, batch_id=batch.batch_id, checksum=batch.checksum,
                            n_rows=batch.n_rows, n_rejected=batch.n_rejected)
        return "raw.ingested", batch.dataset.encode(), encode(event)

    def failing(batch: RawBatch):
        raise RuntimeError("announcement failed")

    with pytest.raises(RuntimeError):
        await store.complete_batch(batch_id, failing)
    assert (await store.batch(batch_id)).state == "loading"  # nothing happened

    dedup = f"raw-batch-complete:{batch_id}"
    # Inside a transaction that is rolled back, so that the cluster's relay never sees
    # a row for a topic it does not have.
    async with db.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            done = await store.complete_batch(batch_id, announce, conn=conn)
            again = await store.complete_batch(batch_id, announce, conn=conn)
            outbox = await conn.fetch("SELECT topic, msg_key, payload FROM outbox WHERE dedup_key = $1", dedup)
            state = await conn.fetchval("SELECT state FROM raw_batches WHERE batch_id = $1", batch_id)
        finally:
            await transaction.rollback()
    assert again == done and state == "complete"
    assert (done.n_rows, done.n_rejected) == (2, 1)
    [row] = outbox
    assert (row["topic"], bytes(row["msg_key"])) == ("raw.ingested", dataset.encode())
    event = msgspec.json.decode(bytes(row["payload"]), type=RawIngested)
    assert (event.batch_id, event.checksum, event.n_rows, event.n_rejected) == (batch_id, checksum, 2, 1)
    assert (await store.batch(batch_id)).state == "loading"  # rolled back with it
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE dedup_key = $1", dedup) == 0
    assert (await store.complete_batch(batch_id)).state == "complete"


# --- appending a partition in chunks (the loaders' path) ------------------------------------------


async def append_partition(store: PostgresRawStore, batch_id: str, dataset: str, path: Path, partition: int,
                           n_partitions: int, *, chunk_rows: int = 300, max_chunks: int | None = None,
                           hold=None) -> int:
    """What a loader does: resume after the partition's last stored line, append chunk by chunk."""
    stored, after_line = await store.stored_through(batch_id, partition)
    chunks = parse_chunks(path, "csv", key="id", partition=partition, n_partitions=n_partitions,
                          after_line=after_line, chunk_rows=chunk_rows)
    for i, chunk in enumerate(chunks):
        if max_chunks is not None and i == max_chunks:
            break
        stored += len(chunk.records)
        await store.append_chunk(batch_id, dataset, partition, chunk.records, chunk.errors, n_rows=stored, hold=hold)
    return stored


async def test_partitions_appended_in_chunks_and_resumed_store_every_line_once(store, db, tmp_path):
    path = tmp_path / "chunks.csv"
    expected = generated_csv(path, 3000)
    path.write_bytes(path.read_bytes() + b"bad,line\n" + b"c9,1,2,3,4,5\n")
    dataset = dataset_name("chunks")
    batch_id, _ = await store.begin_batch(dataset, file_checksum(path), "csv", str(path), "id")
    await append_partition(store, batch_id, dataset, path, 0, 2, max_chunks=2)  # ... a loader dies here
    n_first, last = await store.stored_through(batch_id, 0)
    assert 600 <= n_first < 3000 and last > 0
    assert await db.fetchval("SELECT n_rows FROM raw_batch_progress WHERE batch_id = $1 AND partition = 0",
                             batch_id) == n_first  # progress lands with the rows
    totals = [await append_partition(store, batch_id, dataset, path, p, 2) for p in (0, 1)]
    done = await store.complete_batch(batch_id)
    assert (done.n_rows, done.n_rejected, sum(totals)) == (3000, 2, 3000)
    stored = await store.rows(batch_id)
    assert [r.values for r in stored] == expected
    assert all(r.partition == partition_of(ParsedRow(r.line_no, r.values), 2, "id") for r in stored)
    bad_lines = [i.line_no for i in parse_file(path, "csv", key="id") if isinstance(i, RowError)]
    assert [r.line_no for r in await store.rejects(batch_id)] == bad_lines and len(bad_lines) == 2


async def test_an_overlapping_chunk_is_refused_whole(store, db, tmp_path):
    path = tmp_path / "overlap.csv"
    generated_csv(path, 100)
    dataset = dataset_name("overlap")
    batch_id, _ = await store.begin_batch(dataset, file_checksum(path), "csv", str(path), "id")
    [chunk] = parse_chunks(path, "csv", key="id")
    await store.append_chunk(batch_id, dataset, 0, chunk.records[:60])
    with pytest.raises(BatchConflict, match="overlap what is stored"):
        await store.append_chunk(batch_id, dataset, 0, chunk.records[50:], n_rows=100)
    assert await count(db, "raw_records", batch_id) == 60
    assert await store.stored_through(batch_id, 0) == (60, chunk.records[59][0])
    with pytest.raises(UnknownBatch):  # no foreign key any more: the store itself refuses
        await store.append_chunk("no-such-batch", dataset, 0, chunk.records[60:])
    assert await db.fetchval("SELECT count(*) FROM raw_records WHERE batch_id = 'no-such-batch'") == 0


async def test_a_superseded_writer_is_fenced_and_stores_nothing(store, db, settings, tmp_path):
    from storage.base import Fenced
    from storage.postgres import PostgresLedger

    path = tmp_path / "fenced.csv"
    generated_csv(path, 1000)
    dataset = dataset_name("fenced")
    batch_id, _ = await store.begin_batch(dataset, file_checksum(path), "csv", str(path), "id")
    ledger = PostgresLedger(db, b"test-key")
    topic = f"fence-test-{uuid.uuid4().hex[:8]}"
    old = await ledger.claim("batch-loader", topic, 0)
    await append_partition(store, batch_id, dataset, path, 0, 1, max_chunks=1,
                           hold=lambda conn: ledger.hold(conn, old))
    new = await ledger.claim("batch-loader", topic, 0)  # a restarted loader takes the partition over
    with pytest.raises(Fenced):
        await append_partition(store, batch_id, dataset, path, 0, 1, hold=lambda conn: ledger.hold(conn, old))
    assert await count(db, "raw_records", batch_id) == 300
    assert await append_partition(store, batch_id, dataset, path, 0, 1,
                                  hold=lambda conn: ledger.hold(conn, new)) == 1000
    assert await count(db, "raw_records", batch_id) == 1000


async def test_the_loaders_of_a_batch_finishing_at_the_same_time_never_deadlock_and_announce_it_once(store, db):
    """Both loaders' last transactions record their partition as done and lock the batch to
    see whether all are: run side by side, they must not deadlock (each one's insert held a
    key-share lock on the batch row that the other's row lock waited for)."""
    import asyncio

    from actors.batch_ingest import BatchLoader
    from messages.ingestion import LoadPartition

    loader = BatchLoader.__new__(BatchLoader)
    loader.store = store
    dataset = dataset_name("race")
    for attempt in range(10):
        batch_id, _ = await store.begin_batch(dataset, uuid.uuid4().hex * 2, "csv", "/data/race.csv")
        writes = [loader._finish(LoadPartition(request_id=f"r{attempt}", batch_id=batch_id, dataset=dataset,
                                               path="/data/race.csv", format="csv", partition=p, n_partitions=2), 0)
                  for p in range(2)]

        async def finish(write):
            async with db.acquire() as conn, conn.transaction():
                await write(conn)

        await asyncio.gather(*(finish(w) for w in writes))       # DeadlockDetectedError before the fix
        assert (await store.batch(batch_id)).complete
        announced = await db.fetch("SELECT payload FROM outbox WHERE topic = 'raw.ingested'"
                                   " AND convert_from(payload, 'UTF8') LIKE '%' || $1 || '%'", batch_id)
        assert len(announced) == 1
