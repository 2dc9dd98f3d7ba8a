"""The CLI as a user runs it: start, status, stop, bad configuration, help."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.support.cluster import CliCluster

pytestmark = pytest.mark.integration

ACTOR_FIELDS = {"id", "kind", "state", "n_restarts", "last_restart_s", "pid", "n_processed",
                "last_checkpoint_offset", "last_checkpoint_age_s", "error", "activity", "strategy", "intensity", "children",
                "topic", "partition", "offset"}


def actors(node):
    yield node
    for child in node["children"]:
        yield from actors(child)


def test_status_json_has_the_documented_shape(cluster):
    done = cluster.run("cluster", "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert set(status) == {"cluster_name", "state_dir", "state", "healthy", "services", "tree", "spares"}
    assert status["state"] == "running" and status["healthy"] is True
    assert all(set(s) == {"name", "state", "pid"} and s["name"].startswith("spare.")
               and s["state"] in ("starting", "ready", "unreachable") for s in status["spares"])
    assert {s["name"] for s in status["services"]} == {"postgres", "redis", "kafka", "ray"}
    assert all(s["alive"] and s["embedded"] for s in status["services"])
    nodes = list(actors(status["tree"]))
    assert all(set(n) == ACTOR_FIELDS for n in nodes)
    ids = {n["id"] for n in nodes}
    assert {"root", "root.outbox", "root.ingest", "root.ingest.events-0", "root.ingest.events-1"} <= ids
    workers = [n for n in nodes if n["kind"] == "worker"]
    assert all(n["state"] == "running" and n["pid"] for n in workers)


def test_status_text_lists_every_actor(cluster):
    done = cluster.run("cluster", "status")
    assert done.returncode == 0
    for actor_id in ("root.outbox", "root.ingest.events-0", "restarts="):
        assert actor_id in done.stdout


def test_start_when_running_refuses(cluster):
    done = cluster.run("cluster", "start")
    assert done.returncode == 1
    assert "already running" in done.stdout


def test_second_cluster_side_by_side_keeps_data_across_restart_and_leaves_no_process():
    secret = "s3cret-signing-key-never-printed"
    other = CliCluster.small(CONVEYOR_SIGNING_KEY=secret)
    try:
        other.start()
        status = other.run("cluster", "status", "--json")
        assert json.loads(status.stdout)["healthy"] is True
        assert secret not in status.stdout + status.stderr
        record = json.loads((other.state_dir / "cluster.json").read_text())
        dsn = record["services"]["postgres"]["address"]
        redis_url = record["services"]["redis"]["address"]
        asyncio.run(_write(dsn, redis_url))
        kafka = record["services"]["kafka"]["address"]
        asyncio.run(_publish_and_wait(kafka, dsn, [f"before-{i}" for i in range(3)]))
        stopped = other.stop()
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert other.processes() == []
        other.start()
        record = json.loads((other.state_dir / "cluster.json").read_text())
        kept = asyncio.run(_read(record["services"]["postgres"]["address"], record["services"]["redis"]["address"]))
        assert kept == ("survives", b"survives")
        # The restarted embedded broker has new, empty logs: the stored offsets must not skip them.
        asyncio.run(_publish_and_wait(record["services"]["kafka"]["address"],
                                      record["services"]["postgres"]["address"], ["after-restart"]))
        # Its embedded PostgreSQL, Redis and broker die under the running tree: start repairs it
        from storage.processes import with_descendants

        import psutil

        killed = [proc for name in ("postgres", "redis", "kafka")
                  for proc in with_descendants(record["services"][name]["pids"])]
        for proc in killed:
            try:
                proc.kill()
            except psutil.NoSuchProcess:        # a child that exited with its parent: already stopped
                pass
        psutil.wait_procs(killed, timeout=30)       # a process in a disk wait dies only when it returns
        repaired = other.run("cluster", "start", check=True)
        assert "starting them again in place" in repaired.stdout and "healthy again" in repaired.stdout
        assert json.loads(other.run("cluster", "status", "--json").stdout)["healthy"] is True
        record = json.loads((other.state_dir / "cluster.json").read_text())
        kept = asyncio.run(_read(record["services"]["postgres"]["address"], record["services"]["redis"]["address"]))
        assert kept == ("survives", b"survives")
        try:
            asyncio.run(_publish_and_wait(record["services"]["kafka"]["address"],
                                          record["services"]["postgres"]["address"], ["after-repair"]))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe repair said:\n{repaired.stdout}\n{repaired.stderr[-3000:]}") from None
        assert other.run("cluster", "start").returncode == 1        # healthy: nothing to repair
    finally:
        other.stop()
    assert other.processes() == []
    assert not (other.state_dir / "cluster.json").exists()
    other.discard()


async def _publish_and_wait(bootstrap, dsn, entity_keys):
    import asyncpg
    from aiokafka import AIOKafkaProducer

    from messages.codec import encode
    from messages.stream import StreamEvent
    from tests.support.waiting import eventually

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key in entity_keys:   # all to partition 0, which had offsets before the restart
            await producer.send_and_wait("events", encode(StreamEvent(stream="restart", entity_key=key)),
                                         partition=0)
    finally:
        await producer.stop()
    conn = await asyncpg.connect(dsn)
    try:
        await eventually(lambda: _all_in(conn, entity_keys), timeout_s=60, what=f"{entity_keys} stored")
    finally:
        await conn.close()


async def _all_in(conn, keys):
    found = await conn.fetchval("SELECT count(*) FROM raw_events WHERE entity_key = ANY($1::text[])", keys)
    return found == len(keys)


async def _write(dsn, redis_url):
    import asyncpg
    import redis.asyncio as aioredis

    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO audit_log (actor, action, subject) VALUES ('test', 'write', 'survives')")
    await conn.close()
    client = aioredis.Redis.from_url(redis_url)
    await client.set("survives", "survives")
    await client.aclose()


async def _read(dsn, redis_url):
    import asyncpg
    import redis.asyncio as aioredis

    conn = await asyncpg.connect(dsn)
    subject = await conn.fetchval("SELECT subject FROM audit_log WHERE actor = 'test'")
    await conn.close()
    client = aioredis.Redis.from_url(redis_url)
    value = await client.get("survives")
    await client.aclose()
    return subject, value


@pytest.mark.parametrize("content, key", [
    ("topic_partitions = 0\n", "topic_partitions"),
    ("no_such_setting = 1\n", "no_such_setting"),
    ("heartbeat_interval_s = 'fast'\n", "heartbeat_interval_s"),
    ("cluster_name = \"x'; DROP TABLE audit_log;--\"\n", "cluster_name"),
    ("this is not toml\n", "not valid TOML"),
])
def test_bad_config_file_stops_start_with_the_key_named_and_starts_nothing(tmp_path, content, key):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    cli = CliCluster.fresh(CONVEYOR_CLUSTER_NAME=None)  # the file's own values must be what is read
    try:
        done = cli.run("--config", str(config), "cluster", "start", timeout=60)
        assert done.returncode == 2
        assert key in done.stderr and "configuration error" in done.stderr
        assert not (cli.state_dir / "cluster.json").exists()
        assert cli.processes() == []
    finally:
        cli.discard()


@pytest.mark.parametrize("name, value", [
    ("CONVEYOR_TOPIC_PARTITIONS", "many"),
    ("CONVEYOR_HEARTBEAT_INTERVAL_S", "-1"),
    ("CONVEYOR_NO_SUCH_THING", "1"),
    ("CONVEYOR_LOG_LEVEL", "loud"),
])
def test_bad_environment_value_stops_start(name, value):
    cli = CliCluster.fresh(**{name: value})
    try:
        done = cli.run("cluster", "start", timeout=60)
        assert done.returncode == 2
        assert name in done.stderr
        assert cli.processes() == []
    finally:
        cli.discard()


def test_a_start_that_stops_progressing_names_the_actors_not_running_and_leaves_nothing():
    cli = CliCluster.small(CONVEYOR_START_TIMEOUT_S="0.3")   # no actor process starts that fast
    try:
        done = cli.run("cluster", "start", timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        said = done.stdout + done.stderr
        assert "Start failed: supervision tree not healthy" in said and "no progress for 0.3 s" in said
        # each one named; on a loaded machine the root supervisor's own process may not have
        # answered by then, and that is what is named
        assert re.search(r"not running: (root[ .].*root\.\w+ \((starting|failed)|the root supervisor never answered)",
                         said), said
        assert not (cli.state_dir / "cluster.json").exists()
        assert cli.processes() == []
    finally:
        cli.discard()


def test_missing_config_file_is_an_error():
    cli = CliCluster.fresh()
    done = cli.run("--config", "/nonexistent/conveyor.toml", "cluster", "status", timeout=60)
    cli.discard()
    assert done.returncode == 2
    assert "config file not found" in done.stderr


def test_status_and_stop_without_a_cluster():
    cli = CliCluster.fresh()
    status = cli.run("cluster", "status", "--json", timeout=60)
    assert status.returncode == 1
    assert json.loads(status.stdout)["state"] == "stopped"
    stop = cli.run("cluster", "stop", timeout=60)
    cli.discard()
    assert stop.returncode == 0 and "nothing to stop" in stop.stdout


@pytest.mark.parametrize("args", [
    ["models", "list"], ["score", "m", "--features", "{}"], ["features", "get", "d", "k"], ["features", "join", "j", "a"],
    ["learners", "list"], ["monitor"], ["audit"], ["data", "batches"], ["lineage", "m", "1"], ["schedule", "list"],
    ["batch-score", "m"], ["restore", "m"], ["ingest", "d", "/dev/null"], ["models", "deploy", "m"],
    ["config", "list"], ["config", "history", "feature_spec", "d"],
])
def test_a_command_without_a_cluster_exits_1_saying_so_without_a_traceback(args):
    cli = CliCluster.fresh()
    done = cli.run(*args, timeout=60)
    cli.discard()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no cluster is recorded" in done.stderr and "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize("args", [[], ["cluster"], ["cluster", "start"], ["cluster", "status"],
                                  ["cluster", "stop"], ["console"]])
def test_every_command_has_help(args):
    cli = CliCluster.fresh()
    done = cli.run(*args, "--help", timeout=60)
    cli.discard()
    assert done.returncode == 0
    assert "usage:" in done.stdout


def test_console_shows_the_tree_of_a_cluster_started_by_another_process(cluster):
    import signal
    import subprocess
    import sys
    import time

    from tests.support.cluster import ROOT

    console = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "console", "--refresh", "0.5"],
                               env=cluster.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    time.sleep(6)
    console.send_signal(signal.SIGINT)
    out, _ = console.communicate(timeout=30)
    assert console.returncode == 0
    for actor_id in ("root.outbox", "root.ingest.events-0", "root.ingest.events-1"):
        assert actor_id in out
