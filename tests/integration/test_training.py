"""Training through the running cluster: scikit-learn's bundled breast-cancer data is
ingested and prepared, candidates train in parallel actors, and their stored metrics
are compared with the same estimators fit directly on the same split."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

pytestmark = pytest.mark.integration

SPLIT = '[split]\nstrategy = "stratified"\nratio = 0.8\nseed = 0\n'


def cancer_csv(path) -> str:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    lines = ["id," + ",".join(f"f{i}" for i in range(30)) + ",label"]
    for i, (row, label) in enumerate(zip(data.data, data.target)):
        lines.append(f"p{i}," + ",".join(repr(float(v)) for v in row) + f",{label}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


NUMERIC_SPEC = 'label = "label"\nkey = "id"\n' + "".join(
    f'[[steps]]\nname = "f{i}"\ntransform = "numeric"\ncolumns = ["f{i}"]\n' for i in range(30))


@pytest.fixture(scope="module")
async def cancer(conveyor, db, tmp_path_factory):
    """A dataset of the breast-cancer rows with features prepared; (dataset, feature set id)."""
    from tests.support.waiting import eventually

    dataset = f"cancer-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, NUMERIC_SPEC)
    request = await conveyor.ingest(dataset, cancer_csv(tmp_path_factory.mktemp("cancer") / "cancer.csv"),
                                    key="id", label="label")
    await conveyor.wait_ingested(request, dataset, timeout_s=120)
    fsid = await eventually(lambda: db.fetchval("SELECT feature_set_id FROM feature_sets WHERE dataset = $1",
                                                dataset), timeout_s=120, what="features of the cancer data")
    await eventually(lambda: db.fetchval("SELECT count(*) = 569 FROM features WHERE feature_set_id = $1", fsid),
                     timeout_s=60, what="569 feature rows")
    return dataset, fsid


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
name = "lr"
algorithm = "sklearn.logistic_regression"
params = { max_iter = 5000, C = 0.5 }
[[candidates]]
name = "forest"
algorithm = "sklearn.random_forest"
params = { n_estimators = 400 }
[[candidates]]
name = "boost"
algorithm = "sklearn.gradient_boosting"
params = { n_estimators = 300 }
[[candidates]]
name = "tree"
algorithm = "sklearn.decision_tree"
grid = { max_depth = [2, 3, 5] }
[[candidates]]
name = "sgd"
algorithm = "sklearn.sgd_classifier"
params = { loss = "log_loss" }
"""


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

    # the two slow candidates trained at the same time: their run intervals share an instant
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
