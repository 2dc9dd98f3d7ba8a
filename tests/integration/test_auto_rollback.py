"""Automatic rollback through the running cluster: a production version that breaks its
latency objective, or whose accuracy against observed outcomes falls below the previous
version's, is rolled back by the monitor, with an alert and an audit record saying why;
`run.py restore` undoes it."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.test_training import config
from tests.support.datasets import cancer_rows
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ROWS = cancer_rows()
FAST = '[[candidates]]\nname = "lr"\nalgorithm = "sklearn.logistic_regression"\nparams = { max_iter = 5000 }\n'
SLOW = '[[candidates]]\nname = "slow"\nalgorithm = "test.slow_classifier"\nparams = { delay_s = 0.07 }\n'


async def two_versions(conveyor, dataset: str, second: str) -> str:
    model = f"auto-{uuid.uuid4().hex[:8]}"
    await conveyor.wait_trained(await conveyor.train(config(model, dataset, FAST)), timeout_s=180)
    await conveyor.wait_trained(await conveyor.train(config(model, dataset, second)), timeout_s=180)
    await conveyor.deploy(model, 1)
    return model


async def aliases(conveyor, model: str) -> dict[int, list[str]]:
    return {d["version"]: d["aliases"] for d in await conveyor.deployments(model)}


async def rolled_back(conveyor, model: str, to: int):
    async def check():
        return "production" in (await aliases(conveyor, model)).get(to, [])

    await eventually(check, timeout_s=90, interval_s=0.5, what=f"production of {model} back on v{to}")


async def test_a_version_breaking_its_latency_objective_is_rolled_back_then_restored(cluster, conveyor, db, cancer):
    dataset, _ = cancer
    model = await two_versions(conveyor, dataset, SLOW)
    # The model's own objective, from its serving configuration: 50 ms (the cluster's is 100 ms)
    await conveyor.set_serving_config(model, "latency_objective_ms = 50\n")
    await conveyor.deploy(model, 2, replicas=1)                  # production: the slow one, 70 ms an answer
    latencies = []
    for _, features, _ in ROWS[:115]:
        result = await conveyor.score(model, features, deadline_ms=2000)
        if result.version == 1:
            break                                                # already rolled back
        latencies.append(result.latency_ms)
    assert sorted(latencies)[int(0.99 * (len(latencies) - 1))] > 50        # the objective (50 ms) is broken
    await rolled_back(conveyor, model, 1)
    assert (await aliases(conveyor, model))[2] == ["previous"]    # still live, out of production
    async def latency_alerts():    # the alert's record may land just after the rollback is seen
        return [a for a in await conveyor.alerts(model) if a.kind == "latency"]

    [alert] = await eventually(latency_alerts, timeout_s=30, what="the latency alert recorded")
    assert alert.version == 2 and alert.value > 50 and alert.threshold == 50 and "rolled back to v1" in alert.summary
    detail = json.loads(await db.fetchval("SELECT detail FROM audit_log WHERE action = 'model.rollback'"
                                          " AND subject = $1 ORDER BY id DESC LIMIT 1", model))
    assert detail["reason"].startswith("automatic: v2: p99 latency") and detail["version"] == 1
    assert detail["correlation_id"] == alert.alert_id             # the rollback is traced to its alert
    # ... and the alert to the requests behind it: the slowest answers of its window
    async def evidence():
        found = await conveyor.score_records(model, request_ids=alert.evidence)
        return len(found) == len(alert.evidence) and found

    assert len(alert.evidence) == 5
    slowest = await eventually(evidence, timeout_s=30, what="the score records the alert names")
    assert all(r.version == 2 and r.latency_ms > 50 for r in slowest)
    assert f"requests: {' '.join(alert.evidence)}" in cluster.run("monitor", model, check=True).stdout

    async def answered_by_v1():
        return (await conveyor.score(model, ROWS[0][1], deadline_ms=2000)).version == 1

    await eventually(answered_by_v1, timeout_s=10, what="traffic on v1")

    done = cluster.run("restore", model, check=True)
    assert "v2 is production again" in done.stdout
    assert (await aliases(conveyor, model))[2] == ["production"]
    assert (await db.fetchval("SELECT detail->>'reason' FROM audit_log WHERE action = 'model.rollback'"
                              " AND subject = $1 ORDER BY id DESC LIMIT 1", model)).startswith("restored: v2")
    again = cluster.run("restore", model)
    assert again.returncode == 2 and "no automatic rollback to undo" in again.stderr


async def test_a_version_less_accurate_than_the_previous_one_is_rolled_back(conveyor, db, cancer):
    from messages.stream import Observation

    dataset, _ = cancer
    model = await two_versions(conveyor, dataset, FAST)
    # only its accuracy may roll it back: a loaded machine must not break the latency objective first
    await conveyor.set_serving_config(model, "latency_objective_ms = 10000\nfallback_rate_alert = 1.0\n")

    async def serve_and_observe(version: int, flip: bool) -> None:
        for key, features, label in ROWS[:120]:
            result = await conveyor.score(model, features, deadline_ms=2000, request_id=f"acc-{uuid.uuid4().hex[:16]}")
            assert result.version == version
            await conveyor.submit(Observation(stream="cancer", event_id=result.request_id, entity_key=key,
                                              label=1 - label if flip else label), topic="observations", key=key)

    await serve_and_observe(1, flip=False)                      # v1: the outcomes agree with it
    await conveyor.deploy(model, 2)
    await serve_and_observe(2, flip=True)                       # v2: the world disagrees with it
    await rolled_back(conveyor, model, 1)
    async def accuracy_alerts():    # the monitor records its alert after the rollback it asked for
        return [a for a in await conveyor.alerts(model) if a.kind == "accuracy"]

    [alert] = await eventually(accuracy_alerts, timeout_s=30, what="the accuracy alert recorded")
    assert alert.version == 2 and alert.rolled_back_to == 1 and alert.value < 0.2

    async def every_outcome_joined():   # the rollback may come before the last outcomes are counted
        found = {v.version: v for v in await conveyor.monitoring(model)}
        return found if found.get(2) is not None and found[2].n_observed == 120 else None

    summary = await eventually(every_outcome_joined, timeout_s=30, what="all 120 outcomes of v2 joined")
    assert summary[1].accuracy > 0.9
    reason = await db.fetchval("SELECT detail->>'reason' FROM audit_log WHERE action = 'model.rollback'"
                               " AND subject = $1 ORDER BY id DESC LIMIT 1", model)
    assert reason.startswith("automatic: v2: accuracy")
