"""Configured external services are used as they are: none of them is started or stopped
by the cluster. Here the "external" PostgreSQL, Redis and broker are started by the test,
and the external Ray is the session cluster's (joined under another namespace)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

from storage import embedded
from tests.support.cluster import CliCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def external_services():
    state = Path(tempfile.mkdtemp(prefix="cv-ext-"))
    started = []
    try:
        for start in (embedded.start_postgres, embedded.start_redis, embedded.start_broker):
            started.append(start(state))
        yield {s.name: s for s in started}
    finally:
        for service in started:
            embedded.STOPPERS[service.name](service)
        shutil.rmtree(state, ignore_errors=True)


def test_cluster_uses_external_services_and_leaves_them_running(cluster, external_services):
    ray_record = json.loads((cluster.state_dir / "cluster.json").read_text())
    other = CliCluster.small(
        CONVEYOR_POSTGRES_DSN=external_services["postgres"].address,
        CONVEYOR_REDIS_URL=external_services["redis"].address,
        CONVEYOR_KAFKA_BOOTSTRAP=external_services["kafka"].address,
        CONVEYOR_RAY_ADDRESS=ray_record["services"]["ray"]["address"],
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=ray_record["ray_token_path"],
    )
    try:
        other.start()
        record = json.loads((other.state_dir / "cluster.json").read_text())
        assert all(not s["embedded"] for s in record["services"].values())
        status = json.loads(other.run("cluster", "status", "--json").stdout)
        assert status["healthy"] is True
        assert all(not s["embedded"] for s in status["services"])
    finally:
        stopped = other.stop()
        other.discard()
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for service in external_services.values():
        assert all(psutil.pid_exists(pid) for pid in service.pids), f"{service.name} was stopped"
    # the session cluster (whose Ray was borrowed) is still healthy
    assert json.loads(cluster.run("cluster", "status", "--json").stdout)["healthy"] is True


def test_every_tcp_listener_of_the_cluster_is_on_loopback(cluster):
    pids = {int(line.split(":")[0]) for line in cluster.processes()}
    record = json.loads((cluster.state_dir / "cluster.json").read_text())
    for service in record["services"].values():
        pids.update(service["pids"])
    listeners = []
    for pid in pids:
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            try:
                listeners += [(proc.pid, c.laddr.ip) for c in proc.net_connections("inet")
                              if c.status == psutil.CONN_LISTEN]
            except psutil.Error:
                continue
    assert listeners, "the cluster has TCP listeners (broker, Ray)"
    exposed = [(pid, ip) for pid, ip in listeners if ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert exposed == []
