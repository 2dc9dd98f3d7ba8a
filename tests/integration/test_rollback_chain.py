"""Rolling back along the chain of production versions through the running cluster: each
rollback goes one version further back, a retired version is loaded again before traffic
moves to it, and a rollback with nothing earlier left is refused, naming the model."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.integration.test_training import config
from tests.support.datasets import cancer_rows

pytestmark = pytest.mark.integration

ROWS = cancer_rows()
THREE = "".join(f'[[candidates]]\nname = "lr{c}"\nalgorithm = "sklearn.logistic_regression"\n'
                f'params = {{ max_iter = 5000, C = {c} }}\n' for c in ("0.1", "1.0", "10.0"))


async def answered_by(conveyor, model: str) -> set[int]:
    return {(await conveyor.score(model, features, deadline_ms=2000)).version for _, features, _ in ROWS[:5]}


async def live(conveyor, model: str) -> dict[int, tuple[str, list[str]]]:
    return {d["version"]: (d["state"], d["aliases"]) for d in await conveyor.deployments(model)}


async def test_rollbacks_walk_back_through_every_earlier_version_reloading_retired_ones(cluster, conveyor, db,
                                                                                        cancer):
    from client.scoring import DeploymentRefused
    from tests.integration.test_log_chain import _lines_mentioning
    from tests.support.waiting import eventually

    dataset, _ = cancer
    model = f"chain-{uuid.uuid4().hex[:8]}"
    await conveyor.wait_trained(await conveyor.train(config(model, dataset, THREE)), timeout_s=180)
    assert await conveyor.set_serving_config(model, "replicas = 1\n") == 1   # deploys start one replica
    trace = f"trace-{uuid.uuid4().hex[:8]}"
    for version in (1, 2, 3):
        done = await conveyor.deploy(model, version, correlation_id=f"{trace}-{version}")
        assert done["correlation_id"] == f"{trace}-{version}" and len(done["replicas"]) == 1
    logs = Path(json.loads((cluster.state_dir / "cluster.json").read_text())["services"]["ray"]["work_dir"]) \
        / "session_latest" / "logs"

    def deployed_lines():
        return [(line["worker"], line["version"]) for line in _lines_mentioning(logs, trace)
                if line.get("event") == "model deployed" and line.get("correlation_id", "").startswith(trace)]

    found = await eventually(lambda: len(deployed_lines()) == 3 and deployed_lines(), timeout_s=30,
                             what="the deployment manager's log lines carrying each deploy's correlation id")
    assert sorted(found) == [("root.serve", 1), ("root.serve", 2), ("root.serve", 3)]

    async def v1_retired():
        return (await live(conveyor, model)).get(1, ("", []))[0] == "retired"

    await eventually(v1_retired, timeout_s=30, what="v1 retired once it is neither production nor previous")
    assert await answered_by(conveyor, model) == {3}

    back = await conveyor.rollback(model)
    assert (back["version"], back["previous"]) == (2, 3)
    assert await answered_by(conveyor, model) == {2}

    back = await conveyor.rollback(model)                 # not back to v3: further, to the retired v1
    assert (back["version"], back["previous"]) == (1, 2)
    assert (await live(conveyor, model))[1] == ("live", ["production"])
    assert await answered_by(conveyor, model) == {1}

    with pytest.raises(DeploymentRefused) as refused:
        await conveyor.rollback(model)
    assert refused.value.field == "model" and "no earlier version" in str(refused.value)
    assert "v2" in str(refused.value) and "v3" in str(refused.value)

    async def v3_retired():
        return (await live(conveyor, model))[3][0] == "retired"

    await eventually(v3_retired, timeout_s=30, what="v3 retired: neither production nor previous any more")
    rows = [json.loads(r["detail"]) for r in await db.fetch(
        "SELECT detail FROM audit_log WHERE action IN ('model.deployed', 'model.rollback') AND subject = $1"
        " ORDER BY id", model)]
    assert [(r["previous_version"], r["version"], r["rollback"]) for r in rows] == \
        [(None, 1, False), (1, 2, False), (2, 3, False), (3, 2, True), (2, 1, True)]
    assert [r["correlation_id"] for r in rows[:3]] == [f"{trace}-1", f"{trace}-2", f"{trace}-3"]
    assert rows[3]["correlation_id"] != rows[4]["correlation_id"]    # each rollback call its own chain
    deployed = await conveyor.deploy(model, 3)        # deploying a version rolled back from is allowed
    assert deployed["previous"] == 1 and await answered_by(conveyor, model) == {3}
