"""Training through the running cluster: scikit-learn's bundled breast-cancer data is
ingested and prepared, candidates train in parallel actors, and their stored metrics
are compared with the same estimators fit directly on the same split."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

pytestmark = pytest.mark.integration

SPLIT = '[split]\nstrategy = "stratified"\nratio = 0.8\nseed = 0\n'


def config(model: str, dataset: str, candidates: str, extra: str = "") -> str:
    return f'model = "{model}"\ndataset = "{dataset}"\nmetric = "roc_auc"\n{extra}\n{SPLIT}\n{candidates}'


def direct_estimator(algorithm: str, params: dict):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.tree import DecisionTreeClassifier

    if algorithm == "sklearn.random_forest":
        return RandomForestClassifier(n_jobs=1, **params)
    return {"sklearn.logistic_regression": LogisticRegression, "sklearn.gradient_boosting": GradientBoostingClassifier,
            "sklearn.decision_tree": DecisionTreeClassifier, "sklearn.sgd_classifier": SGDClassifier}[algorithm](**params)


SKLEARN_CANDIDATES = """
[[candidates]]
name = "forest"
algorithm = "sklearn.random_forest"
params = { n_estimators = 400 }
[[candidates]]
name = "boost"
algorithm = "sklearn.gradient_boosting"
params = { n_estimators = 300 }
[[candidates]]
name = "lr"
algorithm = "sklearn.logistic_regression"
params = { max_iter = 5000, C = 0.5 }
[[candidates]]
name = "tree"
algorithm = "sklearn.decision_tree"
grid = { max_depth = [2, 3, 5] }
[[candidates]]
name = "sgd"
algorithm = "sklearn.sgd_classifier"
params = { loss = "log_loss" }
"""


async def test_a_run_trains_as_many_candidates_at_once_as_the_cluster_has_cpus_in_the_configs_order(
        conveyor, cancer):
    dataset, _ = cancer
    model = f"m-{uuid.uuid4().hex[:8]}"
    names = [f"slow{i}" for i in range(5)]
    candidates = "".join(f'[[candidates]]\nname = "{name}"\nalgorithm = "test.slow_fit"\nparams = {{ delay_s = 1.5 }}\n'
                         for name in names)
    run_id = await conveyor.train(config(model, dataset, candidates))
    done = await conveyor.wait_trained(run_id, timeout_s=300)
    assert done.state == "done" and done.n_trained == len(names)
    found = {c["name"]: c for c in await conveyor.candidates(model)}
    slots = min(len(names), os.cpu_count() or 1)   # the embedded Ray head declares every CPU of the machine

    def fitting_at(moment: float) -> int:
        return sum(c["started_at"] <= moment < c["finished_at"] for c in found.values())

    busiest = max(fitting_at(c["started_at"]) for c in found.values())
    assert busiest == slots, [(n, c["started_at"], c["finished_at"]) for n, c in found.items()]
    # Slots go in the config's order: the (k+1)-th candidate in the queue gets the slot freed by
    # the (k+1)-th fit to end, so at least k+1 fits had ended when it started (its own actor's
    # start-up may still put its fit after a later candidate's, on a loaded machine).
    for i, name in enumerate(names[slots:]):
        started = found[name]["started_at"]
        ended_before = sum(c["finished_at"] <= started for c in found.values())
        assert ended_before >= i + 1, (name, ended_before, [(n, c["started_at"], c["finished_at"])
                                                            for n, c in found.items()])


async def test_sklearn_candidates_equal_the_same_estimators_fit_directly_and_train_at_the_same_time(conveyor, cancer):
    from ml.evaluators import evaluate

    dataset, fsid = cancer
    model = f"m-{uuid.uuid4().hex[:8]}"
    run_id = await conveyor.train(config(model, dataset, SKLEARN_CANDIDATES))
    done = await conveyor.wait_trained(run_id, timeout_s=300)
    assert done.state == "done" and done.n_trained == 5 and done.reference == "baseline"
    found = {c["name"]: c for c in await conveyor.candidates(model)}
    assert sorted(found) == ["boost", "forest", "lr", "sgd", "tree"]

    split, X_train, X_test, y_train, y_test = await conveyor.training_split(fsid, strategy="stratified", ratio=0.8,
                                                                           seed=0)
    for name, candidate in found.items():
        assert candidate["feature_set_id"] == fsid and candidate["n_train"] == len(X_train)
        estimator = direct_estimator(candidate["algorithm"], candidate["params"]).fit(X_train, y_train)
        expected = evaluate("classification", y_test, y_pred=estimator.predict(X_test),
                            y_score=estimator.predict_proba(X_test), labels=estimator.classes_.tolist())
        for metric, value in expected.items():
            if isinstance(value, float):
                assert candidate["metrics"][metric] == pytest.approx(value, abs=1e-9), (name, metric)
            else:
                assert candidate["metrics"][metric] == value, (name, metric)
    tree = found["tree"]
    assert [t["params"]["max_depth"] for t in tree["search"]] == [2, 3, 5]
    assert tree["params"]["max_depth"] in (2, 3, 5)

    # the two slow candidates (the first two: they take the warm actors) trained at the same time
    slow = [found[n] for n in ("forest", "boost")]
    assert max(c["started_at"] for c in slow) < min(c["finished_at"] for c in slow)
    best = max(found.values(), key=lambda c: c["metrics"]["roc_auc"])
    assert done.best_candidate == best["candidate_id"] and done.deployable
    assert [c["name"] for c in found.values() if c["deployable"]] == [best["name"]]


async def set_production(db, model: str, candidate_id: str) -> None:
    """What a deployment does to the registry (deployment itself is a later stage)."""
    await db.execute("INSERT INTO model_aliases (model, alias, candidate_id) VALUES ($1, 'production', $2)"
                     " ON CONFLICT (model, alias) DO UPDATE SET candidate_id = EXCLUDED.candidate_id", model,
                     candidate_id)


STUMP = '[[candidates]]\nname = "stump"\nalgorithm = "sklearn.decision_tree"\nparams = { max_depth = 1 }\n'
LR = '[[candidates]]\nname = "lr"\nalgorithm = "sklearn.logistic_regression"\nparams = { max_iter = 5000 }\n'


async def test_blessing_first_model_against_the_baseline_then_against_production(conveyor, db, cancer):
    dataset, _ = cancer
    model = f"bless-{uuid.uuid4().hex[:8]}"

    first = await conveyor.wait_trained(await conveyor.train(config(model, dataset, STUMP)), timeout_s=180)
    assert first.reference == "baseline" and first.reference_score == pytest.approx(0.5)
    assert first.deployable and first.score > 0.5
    stump = (await conveyor.candidate(model))["candidate_id"]
    await set_production(db, model, stump)

    better = await conveyor.wait_trained(await conveyor.train(config(model, dataset, LR)), timeout_s=180)
    assert better.reference == "production v1"
    assert better.reference_score == pytest.approx(first.score, abs=1e-12)    # re-scored on the same test side
    assert better.score > better.reference_score and better.deployable
    await set_production(db, model, better.best_candidate)

    worse = await conveyor.wait_trained(await conveyor.train(config(model, dataset, STUMP)), timeout_s=180)
    assert worse.reference == "production v2" and not worse.deployable
    assert not (await conveyor.candidate(model, 3))["deployable"]

    # beating production, but not by the margin, is not enough
    margin = await conveyor.wait_trained(await conveyor.train(config(model, dataset, LR, "margin = 0.5")),
                                         timeout_s=180)
    assert margin.reference == "production v2" and not margin.deployable
    evaluated = await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'model.evaluated' AND subject = $1",
                                  model)
    assert evaluated == 4


async def test_model_parallel_blocks_train_a_linear_model(conveyor, cancer):
    dataset, _ = cancer
    model = f"blocks-{uuid.uuid4().hex[:8]}"
    blocks = ('[[candidates]]\nname = "blocks"\nalgorithm = "sklearn.logistic_regression"\nblocks = 3\n'
              'params = { max_iter = 300 }\n')
    done = await conveyor.wait_trained(await conveyor.train(config(model, dataset, blocks)), timeout_s=180)
    candidate = await conveyor.candidate(model)
    assert candidate["blocks"] == 3 and candidate["summary"]["blocks"] == 3
    assert len(candidate["summary"]["coef"]) == 30
    assert done.score > 0.95 and candidate["metrics"]["accuracy"] > 0.9
    loaded = await conveyor.load_candidate(candidate["candidate_id"])
    assert loaded.predict(np.zeros((2, 30))).shape == (2,)


async def test_a_killed_partition_resumes_from_its_checkpoint_and_ends_with_the_uninterrupted_model(
        conveyor, db, settings, synthetic):
    import os
    import signal

    from actors.remote import RayRuntime
    from ml.algorithms import build
    from ml.ensemble import PartitionEnsemble
    from ml.training import partition_rows
    from tests.support.waiting import eventually

    dataset, fsid = synthetic
    model = f"arf-{uuid.uuid4().hex[:8]}"
    params = {"n_models": 2, "seed": 3}
    candidate = ('[[candidates]]\nname = "arf"\nalgorithm = "river.arf_classifier"\npartitions = 2\n'
                 'params = { n_models = 2, seed = 3 }\n')
    run_id = await conveyor.train(config(model, dataset, candidate, "checkpoint_every = 1000"))
    owner = f"{run_id}/arf/0"
    first = await eventually(lambda: db.fetchval("SELECT max(rows_done) FROM training_checkpoints WHERE owner = $1",
                                                 owner), timeout_s=120, interval_s=0.02, what="a first checkpoint")
    runtime = RayRuntime(settings.cluster_name)
    handle = runtime.lookup(f"train.{run_id[:12]}.arf.p0")
    killed_pid = await runtime.call(handle, "pid", 10)
    os.kill(killed_pid, signal.SIGKILL)
    done = await conveyor.wait_trained(run_id, timeout_s=300)

    rows = [r["rows_done"] for r in await db.fetch("SELECT rows_done FROM training_checkpoints WHERE owner = $1"
                                                   " ORDER BY rows_done", owner)]
    assert first < rows[-1] == 8000                      # killed before its end; 16,000 training rows / 2
    assert rows == list(range(1000, 8001, 1000))         # every chunk checkpointed once: resumed, not restarted
    stored = await conveyor.load_candidate(done.best_candidate)

    names = list(await db.fetchval("SELECT feature_names FROM feature_sets WHERE feature_set_id = $1", fsid))
    _, X_train, X_test, y_train, y_test = await conveyor.training_split(fsid, strategy="stratified", ratio=0.8, seed=0)
    classes = sorted(set(y_train.tolist()))
    members = []
    for part in partition_rows(len(X_train), 2):
        learner = build("river.arf_classifier", params)
        for start in range(0, len(part), 1000):
            chunk = part[start:start + 1000]
            learner.learn_batch(X_train[chunk], y_train[chunk], classes=classes, feature_names=names)
        members.append(learner)
    uninterrupted = PartitionEnsemble(members)
    assert np.array_equal(stored.predict_proba(X_test), uninterrupted.predict_proba(X_test))


async def test_bad_configs_and_sources_are_refused_before_any_worker_starts(conveyor, db, cancer, tmp_path):
    from client.training import TrainingRefused

    dataset, _ = cancer
    cases = [
        (config("m", dataset, '[[candidates]]\nname = "a"\nalgorithm = "sklearn.svm"\n'), "candidates[0].algorithm"),
        (config("m", dataset, LR.replace("max_iter = 5000", "max_iters = 5")), "candidates[0].params.max_iters"),
        (config("m", dataset, LR.replace("max_iter = 5000", 'max_iter = "many"')), "candidates[0].params.max_iter"),
        (config("m", dataset, LR.replace("max_iter = 5000", "C = -1.0")), "candidates[0].params.C"),
        (config("m", dataset, STUMP, 'metric = "rmse"').replace('metric = "roc_auc"\n', ""), "metric"),
        (config("m", "no-such-dataset", LR), "dataset"),
        (config("m", dataset, LR).replace(f'dataset = "{dataset}"', 'feature_set = "0123456789abcdef"'),
         "feature_set"),
        (config("'; DROP TABLE candidates; --", dataset, LR), "model"),
        ("model = [", "config"),
    ]
    before = await db.fetchval("SELECT count(*) FROM training_runs")
    for text, field in cases:
        with pytest.raises(TrainingRefused) as info:
            await conveyor.train(text)
        assert info.value.field == field, (field, str(info.value))
    with pytest.raises(TrainingRefused, match="larger than 64 KiB"):
        big = tmp_path / "big.toml"
        big.write_text("# " + "x" * 70_000)
        await conveyor.train(big)

    single = f"single-{uuid.uuid4().hex[:8]}"     # every label the same: a single class
    await conveyor.set_feature_spec(single, 'label = "label"\n[[steps]]\nname = "x"\ntransform = "numeric"\n'
                                            'columns = ["x"]\n')
    path = tmp_path / "single.csv"
    path.write_text("x,label\n" + "".join(f"{i},1\n" for i in range(50)))
    await conveyor.wait_ingested(await conveyor.ingest(single, str(path), label="label"), single, timeout_s=60)
    from tests.support.waiting import eventually

    await eventually(lambda: db.fetchval("SELECT 1 FROM feature_sets WHERE dataset = $1", single), timeout_s=60)
    with pytest.raises(TrainingRefused, match="single class") as info:
        await conveyor.train(config("m", single, LR))
    assert info.value.field == "feature_set"
    assert await db.fetchval("SELECT count(*) FROM training_runs") == before   # nothing was submitted


async def test_a_command_from_another_producer_with_a_bad_config_is_recorded_as_a_failed_run(conveyor, db):
    from client.training import TrainingFailed
    from messages.training import TrainModels

    run_id = await conveyor.submit(TrainModels(config_toml='model = "m"\ndataset = "d"\n[[candidates]]\n'
                                                           'name = "a"\nalgorithm = "no.such"\n'))
    with pytest.raises(TrainingFailed, match="candidates\\[0\\].algorithm"):
        await conveyor.wait_trained(run_id, timeout_s=60)


async def test_new_features_trigger_training_when_configured(conveyor, db, tmp_path):
    from tests.support.waiting import eventually

    dataset = f"trig-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, 'label = "label"\n[[steps]]\nname = "x"\ntransform = "numeric"\n'
                                             'columns = ["x"]\n')
    await conveyor.set_training_trigger(dataset, config("trig", dataset, STUMP))
    path = tmp_path / "trig.csv"
    path.write_text("x,label\n" + "".join(f"{i},{int(i > 20)}\n" for i in range(60)))
    await conveyor.wait_ingested(await conveyor.ingest(dataset, str(path), label="label"), dataset, timeout_s=60)
    fsid = await eventually(lambda: db.fetchval("SELECT feature_set_id FROM feature_sets WHERE dataset = $1",
                                                dataset), timeout_s=60)
    run_id = await eventually(lambda: db.fetchval("SELECT run_id FROM training_runs WHERE feature_set_id = $1",
                                                  fsid), timeout_s=60, what="a triggered run")
    done = await conveyor.wait_trained(run_id, timeout_s=120)
    assert done.state == "done" and done.n_trained == 1


async def test_a_users_own_algorithm_registered_by_a_plugin_trains_in_the_cluster(conveyor, cancer):
    dataset, fsid = cancer
    model = f"own-{uuid.uuid4().hex[:8]}"
    own = ('[[candidates]]\nname = "centroid"\nalgorithm = "test.nearest_centroid"\n'
           'grid = { shrink = [0.0, 0.5] }\n')
    run_id = await conveyor.train(config(model, dataset, own).replace('metric = "roc_auc"', 'metric = "accuracy"'))
    done = await conveyor.wait_trained(run_id, timeout_s=180)
    candidate = await conveyor.candidate(model)
    assert done.state == "done" and candidate["algorithm"] == "test.nearest_centroid"
    assert len(candidate["search"]) == 2 and 0.8 < candidate["metrics"]["accuracy"] <= 1.0
    assert "roc_auc" not in candidate["metrics"]    # no probabilities: label metrics only


async def test_regression_and_clustering_runs_compare_with_their_baselines(conveyor, cancer):
    dataset, _ = cancer
    regression = f"reg-{uuid.uuid4().hex[:8]}"
    ols = '[[candidates]]\nname = "ols"\nalgorithm = "sklearn.linear_regression"\n'
    done = await conveyor.wait_trained(await conveyor.train(
        config(regression, dataset, ols).replace('metric = "roc_auc"', 'metric = "rmse"')
        .replace('strategy = "stratified"', 'strategy = "random"')), timeout_s=180)
    assert done.reference == "baseline" and done.score < done.reference_score and done.deployable
    assert set((await conveyor.candidate(regression))["metrics"]) >= {"rmse", "mae", "r2"}

    clusters = f"km-{uuid.uuid4().hex[:8]}"
    kmeans = '[[candidates]]\nname = "km"\nalgorithm = "sklearn.kmeans"\nparams = { n_clusters = 2 }\n'
    done = await conveyor.wait_trained(await conveyor.train(
        config(clusters, dataset, kmeans).replace('metric = "roc_auc"', 'metric = "silhouette"')
        .replace('strategy = "stratified"', 'strategy = "random"')), timeout_s=180)
    assert done.metric == "silhouette" and 0 < done.score <= 1 and done.deployable


async def test_scheduled_training_runs_when_due(conveyor, db, cancer):
    from tests.support.waiting import eventually

    dataset, _ = cancer
    model = f"sched-{uuid.uuid4().hex[:8]}"
    schedule_id = await conveyor.schedule_training(config(model, dataset, STUMP), "* * * * * */2")
    try:
        run_id = await eventually(lambda: db.fetchval("SELECT run_id FROM training_runs WHERE model = $1", model),
                                  timeout_s=60, what="a scheduled run")
    finally:
        assert await conveyor.remove_schedule(schedule_id)
    assert (await conveyor.wait_trained(run_id, timeout_s=180)).state == "done"


async def test_a_tampered_artifact_is_refused_before_unpickling(conveyor, db, cancer):
    from storage.signing import SignatureMismatch

    dataset, _ = cancer
    model = f"tamper-{uuid.uuid4().hex[:8]}"
    await conveyor.wait_trained(await conveyor.train(config(model, dataset, STUMP)), timeout_s=180)
    candidate = await conveyor.candidate(model)
    assert (await conveyor.load_candidate(candidate["candidate_id"])).predict(np.zeros((1, 30))).shape == (1,)
    await db.execute("UPDATE candidates SET artifact = artifact || '\\x00'::bytea WHERE candidate_id = $1",
                     candidate["candidate_id"])
    with pytest.raises(SignatureMismatch):
        await conveyor.load_candidate(candidate["candidate_id"])


async def test_a_killed_candidate_actor_is_retried_and_the_run_completes(conveyor, db, settings, cancer):
    import os
    import signal

    from actors.remote import RayRuntime
    from tests.support.waiting import eventually

    dataset, _ = cancer
    model = f"retry-{uuid.uuid4().hex[:8]}"
    slow = '[[candidates]]\nname = "slow"\nalgorithm = "sklearn.random_forest"\nparams = { n_estimators = 1500 }\n'
    run_id = await conveyor.train(config(model, dataset, slow))
    runtime = RayRuntime(settings.cluster_name)

    async def candidate_actor():
        for name, handle in runtime.named_below("train"):
            try:
                if await runtime.call(handle, "describe", 5) == f"candidate {run_id}/slow":
                    return handle
            except Exception:
                continue
        return None

    handle = await eventually(candidate_actor, timeout_s=120, interval_s=0.1, what="the candidate's actor")
    os.kill(await runtime.call(handle, "pid", 5), signal.SIGKILL)
    done = await conveyor.wait_trained(run_id, timeout_s=300)
    candidate = await conveyor.candidate(model)
    assert done.state == "done" and candidate["attempts"] == 2 and candidate["name"] == "slow"
