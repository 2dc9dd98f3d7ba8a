"""Monitoring through the running cluster: what a user checks after scoring a deployed
model: counts equal the requests made, latency figures within what the callers saw,
drift high for shifted inputs and low for unshifted ones, an alert on the `alerts`
topic, accuracy against outcomes joined by request id, the CLI's summary."""

from __future__ import annotations

import asyncio
import json
import uuid

import numpy as np
import pytest

from tests.integration.test_serving import TWO, trained  # noqa: F401  (the module's model: v1 lr, v2 tree)
from tests.support.datasets import cancer_rows

pytestmark = pytest.mark.integration

ROWS = cancer_rows()
SHIFTED = ("f0", "f1", "f2", "f3")


def shifted(features: dict) -> dict:
    return {k: v * 1.8 if k in SHIFTED else v for k, v in features.items()}


@pytest.fixture(scope="module")
async def scored(conveyor, trained):  # noqa: F811
    """v1 in production answers every cancer row as it is (each with a request id and an
    outcome); v2 answers 300 rows whose first four features are scaled by 1.8."""
    await conveyor.deploy(trained, 2)
    await conveyor.deploy(trained, 1)                  # production v1, previous v2: both live
    plain, moved = [], []
    for key, features, _ in ROWS:
        plain.append(await conveyor.score(trained, features, version=1, deadline_ms=2000,
                                          request_id=f"mon-{uuid.uuid4().hex[:12]}"))
    for _, features, _ in ROWS[:300]:
        moved.append(await conveyor.score(trained, shifted(features), version=2, deadline_ms=2000))
    return trained, plain, moved


async def summary_of(conveyor, model: str, version: int, n: int):
    from tests.support.waiting import eventually

    async def check():
        found = {v.version: v for v in await conveyor.monitoring(model)} if await _any(conveyor, model) else {}
        v = found.get(version)
        return v if v is not None and v.n_served >= n and v.n_drift_sample >= min(n, 100) and v.feature_drift else None

    return await eventually(check, timeout_s=90, interval_s=0.5, what=f"the monitor's figures of {model} v{version}")


async def _any(conveyor, model: str) -> bool:
    return bool(await (await conveyor._db()).fetchval("SELECT count(*) FROM monitor_versions WHERE model = $1", model))


async def test_counts_and_latencies_match_what_the_callers_saw(conveyor, scored):
    model, plain, moved = scored
    v1 = await summary_of(conveyor, model, 1, len(plain))
    assert all(r.answered_by == "primary" for r in plain)
    assert (v1.n_served, v1.n_fallback, v1.n_errors) == (len(plain), 0, 0)
    seen = np.array([r.latency_ms for r in plain])
    assert seen.min() <= v1.latency_min_ms <= v1.latency_p50_ms <= v1.latency_p99_ms <= v1.latency_max_ms <= seen.max()
    assert v1.latency_p99_ms in set(seen.tolist()) and v1.latency_mean_ms == pytest.approx(seen.mean(), rel=1e-6)
    v2 = await summary_of(conveyor, model, 2, len(moved))
    assert v2.n_served == len(moved)


async def test_drift_is_high_for_shifted_inputs_and_low_for_unshifted_ones(conveyor, scored):
    model, plain, moved = scored
    v1 = await summary_of(conveyor, model, 1, len(plain))
    v2 = await summary_of(conveyor, model, 2, len(moved))
    assert len(v1.feature_drift) == 30 and v1.drifting_features() == []
    assert max(d.psi for d in v1.feature_drift.values()) < 0.1
    assert set(SHIFTED) <= set(v2.drifting_features())
    assert all(v2.feature_drift[f].ks > 0.2 and v2.feature_drift[f].p_value < 1e-6 for f in SHIFTED)
    assert not set(v2.drifting_features()) - set(SHIFTED)
    assert v1.prediction_drift is not None and v1.prediction_drift.psi < 0.25


async def test_a_drift_alert_is_published_on_the_alerts_topic_and_stored(conveyor, settings, scored):
    from messages.codec import decode
    from messages.monitoring import AlertRaised
    from storage.kafka import PartitionReader
    from tests.support.waiting import eventually

    model = scored[0]
    stored = await eventually(lambda: _drift_alerts(conveyor, model), timeout_s=90, what="a stored drift alert")
    assert stored[0].version == 2 and set(SHIFTED) <= set(stored[0].details)
    reader = PartitionReader(settings.kafka_bootstrap, "alerts", 0, settings.kafka_fetch_max_wait_ms)
    await reader.start(0)
    found = []
    try:
        async def published():
            for record in await reader.read(timeout_ms=500, max_records=1000):
                message = decode(record.value)
                if isinstance(message, AlertRaised) and message.model == model:
                    found.append(message)
            # at least once on the topic: a message published twice is one alert (its msg_id); the
            # window slides on, so a drift that cleared and came back is a second alert (episode)
            alerts = {a.msg_id: a for a in found if a.kind == "feature_drift"}
            return alerts if stored[0].alert_id in alerts else None

        alerts = await eventually(published, timeout_s=60, what="alert.raised on the alerts topic")
    finally:
        await reader.stop()
    alert = alerts[stored[0].alert_id]
    assert alert.version == 2 and alert.value > 0.25
    assert set(alerts) <= {a.alert_id for a in await _drift_alerts(conveyor, model)}   # each one also stored


async def _drift_alerts(conveyor, model):
    return [a for a in await conveyor.alerts(model) if a.kind == "feature_drift"]


async def test_outcomes_joined_by_request_id_give_the_accuracy_the_answers_had(conveyor, scored):
    from messages.stream import Observation
    from tests.support.waiting import eventually

    model, plain, _ = scored
    truth = {}
    for (key, _, label), result in zip(ROWS, plain):
        truth[result.request_id] = label
        await conveyor.submit(Observation(stream="cancer", event_id=result.request_id, entity_key=key, label=label),
                              topic="observations", key=key)
    expected = np.mean([str(truth[r.request_id]) == r.label for r in plain])

    async def joined():
        v = {s.version: s for s in await conveyor.monitoring(model)}[1]
        return v if v.n_observed == len(plain) else None

    v1 = await eventually(joined, timeout_s=90, interval_s=0.5, what="every outcome joined")
    assert v1.accuracy == pytest.approx(expected)


async def test_the_cli_prints_the_summary_and_refuses_a_bad_model_name(cluster, conveyor, scored):
    model, plain, moved = scored
    await summary_of(conveyor, model, 2, len(moved))
    done = cluster.run("monitor", model, "--json", check=True)
    found = {v["version"]: v for v in json.loads(done.stdout)["versions"]}
    assert found[1]["n_served"] == len(plain) and found[2]["n_served"] == len(moved)
    text = cluster.run("monitor", model, check=True).stdout
    assert f"{model} v2: {len(moved)} served" in text and "feature drift" in text
    bad = cluster.run("monitor", "no such model")
    assert bad.returncode == 2 and "model:" in bad.stderr
    unknown = cluster.run("monitor", f"never-{uuid.uuid4().hex[:6]}")
    assert unknown.returncode == 2 and "no monitored answers" in unknown.stderr


async def test_the_client_refuses_bad_arguments_naming_the_field(conveyor):
    from client.monitoring import MonitoringRefused
    from client.scoring import ScoringRefused

    with pytest.raises(MonitoringRefused, match="^model:"):
        await conveyor.monitoring("1bad")
    with pytest.raises(MonitoringRefused, match="^limit:"):
        await conveyor.alerts(None, limit=0)
    with pytest.raises(ScoringRefused, match="^request_id:"):
        await conveyor.score("m", {"x": 1.0}, request_id="has space")


async def test_figures_are_exported_as_prometheus_metrics(conveyor, scored):
    import re
    import urllib.request

    import ray

    from tests.support.waiting import eventually

    model = scored[0]
    await summary_of(conveyor, model, 1, len(scored[1]))
    ports = [n["MetricsExportPort"] for n in ray.nodes() if n["Alive"]]

    def scrape():
        for port in ports:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                continue
            lines = [line for line in text.splitlines() if line.startswith("ray_conveyor_model_served")
                     and f'model="{model}"' in line]
            served = {re.search(r'[{,]version="(\d+)"', line).group(1): float(line.rsplit(" ", 1)[1])
                      for line in lines}
            if served == {"1": len(scored[1]), "2": len(scored[2])}:
                return served
            found.append((served, [line for line in text.splitlines() if "conveyor" in line][:4]))
        return None

    found = []
    try:
        await eventually(scrape, timeout_s=90, interval_s=2, what="ray_conveyor_model_served of both versions")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last scraped: {found[-1:]}, ports {ports}") from None


async def test_a_killed_monitor_resumes_with_counts_as_if_it_had_never_crashed(conveyor, scored):
    import os
    import signal

    from tests.support.waiting import eventually

    model, plain, _ = scored
    observed = (await summary_of(conveyor, model, 1, len(plain))).n_observed
    before = (await conveyor.status()).actor("root.monitor")
    os.kill(before.pid, signal.SIGKILL)
    more = [await conveyor.score(model, features, version=1, deadline_ms=2000) for _, features, _ in ROWS[:50]]

    async def restarted():
        monitor = (await conveyor.status()).actor("root.monitor")
        return monitor.state == "running" and monitor.pid != before.pid

    await eventually(restarted, timeout_s=60, what="the monitor restarted by its supervisor")
    v1 = await summary_of(conveyor, model, 1, len(plain) + len(more))
    await asyncio.sleep(3 * 2.0)                                 # a few more intervals: nothing counted twice
    v1 = {v.version: v for v in await conveyor.monitoring(model)}[1]
    assert v1.n_served == len(plain) + len(more) and v1.n_observed == observed
