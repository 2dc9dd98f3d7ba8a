"""Deployment and online scoring through the running cluster: versions behind the
caller's router, the fallback actor when a version is late, replicas restarted by the
deployment manager, and typed refusals of bad requests."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import numpy as np
import pytest

from tests.integration.test_training import config
from tests.support.datasets import cancer_rows

pytestmark = pytest.mark.integration

TWO = """
[[candidates]]
name = "lr"
algorithm = "sklearn.logistic_regression"
params = { max_iter = 5000 }
[[candidates]]
name = "tree"
algorithm = "sklearn.decision_tree"
params = { max_depth = 3 }
"""


@pytest.fixture(scope="module")
async def trained(conveyor, cancer):
    """A model with two versions (1: lr, 2: tree), neither deployed yet."""
    dataset, _ = cancer
    model = f"serve-{uuid.uuid4().hex[:8]}"
    await conveyor.wait_trained(await conveyor.train(config(model, dataset, TWO)), timeout_s=180)
    return model


ROWS = cancer_rows()


async def production_of(conveyor, model: str) -> int:
    """The model's production version; version 1 is deployed first when there is none."""
    live = [d["version"] for d in await conveyor.deployments(model) if "production" in d["aliases"]]
    return live[0] if live else (await conveyor.deploy(model, 1))["version"]


async def serving_in_a_new_process(runtime, name: str, old_pid: int) -> bool:
    """Whether replica ``name`` runs in another process than ``old_pid`` with its version loaded."""
    handle = runtime.lookup(name)
    try:
        return (handle is not None and await runtime.call(handle, "pid", 2) != old_pid
                and (await runtime.call(handle, "stats", 2))["loaded"])
    except Exception:
        return False


async def traffic(conveyor, model: str, stop: asyncio.Event, results: list, errors: list, deadline_ms: float = 500):
    i = 0
    while not stop.is_set():
        _, features, _ = ROWS[i % len(ROWS)]
        try:
            results.append(await conveyor.score(model, features, deadline_ms=deadline_ms))
        except Exception as exc:   # any failure is what the test counts
            errors.append(exc)
        i += 1
        await asyncio.sleep(0.005)


async def test_deploy_then_score_by_features_and_by_entity_key_like_the_model_in_process(conveyor, db, trained):
    from tests.support.waiting import eventually

    deployed = await conveyor.deploy(trained, 1)
    assert deployed["version"] == 1 and deployed["previous"] is None and len(deployed["replicas"]) == 2
    key, features, _ = ROWS[5]
    result = await conveyor.score(trained, features, deadline_ms=1000)
    assert (result.answered_by, result.version, result.fallback) == ("primary", 1, False)
    local = await conveyor.load_candidate((await conveyor.candidate(trained, 1))["candidate_id"])
    vector = np.array([list(features.values())])
    assert result.score == pytest.approx(float(local.predict_proba(vector)[0, 1]), abs=1e-12)
    assert result.label == str(local.predict(vector)[0])
    by_key = await conveyor.score(trained, entity_key=key, deadline_ms=1000)
    assert by_key.score == pytest.approx(result.score, abs=1e-12) and by_key.version == 1

    stored = await eventually(lambda: conveyor.get_score(result.request_id), timeout_s=30, what="the score record")
    assert stored.version == 1 and stored.answered_by == "primary" and stored.score == result.score
    [deployment] = await conveyor.deployments(trained)
    assert deployment["state"] == "live" and deployment["aliases"] == ["production"]
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'model.deployed' AND subject = $1",
                             trained) == 1


async def test_deploy_and_rollback_under_continuous_traffic_fail_no_request(conveyor, trained):
    current = await production_of(conveyor, trained)
    stop, results, errors = asyncio.Event(), [], []
    runner = asyncio.get_running_loop().create_task(traffic(conveyor, trained, stop, results, errors))
    try:
        await asyncio.sleep(0.5)
        other = 2 if current == 1 else 1
        deployed = await conveyor.deploy(trained, other)
        assert deployed["previous"] == current
        await asyncio.sleep(1.5)
        back = await conveyor.rollback(trained)
        assert back["version"] == current and back["previous"] == other
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await runner
    assert errors == [] and len(results) > 50
    answered = [r.version for r in results if r.answered_by == "primary"]
    assert set(answered) == {1, 2}                        # traffic moved to the new version, then back
    assert answered[-1] == current


async def test_a_killed_replica_fails_no_request_and_is_restarted(conveyor, settings, trained):
    from actors.remote import RayRuntime
    from tests.support.waiting import eventually

    runtime = RayRuntime(settings.cluster_name)
    production = await production_of(conveyor, trained)
    name = f"serve.{trained}.v{production}.r0"
    old_pid = await runtime.call(runtime.lookup(name), "pid", 10)
    stop, results, errors = asyncio.Event(), [], []
    runner = asyncio.get_running_loop().create_task(traffic(conveyor, trained, stop, results, errors))
    try:
        await asyncio.sleep(0.3)
        os.kill(old_pid, signal.SIGKILL)

        await eventually(lambda: serving_in_a_new_process(runtime, name, old_pid), timeout_s=60,
                         what="the replica restarted by the deployment manager")
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await runner
    assert errors == [] and len(results) > 20
    assert results[-1].answered_by == "primary"


async def test_a_frozen_replica_is_passed_over_after_its_first_late_answer(conveyor, settings, trained):
    """A frozen replica (SIGSTOP) answers nothing and Ray never reports it dead: once it let a
    request time out, the caller sends the version's requests to the other replica instead of
    waiting out every other one and answering it from the fallback."""
    from actors.remote import RayRuntime

    runtime = RayRuntime(settings.cluster_name)
    production = await production_of(conveyor, trained)
    await conveyor.score(trained, ROWS[0][1], deadline_ms=1000)            # both replicas known
    frozen = await runtime.call(runtime.lookup(f"serve.{trained}.v{production}.r0"), "pid", 10)
    os.kill(frozen, signal.SIGSTOP)
    try:
        results = [await conveyor.score(trained, ROWS[i % len(ROWS)][1], deadline_ms=200) for i in range(30)]
    finally:
        os.kill(frozen, signal.SIGCONT)
    by = [r.answered_by for r in results]
    assert all(r.version == production for r in results if r.answered_by == "primary")
    assert by.count("primary") >= 27, by        # round robin alone sends every other request to r0


async def test_a_replica_whose_load_failed_is_replaced_once_its_version_can_load(conveyor, settings, trained):
    """A replica restarted while its version cannot be loaded (here its artifact is gone from
    Redis for a while, as while Redis is being repaired) answers its health check but serves
    nothing: the deployment manager keeps replacing it until one loads."""
    from actors.remote import RayRuntime
    from storage.redis_store import connect_redis
    from storage.serving_store import RedisServingStore
    from tests.support.waiting import eventually

    runtime = RayRuntime(settings.cluster_name)
    production = await production_of(conveyor, trained)
    name = f"serve.{trained}.v{production}.r1"
    redis = connect_redis(settings.redis_url)
    key = RedisServingStore(redis, settings.cluster_name, b"").artifact_key(trained, production)
    artifact = await redis.get(key)
    assert artifact
    try:
        await redis.delete(key)
        old_pid = await runtime.call(runtime.lookup(name), "pid", 10)
        os.kill(old_pid, signal.SIGKILL)

        unloaded: set[int] = set()

        async def replaced_while_it_cannot_load():
            handle = runtime.lookup(name)
            try:
                pid = await runtime.call(handle, "pid", 2)
                if pid != old_pid and not (await runtime.call(handle, "stats", 2))["loaded"]:
                    unloaded.add(pid)
            except Exception:
                pass
            return len(unloaded) >= 2       # one that could not load, then another in its place

        await eventually(replaced_while_it_cannot_load, timeout_s=60, interval_s=0.05,
                         what="a replica that could not load its version replaced by another")
    finally:
        await redis.set(key, artifact)
        await redis.aclose()
    await eventually(lambda: serving_in_a_new_process(runtime, name, old_pid), timeout_s=60,
                     what="a replica that serves once its version can load")
    answer = await asyncio.wait_for(runtime.lookup(name).score.remote({"features": ROWS[0][1]}), timeout=10)
    assert answer["version"] == production and 0.0 <= answer["score"] <= 1.0


async def test_a_late_version_is_answered_by_the_fallback_within_the_deadline(conveyor, settings, trained, cancer):
    dataset, _ = cancer
    slow_model = f"slow-{uuid.uuid4().hex[:8]}"
    fast = '[[candidates]]\nname = "lr"\nalgorithm = "sklearn.logistic_regression"\nparams = { max_iter = 5000 }\n'
    slow = '[[candidates]]\nname = "slow"\nalgorithm = "test.slow_classifier"\nparams = { delay_s = 2.0 }\n'
    await conveyor.wait_trained(await conveyor.train(config(slow_model, dataset, fast)), timeout_s=180)
    await conveyor.wait_trained(await conveyor.train(config(slow_model, dataset, slow)), timeout_s=180)
    await conveyor.deploy(slow_model, 1)
    await conveyor.deploy(slow_model, 2, replicas=1)       # production is now the slow one
    deadline_ms = 1000.0    # the slow version takes 2 s; the fallback is asked at 750 ms
    await conveyor.score(slow_model, ROWS[0][1], deadline_ms=deadline_ms)   # the first opens the connections
    answers = []
    for _, features, _ in ROWS[:5]:
        answers.append(await conveyor.score(slow_model, features, deadline_ms=deadline_ms))
    for answer in answers:
        assert answer.fallback and answer.answered_by == "fallback" and answer.version == 1
        assert answer.latency_ms <= deadline_ms and "did not answer" in answer.reason
    by_previous = await conveyor.score(slow_model, ROWS[0][1], version=1, deadline_ms=1000)
    assert by_previous.score == answers[0].score and not by_previous.fallback

    # the slow replica still works through those requests (2 s each), yet its health check
    # answers at once, so the deployment manager never takes it for hung and restarts it
    from actors.remote import RayRuntime

    runtime = RayRuntime(settings.cluster_name)
    replica = runtime.lookup(f"serve.{slow_model}.v2.r0")
    pid = await runtime.call(replica, "pid", 5)
    for _ in range(3):     # within the 2 s the deployment manager's health check allows
        assert (await runtime.call(replica, "stats", 2.0))["loaded"]
        await asyncio.sleep(1.0)
    assert await runtime.call(runtime.lookup(f"serve.{slow_model}.v2.r0"), "pid", 5) == pid

    # what queued while it predicted and was given up by its caller is dropped, not predicted
    from tests.support.waiting import eventually

    async def dropped_expired():
        return (await runtime.call(replica, "stats", 2.0))["n_expired"] >= 1

    await eventually(dropped_expired, timeout_s=20, what="a queued request past its caller's deadline dropped")


async def test_bad_requests_are_refused_typed_and_never_take_down_a_replica(conveyor, settings, trained):
    from actors.remote import RayRuntime
    from client.scoring import DeploymentRefused, ScoringRefused

    runtime = RayRuntime(settings.cluster_name)
    production = await production_of(conveyor, trained)
    names = [f"serve.{trained}.v{production}.r{i}" for i in range(2)]
    pids = [await runtime.call(runtime.lookup(n), "pid", 10) for n in names]
    good = dict(ROWS[0][1])
    cases = [
        (dict(model="no-such-model", features=good), "model"),
        (dict(model="'; DROP TABLE scores; --", features=good), "model"),
        (dict(model=trained, features=good, version=99), "version"),
        (dict(model=trained, features=good, version="staging"), "version"),
        (dict(model=trained), "features"),
        (dict(model=trained, features={}), "features.f0"),
        (dict(model=trained, features={k: v for k, v in good.items() if k != "f7"}), "features.f7"),
        (dict(model=trained, features={**good, "f3": "abc"}), "features"),
        (dict(model=trained, features={**good, "f3": float("nan")}), "features.f3"),
        (dict(model=trained, features={**good, "f3": float("inf")}), "features.f3"),
        (dict(model=trained, features={**good, "f3": 10**400}), "features.f3"),
        (dict(model=trained, features={**good, "f3": [1, 2]}), "features.f3"),
        (dict(model=trained, features={**good, "big": "x" * 70_000}), "features.big"),
        (dict(model=trained, features={f"k{i}": 1.0 for i in range(5000)}), "features"),
        (dict(model=trained, features=good, entity_key="p1"), "features"),
        (dict(model=trained, entity_key="no-such-entity"), "entity_key"),
        (dict(model=trained, entity_key="\x00"), "entity_key"),
        (dict(model=trained, features=good, deadline_ms=0), "deadline_ms"),
        (dict(model=trained, features=good, deadline_ms="soon"), "deadline_ms"),
        (dict(model=trained, features=good, request_id="a b"), "request_id"),
        (dict(model=trained, features=good, request_id="x" * 65), "request_id"),
        (dict(model=trained, features=good, request_id=""), "request_id"),
        (dict(model=trained, features=good, request_id=7), "request_id"),
    ]
    for kwargs, field in cases:
        model = kwargs.pop("model")
        # Room for the replica's own checks: with the default 100 ms a loaded machine's late
        # replica is answered for by the fallback or the baseline (better wrong than late).
        kwargs.setdefault("deadline_ms", 10_000)
        with pytest.raises(ScoringRefused) as info:
            result = await conveyor.score(model, **kwargs)
            pytest.fail(f"answered, not refused: {model!r} {str(kwargs)[:200]} -> {result}")
        assert info.value.field == field, (kwargs, str(info.value))
    assert [await runtime.call(runtime.lookup(n), "pid", 10) for n in names] == pids
    assert (await conveyor.score(trained, good)).answered_by == "primary"

    for call, field in [(conveyor.deploy("no-such-model"), "model"), (conveyor.deploy(trained, 42), "version"),
                        (conveyor.deploy(trained, replicas=0), "replicas"), (conveyor.rollback("nothing"), "model"),
                        (conveyor.deploy("../x"), "model")]:
        with pytest.raises(DeploymentRefused) as info:
            await call
        assert info.value.field == field, str(info.value)


async def test_a_tampered_artifact_is_refused_at_deployment(conveyor, db, cancer):
    from client.scoring import DeploymentRefused

    dataset, _ = cancer
    model = f"tampered-{uuid.uuid4().hex[:8]}"
    await conveyor.wait_trained(await conveyor.train(config(model, dataset, TWO)), timeout_s=180)
    await db.execute("UPDATE candidates SET artifact = artifact || '\\x00'::bytea WHERE model = $1 AND version = 1",
                     model)
    with pytest.raises(DeploymentRefused, match="signature") as info:
        await conveyor.deploy(model, 1)
    assert info.value.field == "version"


async def test_batch_scores_equal_online_scores_and_fill_the_prediction_cache(conveyor, db, trained, cancer):
    from messages.serving import ScoresReady
    from tests.support.waiting import eventually

    production = await production_of(conveyor, trained)
    job = await conveyor.batch_score(trained)
    done = await conveyor.wait_batch_scored(job, timeout_s=120)
    assert done["n_rows"] == 569 and done["rows_done"] == 569 and done["version"] == production
    results = await conveyor.batch_scores(job)
    assert len(results) == 569 and len({(r["batch_id"], r["line_no"]) for r in results}) == 569
    by_key = {r["entity_key"]: r for r in results}
    for key, features, _ in ROWS[:20]:
        online = await conveyor.score(trained, features, version=production, deadline_ms=1000)
        assert online.answered_by == "primary"
        assert by_key[key]["score"] == pytest.approx(online.score, abs=1e-12) and by_key[key]["label"] == online.label
    cached = await conveyor.score(trained, entity_key=ROWS[3][0], deadline_ms=1000)
    assert cached.answered_by == "cache" and cached.score == pytest.approx(by_key[ROWS[3][0]]["score"], abs=1e-12)
    ready = await eventually(lambda: db.fetchval("SELECT payload FROM outbox WHERE topic = 'scores.ready'"
                                                 " AND dedup_key = $1", f"scoresready:{job}"), timeout_s=30)
    from messages.codec import decode

    event = decode(bytes(ready))
    assert isinstance(event, ScoresReady) and event.n_rows == 569


async def test_a_batch_job_survives_a_killed_scorer_with_every_row_scored_once(conveyor, db, synthetic):
    from tests.integration.test_training import config
    from tests.support.waiting import eventually

    dataset, fsid = synthetic
    model = f"bulk-{uuid.uuid4().hex[:8]}"
    forest = ('[[candidates]]\nname = "forest"\nalgorithm = "sklearn.random_forest"\n'
              'params = { n_estimators = 300 }\n')
    await conveyor.wait_trained(await conveyor.train(config(model, dataset, forest)), timeout_s=300)
    pid_before = await scorer_pid(conveyor, 0)
    job = await conveyor.batch_score(model, 1)
    await eventually(lambda: db.fetchval("SELECT rows_done > 0 FROM score_job_progress WHERE job_id = $1"
                                         " AND partition = 0", job), timeout_s=120, interval_s=0.02,
                     what="a first chunk stored by scorer-0")
    os.kill(pid_before, signal.SIGKILL)
    done = await conveyor.wait_batch_scored(job, timeout_s=300)
    assert done["state"] == "done" and done["n_rows"] == 20_000
    counts = await db.fetchrow("SELECT count(*) AS n, count(DISTINCT (batch_id, line_no)) AS distinct_rows"
                               " FROM batch_scores WHERE job_id = $1", job)
    assert counts["n"] == counts["distinct_rows"] == 20_000
    assert await scorer_pid(conveyor, 0) != pid_before        # its supervisor restarted it


async def scorer_pid(conveyor, partition: int) -> int:
    status = await conveyor.status()
    return status.actor(f"root.score-batch.scorer-{partition}").pid


async def test_batch_scoring_refusals(conveyor, trained):
    from client.scoring import DeploymentRefused, ScoringFailed

    with pytest.raises(ScoringFailed, match="no version 99"):
        await conveyor.wait_batch_scored(await conveyor.batch_score(trained, 99), timeout_s=60)
    with pytest.raises(ScoringFailed, match="no feature set"):
        await conveyor.wait_batch_scored(await conveyor.batch_score(trained, 1, "0123456789abcdef"), timeout_s=60)
    for kwargs, field in [(dict(model="'; --"), "model"), (dict(model=trained, version=0), "version"),
                          (dict(model=trained, feature_set_id="../x"), "feature_set_id")]:
        with pytest.raises(DeploymentRefused) as info:
            await conveyor.batch_score(**kwargs)
        assert info.value.field == field


async def test_a_weighted_canary_takes_its_share_and_answers_are_pushed_to_subscribers(conveyor, cancer):
    dataset, _ = cancer
    model = f"canary-{uuid.uuid4().hex[:8]}"
    await conveyor.wait_trained(await conveyor.train(config(model, dataset, TWO)), timeout_s=180)
    await conveyor.deploy(model, 1)
    deployed = await conveyor.deploy(model, 2, canary_weight=0.5, replicas=1)
    assert deployed["canary_weight"] == 0.5
    pushed = []

    async def listen():
        async for event in conveyor.subscribe(model):
            pushed.append(event)
            if len(pushed) == 60:
                return

    listener = asyncio.get_running_loop().create_task(listen())
    await asyncio.sleep(1.0)
    answers = [await conveyor.score(model, ROWS[i][1], deadline_ms=1000) for i in range(60)]
    counts = {v: sum(a.version == v for a in answers) for v in (1, 2)}
    assert counts[1] >= 10 and counts[2] >= 10                 # both take traffic (p of failing ~1e-7)
    assert all(a.answered_by == "primary" for a in answers)
    await asyncio.wait_for(listener, timeout=60)
    assert {e.request_id for e in pushed} == {a.request_id for a in answers}
    assert {d["version"]: d["aliases"] for d in await conveyor.deployments(model)} == {1: ["production"],
                                                                                       2: ["canary"]}


def _ready_spare_replicas(runtime) -> dict[int, str]:
    """pid -> name of the free spare replica processes, once every one of them is ready."""
    import ray

    from actors.remote import REPLICA_SPARE_PREFIX

    ready = {}
    for name, handle in runtime.free_spares(REPLICA_SPARE_PREFIX):
        stats = ray.get(handle.stats.remote(), timeout=10)
        if stats.get("spare") != "ready":
            return {}
        ready[stats["pid"]] = name
    return ready


async def test_a_killed_replica_is_loaded_into_a_spare_process_and_found_by_its_name(conveyor, settings, trained):
    from actors.remote import RayRuntime
    from tests.support.waiting import eventually

    runtime = RayRuntime(settings.cluster_name)
    spares = await eventually(lambda: asyncio.to_thread(_ready_spare_replicas, runtime), timeout_s=120,
                              what="a ready spare replica process (kept while a version is live)")
    production = await production_of(conveyor, trained)
    name = f"serve.{trained}.v{production}.r1"
    old_pid = await runtime.call(runtime.lookup(name), "pid", 10)
    os.kill(old_pid, signal.SIGKILL)
    await eventually(lambda: serving_in_a_new_process(runtime, name, old_pid), timeout_s=60,
                     what="the replica loaded again")
    new_pid = await runtime.call(runtime.lookup(name), "pid", 10)
    assert new_pid in spares and runtime.aliases("serve.")[name] == spares[new_pid]
    answer = await asyncio.wait_for(runtime.lookup(name).score.remote({"features": ROWS[0][1]}), timeout=10)
    assert answer["version"] == production
    await eventually(lambda: asyncio.to_thread(lambda: set(_ready_spare_replicas(runtime)) - set(spares)),
                     timeout_s=120, what="a new spare replica in place of the one taken")
