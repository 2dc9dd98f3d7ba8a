"""Configured external services are used as they are: none of them is started or stopped
by the cluster. Here the "external" PostgreSQL, Redis, broker and Ray head are started by
the test (the Ray head with token authentication, as a production one would have)."""

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
        token = embedded.make_token(state / "ray-token")
        started.append(embedded.start_ray(state, token))
        yield {s.name: s for s in started}, token
    finally:
        for service in started:
            embedded.STOPPERS[service.name](service)
        shutil.rmtree(state, ignore_errors=True)


def test_cluster_uses_external_services_and_leaves_them_running(external_services):
    services, token = external_services
    other = CliCluster.small(
        CONVEYOR_POSTGRES_DSN=services["postgres"].address,
        CONVEYOR_REDIS_URL=services["redis"].address,
        CONVEYOR_KAFKA_BOOTSTRAP=services["kafka"].address,
        CONVEYOR_RAY_ADDRESS=services["ray"].address,
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token),
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
    for service in services.values():
        assert all(psutil.pid_exists(pid) for pid in service.pids), f"{service.name} was stopped"


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
