"""Unit tests of ml.algorithms: the registry, the facades and every validation error."""

from __future__ import annotations

import doctest
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

import ml.algorithms as algorithms
from ml.algorithms import (
    REQUIRED,
    AlgorithmError,
    AlgorithmSpec,
    BatchModel,
    ForecastModel,
    IncrementalModel,
    ParamSpec,
    build,
    check_training_data,
    get_algorithm,
    list_algorithms,
    positive_class_scores,
    register_algorithm,
    unregister_algorithm,
)

BUILTINS = {
    "sklearn.logistic_regression": ("sklearn", "classification"),
    "sklearn.linear_regression": ("sklearn", "regression"),
    "sklearn.sgd_classifier": ("sklearn", "classification"),
    "sklearn.decision_tree": ("sklearn", "classification"),
    "sklearn.random_forest": ("sklearn", "classification"),
    "sklearn.gradient_boosting": ("sklearn", "classification"),
    "sklearn.kmeans": ("sklearn", "clustering"),
    "river.logistic_regression": ("river", "classification"),
    "river.linear_regression": ("river", "regression"),
    "river.hoeffding_tree_classifier": ("river", "classification"),
    "river.arf_classifier": ("river", "classification"),
    "river.snarimax": ("river", "forecasting"),
}


def _standardise(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(axis=0)) / X.std(axis=0)


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:300]
    return _standardise(X[idx])[:, :10], y[idx]


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    return _standardise(X), y


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def airline() -> np.ndarray:
    from river import datasets

    return np.array([y for _, y in datasets.AirlinePassengers()], dtype=float)


@pytest.fixture
def registered():
    """Names registered by a test, removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        if name in {s.name for s in list_algorithms()}:
            unregister_algorithm(name)


# --------------------------------------------------------------------------- module hygiene


def test_doctests_pass():
    result = doctest.testmod(algorithms, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_import_is_light_and_ray_free():
    code = (
        "import sys, ml.algorithms, ml.evaluators, ml.curves\n"
        "heavy = [m for m in ('ray', 'sklearn', 'river', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('actors', 'storage', 'messages', 'supervisors')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_repo_root()))


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- registry


def test_builtins_are_registered_with_family_and_task():
    specs = {s.name: s for s in list_algorithms()}
    for name, (family, task) in BUILTINS.items():
        assert specs[name].family == family
        assert specs[name].task == task
        assert isinstance(specs[name], AlgorithmSpec)
        assert specs[name].incremental is (family == "river" or name == "sklearn.sgd_classifier")


def test_list_algorithms_filters_and_sorts():
    names = [s.name for s in list_algorithms()]
    assert names == sorted(names)
    assert {s.name for s in list_algorithms(family="river")} == {n for n, (f, _) in BUILTINS.items() if f == "river"}
    assert [s.name for s in list_algorithms(task="forecasting")] == ["river.snarimax"]


def test_specs_are_immutable_and_describe_as_json():
    spec = get_algorithm("sklearn.logistic_regression")
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.params["C"] = ParamSpec(float, 2.0)  # type: ignore[index]
    for s in list_algorithms():
        json.dumps(s.describe())
    c = spec.describe()["params"]["C"]
    assert c["type"] == "float" and c["min"] == 0.0 and c["min_exclusive"] is True


def test_builtin_parameter_ranges_are_sensible():
    lr = get_algorithm("sklearn.logistic_regression").params
    assert lr["C"].min == 0.0 and lr["C"].min_exclusive
    rf = get_algorithm("sklearn.random_forest").params
    assert rf["n_estimators"].type is int and rf["n_estimators"].min == 1
    assert rf["max_depth"].type is int and rf["max_depth"].min == 1 and rf["max_depth"].nullable
    assert rf["random_state"].type is int
    snarimax = get_algorithm("river.snarimax").params
    assert all(snarimax[k].default is REQUIRED for k in ("p", "d", "q"))


# --------------------------------------------------------------------------- one test per built-in


def _assert_classifier(model, X, y, keys, min_accuracy):
    pred = model.predict(X)
    assert pred.shape == (len(y),)
    assert set(np.unique(pred)) <= set(np.unique(y))
    assert np.mean(pred == y) >= min_accuracy
    proba = model.predict_proba(X)
    assert proba.shape == (len(y), 2)
    assert np.all(proba >= 0) and np.allclose(proba.sum(axis=1), 1.0)
    assert model.classes_.tolist() == [0, 1]
    pos = model.positive_proba(X)
    np.testing.assert_array_equal(pos, proba[:, 1])
    summary = model.summary()
    json.dumps(summary)
    assert summary["n_features"] == X.shape[1]
    assert summary["classes"] == [0, 1]
    assert set(keys) <= set(summary), set(keys) - set(summary)
    return summary


def test_sklearn_logistic_regression(cancer):
    X, y = cancer
    model = build("sklearn.logistic_regression", {"C": 1.0, "max_iter": 200})
    assert isinstance(model, BatchModel) and not model.is_incremental
    s = _assert_classifier(model.fit(X, y), X, y, ["coef", "intercept"], 0.9)
    assert len(s["coef"]) == X.shape[1] and isinstance(s["intercept"], float)
    np.testing.assert_allclose(s["coef"], model.estimator.coef_[0])


def test_sklearn_sgd_classifier(cancer):
    X, y = cancer
    model = build("sklearn.sgd_classifier", {"random_state": 0})
    assert model.is_incremental
    s = _assert_classifier(model.fit(X, y), X, y, ["coef", "intercept"], 0.9)
    assert len(s["coef"]) == X.shape[1]


def test_sklearn_decision_tree(cancer):
    X, y = cancer
    s = _assert_classifier(build("sklearn.decision_tree", {"max_depth": 3}).fit(X, y), X, y,
                           ["depth", "n_leaves", "n_nodes", "feature_importances"], 0.9)
    assert 1 <= s["depth"] <= 3 and 2 <= s["n_leaves"] <= 8


def test_sklearn_random_forest(cancer):
    X, y = cancer
    s = _assert_classifier(build("sklearn.random_forest", {"n_estimators": 5, "max_depth": 4}).fit(X, y), X, y,
                           ["n_estimators", "feature_importances"], 0.9)
    assert s["n_estimators"] == 5


def test_sklearn_gradient_boosting(cancer):
    X, y = cancer
    s = _assert_classifier(build("sklearn.gradient_boosting", {"n_estimators": 10, "max_depth": 2}).fit(X, y), X, y,
                           ["n_estimators", "feature_importances"], 0.9)
    assert s["n_estimators"] == 10


def test_sklearn_linear_regression(diabetes):
    X, y = diabetes
    model = build("sklearn.linear_regression").fit(X, y)
    pred = model.predict(X)
    assert pred.shape == y.shape
    s = model.summary()
    json.dumps(s)
    # Least squares reference.
    A = np.column_stack([X, np.ones(len(y))])
    ref, *_ = np.linalg.lstsq(A, y, rcond=None)
    np.testing.assert_allclose(s["coef"], ref[:-1], rtol=1e-8)
    assert s["intercept"] == pytest.approx(ref[-1])
    assert s["n_features"] == 10
    with pytest.raises(AlgorithmError) as err:
        model.predict_proba(X)
    assert err.value.field == "task"


def test_sklearn_kmeans(iris):
    X, _ = iris
    model = build("sklearn.kmeans", {"n_clusters": 3, "random_state": 0}).fit(X)
    labels = model.predict(X)
    assert set(labels.tolist()) == {0, 1, 2}
    s = model.summary()
    json.dumps(s)
    assert s["n_clusters"] == 3
    assert np.asarray(s["cluster_centers"]).shape == (3, 4)
    assert s["inertia"] > 0


def test_river_logistic_regression(cancer):
    X, y = cancer
    model = build("river.logistic_regression", {"lr": 0.05})
    assert isinstance(model, IncrementalModel) and model.is_incremental
    s = _assert_classifier(model.fit(X, y), X, y, ["coef", "intercept", "n_samples_seen"], 0.9)
    assert len(s["coef"]) == X.shape[1] and s["scaled"] is True
    assert s["n_samples_seen"] == len(y)


def test_river_hoeffding_tree(cancer):
    X, y = cancer
    model = build("river.hoeffding_tree_classifier", {"grace_period": 20, "max_depth": 4})
    s = _assert_classifier(model.fit(X, y), X, y, ["depth", "n_leaves", "n_nodes"], 0.85)
    assert s["n_leaves"] >= 1


def test_river_arf_classifier(cancer):
    X, y = cancer
    model = build("river.arf_classifier", {"n_models": 3, "seed": 1})
    s = _assert_classifier(model.fit(X, y), X, y, ["n_estimators", "depth"], 0.85)
    assert s["n_estimators"] == 3


def test_river_linear_regression(diabetes):
    X, y = diabetes
    model = build("river.linear_regression", {"lr": 0.01, "intercept_lr": 0.1})
    model.fit(X, y)
    for _ in range(4):  # a few more passes
        model.learn_batch(X, y)
    pred = model.predict(X)
    assert pred.shape == y.shape
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert r2 > 0.3
    s = model.summary()
    json.dumps(s)
    assert len(s["coef"]) == 10 and isinstance(s["intercept"], float)
    assert s["n_samples_seen"] == 5 * len(y)


def test_river_snarimax(airline):
    model = build("river.snarimax", {"p": 12, "d": 1, "q": 12, "m": 12, "sp": 3, "sq": 6,
                                     "lr": 0.01, "intercept_lr": 0.3})
    assert isinstance(model, ForecastModel) and model.is_incremental
    model.fit(None, airline[:-12])
    forecast = model.forecast(12)
    assert forecast.shape == (12,) and np.isfinite(forecast).all()
    np.testing.assert_allclose(model.predict(np.empty((12, 0))), forecast)
    # Better than predicting the last value would be too strict for a short series; sanity only.
    assert np.all(np.abs(forecast - airline[-12:]) < 300)
    s = model.summary()
    json.dumps(s)
    assert (s["p"], s["d"], s["q"], s["m"]) == (12, 1, 12, 12)
    assert s["n_samples_seen"] == len(airline) - 12
    assert "coef" in s and "intercept" in s
    model.learn_batch(None, airline[-12:])
    assert model.summary()["n_samples_seen"] == len(airline)
    with pytest.raises(AlgorithmError) as err:
        model.forecast(0)
    assert err.value.field == "horizon"
    with pytest.raises(AlgorithmError) as err:
        model.predict(np.ones((3, 2)))  # trained without exogenous features
    assert err.value.field == "X"


def test_snarimax_with_exogenous_features():
    rng = np.random.default_rng(0)
    exog = rng.normal(size=(80, 1))
    series = 5 + 2 * exog[:, 0] + 0.1 * rng.normal(size=80)
    model = build("river.snarimax", {"p": 1, "d": 0, "q": 0}).fit(exog[:70], series[:70], feature_names=["promo"])
    assert model.feature_names == ("promo",)
    assert model.predict(exog[70:]).shape == (10,)
    with pytest.raises(AlgorithmError) as err:
        model.forecast(3)
    assert err.value.field == "X"


# --------------------------------------------------------------------------- facade behaviour


def test_every_builtin_has_a_test():
    tested = {name for name in BUILTINS}
    assert tested == {s.name for s in list_algorithms() if s.family != "custom"}


def test_sgd_learn_batch_is_incremental(cancer):
    X, y = cancer
    model = build("sklearn.sgd_classifier", {"random_state": 0})
    for start in range(0, len(y), 50):
        model.learn_batch(X[start:start + 50], y[start:start + 50], classes=[0, 1])
    assert model.is_fitted
    assert np.mean(model.predict(X) == y) > 0.85


def test_learn_batch_on_batch_only_model_is_refused(cancer):
    X, y = cancer
    with pytest.raises(AlgorithmError) as err:
        build("sklearn.decision_tree").learn_batch(X, y)
    assert err.value.field == "model" and "not incremental" in err.value.reason


def test_river_fit_restarts_and_learn_batch_continues(cancer):
    X, y = cancer
    model = build("river.logistic_regression")
    model.learn_batch(X[:100], y[:100])
    model.learn_batch(X[100:], y[100:])
    assert model.n_samples_seen == len(y)
    continued = model.predict_proba(X)
    model.fit(X, y)
    assert model.n_samples_seen == len(y)
    np.testing.assert_allclose(model.predict_proba(X), continued)  # same stream, same state
    model.fit(X[:50], y[:50])
    assert model.n_samples_seen == 50


def test_river_mini_batch_may_hold_one_class(cancer):
    X, y = cancer
    model = build("river.hoeffding_tree_classifier")
    only_ones = y == 1
    model.learn_batch(X[only_ones][:20], y[only_ones][:20])
    model.learn_batch(X[~only_ones][:20], y[~only_ones][:20])
    assert model.classes_.tolist() == [0, 1]


def test_river_binary_learner_with_string_labels():
    X = np.array([[0.0], [1.0]] * 40)
    y = np.array(["ham", "spam"] * 40)
    model = build("river.logistic_regression", {"lr": 0.5}).fit(X, y)
    assert model.classes_.tolist() == ["ham", "spam"]
    assert model.predict(np.array([[0.0], [1.0]])).tolist() == ["ham", "spam"]
    assert model.positive_proba(np.array([[1.0]]))[0] > 0.5
    assert set(model.predict_proba_one({"x0": 1.0})) == {"ham", "spam"}
    streaming = build("river.logistic_regression")
    with pytest.raises(AlgorithmError) as err:
        streaming.learn_batch(X[:1], y[:1])
    assert err.value.field == "classes"
    streaming.learn_batch(X[:1], y[:1], classes=["ham", "spam"])
    assert streaming.classes_.tolist() == ["ham", "spam"]


def test_river_binary_learner_refuses_three_classes(iris):
    X, y = iris
    with pytest.raises(AlgorithmError) as err:
        build("river.logistic_regression").fit(X, y)
    assert err.value.field == "y" and "binary" in err.value.reason


def test_river_multiclass_learner(iris):
    X, y = iris
    model = build("river.hoeffding_tree_classifier", {"grace_period": 20}).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (150, 3)
    assert np.mean(model.predict(X) == y) > 0.8
    with pytest.raises(AlgorithmError) as err:
        model.positive_proba(X)
    assert err.value.field == "classes"


def test_feature_names_given_or_default(cancer):
    X, y = cancer
    model = build("river.logistic_regression").fit(X[:, :3], y, feature_names=["a", "b", "c"])
    assert model.feature_names == ("a", "b", "c")
    assert model.summary()["feature_names"] == ["a", "b", "c"]
    assert model.predict_one({"a": 0.0, "b": 1.0, "c": 2.0}) == model.predict(np.array([[0.0, 1.0, 2.0]]))[0]
    default = build("sklearn.logistic_regression").fit(X[:, :3], y)
    assert default.feature_names == ("x0", "x1", "x2")
    with pytest.raises(AlgorithmError) as err:
        build("sklearn.logistic_regression").fit(X[:, :3], y, feature_names=["a", "b"])
    assert err.value.field == "feature_names"


def test_learn_one_and_predict_one_online():
    model = build("river.linear_regression", {"scale": False, "lr": 0.1})
    rng = np.random.default_rng(0)
    for _ in range(500):
        x = float(rng.uniform())
        model.learn_one({"x": x}, 3.0 * x + 1.0)
    assert model.feature_names == ("x",)
    assert model.predict_one({"x": 0.5}) == pytest.approx(2.5, abs=0.2)
    assert model.n_samples_seen == 500


def test_predict_before_fit_and_wrong_columns(cancer):
    X, y = cancer
    for name in ("sklearn.logistic_regression", "river.logistic_regression"):
        model = build(name)
        with pytest.raises(AlgorithmError) as err:
            model.predict(X)
        assert err.value.field == "model" and "not fitted" in err.value.reason
        model.fit(X, y)
        with pytest.raises(AlgorithmError) as err:
            model.predict(X[:, :4])
        assert err.value.field == "X" and "columns" in err.value.reason
        bad = X[:3].copy()
        bad[1, 2] = np.nan
        with pytest.raises(AlgorithmError) as err:
            model.predict(bad)
        assert err.value.field == "X"


def test_sgd_hinge_gives_no_probabilities(cancer):
    X, y = cancer
    model = build("sklearn.sgd_classifier", {"loss": "hinge"}).fit(X, y)
    with pytest.raises(AlgorithmError) as err:
        model.predict_proba(X)
    assert err.value.field == "model"


def test_kmeans_more_clusters_than_rows():
    with pytest.raises(AlgorithmError) as err:
        build("sklearn.kmeans", {"n_clusters": 5}).fit(np.zeros((3, 2)))
    assert err.value.field == "params.n_clusters"


@pytest.mark.parametrize("name", ["sklearn.random_forest", "river.arf_classifier"])
def test_fitted_models_pickle(cancer, name):
    X, y = cancer
    params = {"n_estimators": 3} if name.startswith("sklearn") else {"n_models": 2}
    model = build(name, params).fit(X, y)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    assert clone.summary() == model.summary()


def test_positive_class_scores_helper():
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert positive_class_scores(proba, [0, 1]).tolist() == [0.8, 0.4]
    assert positive_class_scores(proba, [0, 1], positive=0).tolist() == [0.2, 0.6]
    with pytest.raises(AlgorithmError):
        positive_class_scores(proba, [0, 1], positive=2)
    with pytest.raises(AlgorithmError):
        positive_class_scores(np.ones((2, 3)) / 3, [0, 1, 2])


# --------------------------------------------------------------------------- custom algorithms


class _NearestCentroid:
    """A batch estimator with fit/predict/predict_proba (no sklearn base)."""

    def __init__(self, shrink: float = 0.0):
        self.shrink = shrink

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.centroids_ = np.array([X[y == c].mean(axis=0) * (1 - self.shrink) for c in self.classes_])
        self.n_features_in_ = X.shape[1]
        return self

    def _dist(self, X):
        return np.linalg.norm(X[:, None, :] - self.centroids_[None, :, :], axis=2)

    def predict(self, X):
        return self.classes_[np.argmin(self._dist(X), axis=1)]

    def predict_proba(self, X):
        w = np.exp(-self._dist(X))
        return w / w.sum(axis=1, keepdims=True)


class _RunningMean:
    """An incremental regressor with learn_one/predict_one (River API, no River base)."""

    def __init__(self, prior: float = 0.0):
        self.total = prior
        self.count = 0

    def learn_one(self, x, y):
        self.total += y
        self.count += 1

    def predict_one(self, x):
        return self.total / max(self.count, 1)


def test_register_custom_batch_algorithm(registered, cancer):
    X, y = cancer
    spec = register_algorithm(
        "custom.nearest_centroid", _NearestCentroid, task="classification",
        params={"shrink": ParamSpec(float, 0.0, min=0.0, max=1.0, max_exclusive=True)},
    )
    registered.append(spec.name)
    assert spec.family == "custom" and spec in list_algorithms()
    model = build("custom.nearest_centroid", {"shrink": 0})
    assert isinstance(model, BatchModel) and not model.is_incremental
    assert model.params == {"shrink": 0.0}
    model.fit(X, y)
    assert np.mean(model.predict(X) == y) > 0.85
    assert model.predict_proba(X).shape == (len(y), 2)
    s = model.summary()
    assert s["family"] == "custom" and s["classes"] == [0, 1] and s["n_features"] == X.shape[1]
    with pytest.raises(AlgorithmError) as err:
        build("custom.nearest_centroid", {"shrink": 1.0})
    assert err.value.field == "params.shrink"


def test_register_custom_incremental_algorithm(registered, diabetes):
    X, y = diabetes
    registered.append(register_algorithm(
        "custom.running_mean", _RunningMean, task="regression", params={"prior": ParamSpec(float, 0.0)},
        incremental=True,
    ).name)
    model = build("custom.running_mean")
    assert isinstance(model, IncrementalModel) and model.is_incremental
    model.learn_batch(X[:100], y[:100])
    model.learn_batch(X[100:], y[100:])
    assert model.predict(X[:2]).tolist() == pytest.approx([y.mean(), y.mean()])
    model.fit(X[:10], y[:10])  # fit restarts from the prototype
    assert model.predict_one(X[0]) == pytest.approx(y[:10].mean())
    assert model.summary()["n_samples_seen"] == 10


def test_register_custom_partial_fit_estimator(registered, cancer):
    from sklearn.naive_bayes import GaussianNB

    X, y = cancer
    registered.append(register_algorithm("custom.gaussian_nb", GaussianNB, task="classification").name)
    model = build("custom.gaussian_nb")
    assert model.is_incremental  # it has partial_fit
    model.learn_batch(X[:150], y[:150]).learn_batch(X[150:], y[150:])
    assert np.mean(model.predict(X) == y) > 0.85


def test_register_errors(registered):
    registered.append(register_algorithm("custom.dup", _NearestCentroid, task="classification").name)
    cases = [
        (lambda: register_algorithm("custom.dup", _NearestCentroid, task="classification"), "name", "already registered"),
        (lambda: register_algorithm("", _NearestCentroid, task="classification"), "name", "non-empty"),
        (lambda: register_algorithm("custom.x", _NearestCentroid, task="ranking"), "task", "must be one of"),
        (lambda: register_algorithm("custom.x", 42, task="regression"), "factory", "callable"),
        (lambda: register_algorithm("custom.x", _NearestCentroid, task="regression", family="torch"), "family", "must be one of"),
        (lambda: register_algorithm("custom.x", _NearestCentroid, task="regression", params={"a": 1}), "params.a", "ParamSpec"),
        (lambda: register_algorithm("custom.x", _NearestCentroid, task="regression", params={"not valid": ParamSpec(int, 1)}), "params", "identifiers"),
    ]
    for call, field, reason in cases:
        with pytest.raises(AlgorithmError) as err:
            call()
        assert err.value.field == field and reason in err.value.reason, (field, err.value)
    # replace=True swaps the factory.
    register_algorithm("custom.dup", _RunningMean, task="regression", replace=True)
    assert get_algorithm("custom.dup").task == "regression"


def test_factory_without_usable_api(registered):
    registered.append(register_algorithm("custom.useless", object, task="regression").name)
    with pytest.raises(AlgorithmError) as err:
        build("custom.useless")
    assert err.value.field == "factory"


def test_validation_happens_before_the_factory_runs(registered):
    calls = []

    def factory(**params):
        calls.append(params)
        return _RunningMean()

    registered.append(register_algorithm(
        "custom.counted", factory, task="regression", params={"k": ParamSpec(int, 1, min=1)}
    ).name)
    with pytest.raises(AlgorithmError):
        build("custom.counted", {"k": 0})
    assert calls == []
    build("custom.counted", {"k": 2})
    assert calls == [{"k": 2}]


def test_unregister_unknown():
    with pytest.raises(AlgorithmError) as err:
        unregister_algorithm("custom.never")
    assert err.value.field == "name"


# --------------------------------------------------------------------------- parameter validation


@pytest.mark.parametrize(
    ("name", "params", "field", "reason"),
    [
        ("sklearn.svm", {}, "name", "unknown algorithm 'sklearn.svm'"),
        ("sklearn.logistic_regression", {"penalty": "l1"}, "params.penalty", "unknown parameter"),
        ("sklearn.logistic_regression", {"C": 0.0}, "params.C", "must be > 0.0"),
        ("sklearn.logistic_regression", {"C": -1}, "params.C", "must be > 0.0"),
        ("sklearn.logistic_regression", {"C": "1.0"}, "params.C", "must be a float, got str"),
        ("sklearn.logistic_regression", {"C": True}, "params.C", "must be a float, got bool"),
        ("sklearn.logistic_regression", {"C": float("nan")}, "params.C", "finite"),
        ("sklearn.logistic_regression", {"C": None}, "params.C", "got None"),
        ("sklearn.logistic_regression", {"solver": "adam"}, "params.solver", "must be one of"),
        ("sklearn.logistic_regression", {"fit_intercept": 1}, "params.fit_intercept", "must be a bool, got int"),
        ("sklearn.random_forest", {"n_estimators": 0}, "params.n_estimators", "must be >= 1"),
        ("sklearn.random_forest", {"n_estimators": True}, "params.n_estimators", "must be an int, got bool"),
        ("sklearn.random_forest", {"n_estimators": 10.0}, "params.n_estimators", "must be an int, got float"),
        ("sklearn.random_forest", {"max_depth": 0}, "params.max_depth", "must be >= 1"),
        ("sklearn.random_forest", {"random_state": -1}, "params.random_state", "must be >= 0"),
        ("sklearn.gradient_boosting", {"subsample": 1.5}, "params.subsample", "must be <= 1.0"),
        ("sklearn.gradient_boosting", {"subsample": 0}, "params.subsample", "must be > 0.0"),
        ("sklearn.decision_tree", {"min_samples_split": 1}, "params.min_samples_split", "must be >= 2"),
        ("river.hoeffding_tree_classifier", {"delta": 1.0}, "params.delta", "must be < 1.0"),
        ("river.snarimax", {"p": 1, "d": 0}, "params.q", "is required"),
        ("river.snarimax", {"p": -1, "d": 0, "q": 0}, "params.p", "must be >= 0"),
    ],
)
def test_build_validation_errors(name, params, field, reason):
    with pytest.raises(AlgorithmError) as err:
        build(name, params)
    assert isinstance(err.value, ValueError)
    assert err.value.field == field
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{field}: ")


def test_params_must_be_a_mapping():
    with pytest.raises(AlgorithmError) as err:
        build("sklearn.linear_regression", [("fit_intercept", True)])  # type: ignore[arg-type]
    assert err.value.field == "params"


def test_accepted_values_are_converted():
    model = build("sklearn.logistic_regression", {"C": 2, "max_iter": np.int64(50), "random_state": None})
    assert model.params["C"] == 2.0 and isinstance(model.params["C"], float)
    assert model.params["max_iter"] == 50 and type(model.params["max_iter"]) is int
    assert model.params["random_state"] is None
    assert model.estimator.C == 2.0
    assert build("sklearn.random_forest", {"max_depth": None}).params["max_depth"] is None


def test_algorithm_error_pickles():
    err = pickle.loads(pickle.dumps(AlgorithmError("params.C", "must be > 0")))
    assert (err.field, err.reason, str(err)) == ("params.C", "must be > 0", "params.C: must be > 0")


def test_param_spec_checks_itself():
    with pytest.raises(AlgorithmError):
        ParamSpec(list, [])  # type: ignore[arg-type]
    with pytest.raises(AlgorithmError):
        ParamSpec(int, 0, min=1)  # default out of range
    with pytest.raises(AlgorithmError):
        ParamSpec(str, "a", min=0)
    assert ParamSpec(int, REQUIRED, min=0).required


@given(st.integers(min_value=-1000, max_value=1000))
def test_int_param_bounds_property(value):
    spec = ParamSpec(int, 5, min=1, max=100)
    if 1 <= value <= 100:
        assert spec.validate(value, "params.k") == value
    else:
        with pytest.raises(AlgorithmError):
            spec.validate(value, "params.k")


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=10))
def test_exclusive_float_bound_property(value):
    spec = ParamSpec(float, 1.0, min=0.0, min_exclusive=True)
    if value > 0:
        assert spec.validate(value, "params.C") == value
    else:
        with pytest.raises(AlgorithmError):
            spec.validate(value, "params.C")


# --------------------------------------------------------------------------- training data validation


@pytest.mark.parametrize(
    ("X", "y", "task", "field", "reason"),
    [
        (np.empty((0, 3)), np.empty(0), "classification", "X", "empty"),
        (np.ones((4, 0)), [0, 1, 0, 1], "classification", "X", "no feature columns"),
        ([[1.0], [2.0], [3.0]], [1, 1, 1], "classification", "y", "at least 2 classes"),
        ([[1.0], [np.nan]], [0, 1], "classification", "X", "NaN or infinite"),
        ([[1.0], [np.inf]], [0.0, 1.0], "regression", "X", "NaN or infinite"),
        ([[1.0], [2.0], [3.0]], [0, 1], "classification", "y", "has 2 values but X has 3 rows"),
        ([1.0, 2.0], [0, 1], "classification", "X", "2-D"),
        ([["a"], ["b"]], [0, 1], "classification", "X", "numeric"),
        ([[1.0], [2.0]], None, "regression", "y", "required"),
        ([[1.0], [2.0]], [0.0, np.nan], "regression", "y", "NaN or infinite"),
        ([[1.0], [2.0]], ["a", "b"], "regression", "y", "numeric"),
        ([[1.0], [2.0], [3.0]], np.array([0, None, 1], dtype=object), "classification", "y", "missing labels"),
        ([[1.0], [2.0]], [0, 1], "ranking", "task", "must be one of"),
        (None, [0, 1], "classification", "X", "required"),
        (None, [], "forecasting", "y", "empty"),
    ],
)
def test_check_training_data_errors(X, y, task, field, reason):
    with pytest.raises(AlgorithmError) as err:
        check_training_data(X, y, task)
    assert err.value.field == field
    assert reason in err.value.reason


def test_check_training_data_accepts_and_converts():
    X, y = check_training_data([[1, 2], [3, 4]], [[0.5], [1.5]], "regression")
    assert X.dtype == float and y.tolist() == [0.5, 1.5]
    X, y = check_training_data([[1.0], [2.0]], None, "clustering")
    assert y is None
    X, y = check_training_data(None, [1.0, 2.0, 3.0], "forecasting")
    assert X is None and y.tolist() == [1.0, 2.0, 3.0]
    _, y = check_training_data([[1.0]], ["a"], "classification", min_classes=1)
    assert y.tolist() == ["a"]


@pytest.mark.parametrize("name", ["sklearn.logistic_regression", "river.hoeffding_tree_classifier"])
def test_fit_checks_training_data_first(name):
    model = build(name)
    with pytest.raises(AlgorithmError) as err:
        model.fit(np.array([[1.0], [2.0]]), np.array([1, 1]))
    assert err.value.field == "y"
    with pytest.raises(AlgorithmError) as err:
        model.fit(np.array([[1.0], [np.nan]]), np.array([0, 1]))
    assert err.value.field == "X"
    assert not model.is_fitted
