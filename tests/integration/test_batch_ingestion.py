"""Offline ingestion through the running pipeline: CLI, client, source.available event,
a loader killed mid-batch, and bad sources."""

from __future__ import annotations

import csv
import json
import os
import signal
import uuid

import pytest

from messages.codec import encode
from messages.ingestion import SourceAvailable
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def write_csv(path, n_rows: int, bad_lines: tuple[str, ...] = ()) -> str:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "x", "label"])
        for i in range(n_rows):
            writer.writerow([f"e{i}", i * 0.5, i % 2])
        for line in bad_lines:
            fh.write(line + "\n")
    return str(path)


def dataset_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_cli_ingest_stores_good_rows_rejects_bad_ones_and_recognises_the_same_file(cluster, tmp_path):
    path = write_csv(tmp_path / "data.csv", 5_000, bad_lines=("only,two", '"unterminated,1,1'))
    name = dataset_name("cli")
    done = cluster.run("ingest", name, path, "--key", "id", "--label", "label")
    assert done.returncode == 0, done.stderr
    assert "5,000 rows stored, 2 rejected" in done.stdout
    again = cluster.run("ingest", name, path, "--key", "id", "--label", "label")
    assert again.returncode == 0
    assert "Already ingested" in again.stdout


async def test_rows_are_stored_unchanged_and_rejects_name_their_line(conveyor, db, tmp_path):
    path = write_csv(tmp_path / "d.csv", 100, bad_lines=("e-bad,1",))
    name = dataset_name("client")
    request = await conveyor.ingest(name, path, key="id", label="label")
    done = await conveyor.wait_ingested(request, name, timeout_s=60)
    assert (done.state, done.n_rows, done.n_rejected) == ("complete", 100, 1)
    row = await db.fetchrow("SELECT values FROM raw_records WHERE batch_id = $1 AND line_no = 2", done.batch_id)
    assert json.loads(row["values"]) == {"id": "e0", "x": "0.0", "label": "0"}   # strings, as in the file
    reject = await db.fetchrow("SELECT line_no, reason FROM raw_rejects WHERE batch_id = $1", done.batch_id)
    assert reject["line_no"] == 102 and reject["reason"]


async def test_source_available_event_starts_the_same_ingestion_and_raw_ingested_is_announced(
        conveyor, db, settings, tmp_path):
    path = write_csv(tmp_path / "event.csv", 1_000)
    name = dataset_name("event")
    msg_id = await conveyor.submit(SourceAvailable(dataset=name, path=path, format="csv", key_column="id"))
    done = await conveyor.wait_ingested(msg_id, name, timeout_s=60)
    assert done.n_rows == 1_000

    async def announced():
        from storage.kafka import PartitionReader
        from messages.codec import decode

        reader = PartitionReader(settings.kafka_bootstrap, "raw.ingested", 0, 5)
        await reader.start(0)
        try:
            events = [decode(r.value) for r in await reader.read(timeout_ms=500, max_records=10_000)]
        finally:
            await reader.stop()
        return [e for e in events if e.dataset == name]

    [event] = await eventually(announced, what="raw.ingested on its topic")
    assert (event.batch_id, event.n_rows, event.causation_id != "") == (done.batch_id, 1_000, True)


async def test_loader_killed_mid_batch_still_stores_every_row_exactly_once(conveyor, db, tmp_path):
    n_rows = 200_000
    path = write_csv(tmp_path / "big.csv", n_rows)
    name = dataset_name("kill")
    request = await conveyor.ingest(name, path, key="id")
    progress = await eventually(lambda: _loading_with_rows(conveyor, request), timeout_s=60,
                                what="loading started")
    loader = (await conveyor.status()).actor("root.batch.loader-0")
    os.kill(loader.pid, signal.SIGKILL)
    done = await conveyor.wait_ingested(request, name, timeout_s=180)
    assert done.n_rows == n_rows
    stored = await db.fetchrow("SELECT count(*) AS n, count(DISTINCT line_no) AS lines FROM raw_records"
                               " WHERE batch_id = $1", progress.batch_id)
    assert (stored["n"], stored["lines"]) == (n_rows, n_rows)
    after = (await conveyor.status()).actor("root.batch.loader-0")
    assert after.n_restarts >= 1 and after.pid != loader.pid


async def test_a_small_batch_submitted_while_a_big_one_loads_is_not_kept_waiting(conveyor, tmp_path):
    big_path = write_csv(tmp_path / "big.csv", 400_000)
    small_path = write_csv(tmp_path / "small.csv", 1_000, bad_lines=("only,two",))
    big, small = dataset_name("big"), dataset_name("small")
    big_request = await conveyor.ingest(big, big_path, key="id")
    await eventually(lambda: _loading_with_rows(conveyor, big_request), timeout_s=60, what="the big batch loading")
    small_request = await conveyor.ingest(small, small_path, key="id")
    small_done = await conveyor.wait_ingested(small_request, small, timeout_s=120)
    big_then = await conveyor.ingest_progress(big_request)
    assert (small_done.n_rows, small_done.n_rejected) == (1_000, 1)
    assert big_then.state == "loading" and big_then.n_rows < 400_000  # the small one did not wait for it
    big_done = await conveyor.wait_ingested(big_request, big, timeout_s=300)
    assert (big_done.n_rows, big_done.n_rejected) == (400_000, 0)


async def test_a_task_for_a_batch_that_does_not_exist_fails_its_request_and_loading_goes_on(conveyor, tmp_path):
    from messages.ingestion import LoadPartition

    path = write_csv(tmp_path / "after.csv", 300)
    ghost = LoadPartition(request_id=uuid.uuid4().hex, batch_id=uuid.uuid4().hex, dataset="ghost", path=path,
                          format="csv", partition=0, n_partitions=2, key_column="id")
    await conveyor.submit_raw("ingest.tasks", encode(ghost), ghost.batch_id.encode(), 0)
    failed = await eventually(lambda: _finished(conveyor, ghost.request_id), timeout_s=60, what="the task failed")
    assert failed.state == "failed" and "no raw batch" in failed.error
    name = dataset_name("after-ghost")
    request = await conveyor.ingest(name, path, key="id")
    assert (await conveyor.wait_ingested(request, name, timeout_s=60)).n_rows == 300


async def test_a_task_delivered_twice_while_loading_stores_every_row_once_without_a_restart(
        conveyor, db, settings, tmp_path):
    from messages.ingestion import LoadPartition

    n_rows = 200_000
    path = write_csv(tmp_path / "twice.csv", n_rows)
    name = dataset_name("twice")
    request = await conveyor.ingest(name, path, key="id")
    progress = await eventually(lambda: _loading_with_rows(conveyor, request), timeout_s=60, what="loading")
    before = (await conveyor.status()).actor("root.batch.loader-0")
    again = LoadPartition(request_id=request, batch_id=progress.batch_id, dataset=name, path=os.path.abspath(path),
                          format="csv", partition=0, n_partitions=settings.ingest_workers, key_column="id")
    await conveyor.submit_raw("ingest.tasks", encode(again), again.batch_id.encode(), 0)
    done = await conveyor.wait_ingested(request, name, timeout_s=180)
    stored = await db.fetchrow("SELECT count(*) AS n, count(DISTINCT line_no) AS lines FROM raw_records"
                               " WHERE batch_id = $1", progress.batch_id)
    assert (done.n_rows, stored["n"], stored["lines"]) == (n_rows, n_rows, n_rows)
    after = (await conveyor.status()).actor("root.batch.loader-0")
    assert (after.pid, after.n_restarts) == (before.pid, before.n_restarts)


async def _finished(conveyor, request):
    progress = await conveyor.ingest_progress(request)
    return progress if progress is not None and progress.state != "loading" else None


async def _loading_with_rows(conveyor, request):
    progress = await conveyor.ingest_progress(request)
    return progress if progress and progress.state == "loading" and progress.n_rows > 0 else None


@pytest.mark.parametrize("args, field", [
    (["bad name!", "{path}"], "dataset"),
    (["../../etc", "{path}"], "dataset"),
    (["ok", "/nonexistent/file.csv"], "path"),
    (["ok", "{path}", "--label", "no_such_column"], "label"),
    (["ok", "{empty}"], ""),
    (["ok", "{path}", "--key", "x\x01y"], "key"),
])
def test_bad_sources_are_refused_before_anything_is_submitted(cluster, tmp_path, args, field):
    path = write_csv(tmp_path / "ok.csv", 3)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    argv = [a.format(path=path, empty=empty) for a in args]
    done = cluster.run("ingest", *argv)
    assert done.returncode == 2
    assert "cannot ingest" in done.stderr and field in done.stderr


def test_ingest_help():
    from tests.support.cluster import CliCluster

    cli = CliCluster.fresh()
    done = cli.run("ingest", "--help", timeout=60)
    cli.discard()
    assert done.returncode == 0 and "--label" in done.stdout


def test_several_datasets_ingest_at_once_and_a_resubmission_while_loading_waits_for_the_same_batch(
        cluster, tmp_path):
    paths = [write_csv(tmp_path / f"p{i}.csv", 20_000) for i in range(3)]
    names = [dataset_name(f"multi{i}") for i in range(3)]
    submitted = [cluster.run("ingest", n, p, "--no-wait") for n, p in zip(names, paths)]
    assert all(p.returncode == 0 for p in submitted)
    results = [cluster.run("ingest", n, p) for n, p in zip(names, paths)]
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "Already ingested" in result.stdout or "20,000 rows stored" in result.stdout


async def test_scheduled_ingestion_runs_when_due_and_stores_an_unchanged_file_once(conveyor, db, tmp_path):
    from client.errors import SubmitRefused

    path = write_csv(tmp_path / "scheduled.csv", 500)
    name = dataset_name("cron")
    schedule = await conveyor.schedule_ingest(name, path, "* * * * * *", key="id")   # every second
    try:
        async def runs():
            rows = await db.fetch("SELECT state FROM ingest_requests WHERE dataset = $1", name)
            states = sorted(r["state"] for r in rows)
            return states if "complete" in states and "duplicate" in states else None

        await eventually(runs, timeout_s=60, what="a first run and a duplicate run")
        assert await db.fetchval("SELECT count(*) FROM raw_batches WHERE dataset = $1", name) == 1
        assert await db.fetchval("SELECT count(*) FROM raw_records r JOIN raw_batches b USING (batch_id)"
                                 " WHERE b.dataset = $1", name) == 500
        assert any(s["schedule_id"] == schedule and s["n_runs"] >= 2 for s in await conveyor.schedules())
    finally:
        assert await conveyor.remove_schedule(schedule)
    with pytest.raises(SubmitRefused) as refused:
        await conveyor.schedule_ingest(name, path, "every tuesday")
    assert refused.value.field == "every"


async def test_a_parquet_file_is_ingested_like_any_source(conveyor, db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(1000)], "x": [i / 2 for i in range(1000)]}), path)
    name = dataset_name("parquet")
    request = await conveyor.ingest(name, path, key="id")
    done = await conveyor.wait_ingested(request, name, timeout_s=60)
    assert (done.n_rows, done.n_rejected) == (1000, 0)
    values = await db.fetchval("SELECT values FROM raw_records WHERE batch_id = $1 AND line_no = 3", done.batch_id)
    assert json.loads(values) == {"id": "p1", "x": 0.5}
