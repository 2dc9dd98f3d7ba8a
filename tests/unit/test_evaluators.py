"""Unit tests of ml.evaluators and ml.curves, checked against scikit-learn."""

from __future__ import annotations

import doctest
import json
import math
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler, label_binarize

import ml.curves as curves
import ml.evaluators as evaluators
from ml.curves import Curve, pr_curve, render_png, roc_curve
from ml.evaluators import (
    MetricError,
    UndefinedMetricError,
    baseline_scores,
    better,
    evaluate,
    get_metric,
    list_metrics,
    register_metric,
    unregister_metric,
)

TOL = 1e-12
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def binary():
    """Breast cancer: a logistic regression scored on a held-out half."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    train, test = idx[:285], idx[285:]
    model = LogisticRegression(C=0.05, max_iter=500).fit(X[train], y[train])
    return {
        "y_train": y[train],
        "y_true": y[test],
        "y_pred": model.predict(X[test]),
        "proba": model.predict_proba(X[test]),
        "decision": model.decision_function(X[test]),
    }


@pytest.fixture(scope="module")
def multiclass():
    X, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(y))
    train, test = idx[:75], idx[75:]
    model = LogisticRegression(C=0.1, max_iter=500).fit(X[train], y[train])
    return {"y_true": y[test], "y_pred": model.predict(X[test]), "proba": model.predict_proba(X[test])}


@pytest.fixture(scope="module")
def regression():
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X[:300], y[:300])
    return {"y_train": y[:300], "y_true": y[300:], "y_pred": model.predict(X[300:])}


@pytest.fixture(scope="module")
def clustering():
    X, _ = load_iris(return_X_y=True)
    return {"X": X, "labels": KMeans(n_clusters=3, n_init=1, random_state=0).fit_predict(X)}


# --------------------------------------------------------------------------- module hygiene


@pytest.mark.parametrize("module", [evaluators, curves], ids=["evaluators", "curves"])
def test_doctests_pass(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_curves_import_does_not_load_matplotlib():
    code = "import sys, ml.curves\nassert 'matplotlib' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).resolve().parents[2]))


# --------------------------------------------------------------------------- against scikit-learn


def test_binary_classification_matches_sklearn(binary):
    t, p, proba = binary["y_true"], binary["y_pred"], binary["proba"]
    scores = evaluate("classification", t, y_pred=p, y_score=proba[:, 1])
    reference = {
        "accuracy": skm.accuracy_score(t, p),
        "precision": skm.precision_score(t, p),
        "recall": skm.recall_score(t, p),
        "f1": skm.f1_score(t, p),
        "roc_auc": skm.roc_auc_score(t, proba[:, 1]),
        "pr_auc": skm.average_precision_score(t, proba[:, 1]),
        "log_loss": skm.log_loss(t, proba),
    }
    for name, expected in reference.items():
        assert abs(scores[name] - expected) <= TOL, name
    assert scores["confusion_matrix"] == skm.confusion_matrix(t, p).tolist()
    assert scores["labels"] == [0, 1]
    json.dumps(scores)


def test_two_column_scores_equal_positive_column(binary):
    t, p, proba = binary["y_true"], binary["y_pred"], binary["proba"]
    one = evaluate("classification", t, y_pred=p, y_score=proba[:, 1])
    two = evaluate("classification", t, y_pred=p, y_score=proba)
    for name in ("roc_auc", "pr_auc", "log_loss"):
        assert abs(one[name] - two[name]) <= TOL


def test_decision_scores_skip_log_loss(binary):
    t, decision = binary["y_true"], binary["decision"]
    scores = evaluate("classification", t, y_score=decision)
    assert abs(scores["roc_auc"] - skm.roc_auc_score(t, decision)) <= TOL
    assert abs(scores["pr_auc"] - skm.average_precision_score(t, decision)) <= TOL
    assert "log_loss" not in scores and "accuracy" not in scores
    with pytest.raises(MetricError) as err:
        evaluators.log_loss(t, decision)
    assert err.value.field == "y_score"


def test_multiclass_matches_sklearn(multiclass):
    t, p, proba = multiclass["y_true"], multiclass["y_pred"], multiclass["proba"]
    scores = evaluate("classification", t, y_pred=p, y_score=proba)
    reference = {
        "accuracy": skm.accuracy_score(t, p),
        "precision": skm.precision_score(t, p, average="macro"),
        "recall": skm.recall_score(t, p, average="macro"),
        "f1": skm.f1_score(t, p, average="macro"),
        "roc_auc": skm.roc_auc_score(t, proba, multi_class="ovr", average="macro"),
        "pr_auc": skm.average_precision_score(label_binarize(t, classes=[0, 1, 2]), proba, average="macro"),
        "log_loss": skm.log_loss(t, proba),
    }
    for name, expected in reference.items():
        assert abs(scores[name] - expected) <= TOL, name
    assert scores["confusion_matrix"] == skm.confusion_matrix(t, p).tolist()


def test_label_order_follows_score_columns(multiclass):
    t, p, proba = multiclass["y_true"], multiclass["y_pred"], multiclass["proba"]
    names = np.array(["setosa", "versicolor", "virginica"])
    sorted_order = evaluate("classification", names[t], y_pred=names[p], y_score=proba)
    reversed_order = evaluate(
        "classification", names[t], y_pred=names[p], y_score=proba[:, ::-1], labels=list(names[::-1])
    )
    for name in ("accuracy", "roc_auc", "pr_auc", "log_loss", "f1"):
        assert abs(sorted_order[name] - reversed_order[name]) <= TOL, name
    assert reversed_order["labels"] == ["virginica", "versicolor", "setosa"]


def test_string_binary_labels_use_the_larger_as_positive(binary):
    t, p, proba = binary["y_true"], binary["y_pred"], binary["proba"]
    names = np.array(["benign", "malignant"])  # 0 -> benign, 1 -> malignant (sorted order kept)
    scores = evaluate("classification", names[t], y_pred=names[p], y_score=proba[:, 1])
    assert abs(scores["recall"] - skm.recall_score(t, p)) <= TOL
    assert abs(scores["roc_auc"] - skm.roc_auc_score(t, proba[:, 1])) <= TOL


def test_regression_matches_sklearn(regression):
    t, p = regression["y_true"], regression["y_pred"]
    scores = evaluate("regression", t, y_pred=p)
    assert abs(scores["rmse"] - math.sqrt(skm.mean_squared_error(t, p))) <= TOL
    assert abs(scores["mae"] - skm.mean_absolute_error(t, p)) <= TOL
    assert abs(scores["r2"] - skm.r2_score(t, p)) <= TOL
    assert set(scores) == {"rmse", "mae", "r2"}
    assert evaluate("forecasting", t, y_pred=p) == scores


def test_clustering_matches_sklearn(clustering):
    X, labels = clustering["X"], clustering["labels"]
    scores = evaluate("clustering", None, y_pred=labels, X=X)
    assert abs(scores["silhouette"] - skm.silhouette_score(X, labels)) <= TOL
    assert set(scores) == {"silhouette"}


def test_large_clustering_uses_a_seeded_sample(monkeypatch, clustering):
    X, labels = clustering["X"], clustering["labels"]
    monkeypatch.setattr(evaluators, "SILHOUETTE_SAMPLE_SIZE", 100)
    scores = evaluate("clustering", None, y_pred=labels, X=X)
    assert abs(scores["silhouette"] - skm.silhouette_score(X, labels, sample_size=100, random_state=0)) <= TOL


# --------------------------------------------------------------------------- edge cases


def test_single_class_roc_auc_is_a_typed_error_or_nan():
    y_true, y_score = [1, 1, 1, 1], [0.2, 0.4, 0.6, 0.9]
    with pytest.raises(UndefinedMetricError) as err:
        evaluators.roc_auc(y_true, y_score)
    assert err.value.field == "roc_auc" and isinstance(err.value, MetricError)
    with pytest.raises(UndefinedMetricError):
        evaluators.pr_auc(y_true, y_score)
    scores = evaluate("classification", y_true, y_pred=[1, 1, 0, 1], y_score=y_score)
    assert math.isnan(scores["roc_auc"]) and math.isnan(scores["pr_auc"])
    assert scores["accuracy"] == 0.75
    assert abs(scores["log_loss"] - skm.log_loss(y_true, y_score, labels=[0, 1])) <= TOL


def test_multiclass_auc_with_a_missing_class_is_undefined(multiclass):
    t, proba = multiclass["y_true"], multiclass["proba"]
    keep = t != 2
    with pytest.raises(UndefinedMetricError):
        evaluators.roc_auc(t[keep], proba[keep], labels=[0, 1, 2])


def test_other_undefined_metrics():
    with pytest.raises(UndefinedMetricError):
        evaluators.silhouette([[0.0], [1.0], [2.0]], [0, 0, 0])
    with pytest.raises(UndefinedMetricError):
        evaluators.r2([1.0], [2.0])
    with pytest.raises(UndefinedMetricError):
        evaluators.log_loss([1, 1], [0.9, 0.8])  # only one class known
    assert evaluators.log_loss([1, 1], [0.9, 0.8], labels=[0, 1]) == pytest.approx(
        skm.log_loss([1, 1], [0.9, 0.8], labels=[0, 1]), abs=TOL
    )
    assert math.isnan(evaluate("regression", [1.0], y_pred=[2.0])["r2"])


def test_zero_division_is_zero():
    assert evaluators.precision([0, 1, 0], [0, 0, 0]) == 0.0
    assert evaluators.f1([0, 1, 0], [0, 0, 0]) == 0.0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: evaluate("ranking", [1], y_pred=[1]), "task"),
        (lambda: evaluate("classification", [0, 1]), "y_pred"),
        (lambda: evaluate("classification", [0, 1, 1], y_pred=[0, 1]), "y_pred"),
        (lambda: evaluate("classification", [0, 1], y_score=[0.5]), "y_score"),
        (lambda: evaluate("classification", [0, 1, 2], y_score=[0.1, 0.5, 0.9]), "y_score"),
        (lambda: evaluate("classification", [0, 1], y_score=[[0.2, 0.3, 0.5]] * 2), "y_score"),
        (lambda: evaluate("classification", [], y_pred=[]), "y_true"),
        (lambda: evaluate("classification", [0, 1], y_pred=[0, 2], labels=[0, 1]), "labels"),
        (lambda: evaluate("regression", [1.0, np.nan], y_pred=[1.0, 2.0]), "y_true"),
        (lambda: evaluate("regression", [1.0, 2.0], y_pred=["a", "b"]), "y_pred"),
        (lambda: evaluate("clustering", None, y_pred=[0, 1]), "X"),
        (lambda: evaluate("clustering", None, X=[[0.0]], y_score=[0.1]), "y_pred"),
        (lambda: evaluators.roc_auc([0, 1], [0.1, np.nan]), "y_score"),
        (lambda: evaluators.log_loss([0, 1], [0.5, 1.2]), "y_score"),
        (lambda: get_metric("auc"), "metric"),
    ],
)
def test_input_errors(call, field):
    with pytest.raises(MetricError) as err:
        call()
    assert err.value.field == field
    assert not isinstance(err.value, UndefinedMetricError)


def test_metric_error_pickles():
    err = pickle.loads(pickle.dumps(UndefinedMetricError("roc_auc", "one class")))
    assert type(err) is UndefinedMetricError and (err.field, err.reason) == ("roc_auc", "one class")


# --------------------------------------------------------------------------- registry and better


def test_registry_lists_metrics_by_task():
    assert [m.name for m in list_metrics("classification")] == [
        "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "confusion_matrix",
    ]
    assert [m.name for m in list_metrics("regression")] == ["rmse", "mae", "r2"]
    assert [m.name for m in list_metrics("clustering")] == ["silhouette"]


def test_register_custom_metric(regression):
    t, p = regression["y_true"], regression["y_pred"]
    register_metric("median_ae", skm.median_absolute_error, tasks=["regression"], greater_is_better=False)
    try:
        scores = evaluate("regression", t, y_pred=p)
        assert abs(scores["median_ae"] - skm.median_absolute_error(t, p)) <= TOL
        assert better("median_ae", 1.0, 2.0)
        with pytest.raises(MetricError):
            register_metric("median_ae", skm.median_absolute_error, tasks=["regression"], greater_is_better=False)
    finally:
        unregister_metric("median_ae")
    with pytest.raises(MetricError):
        register_metric("x", skm.median_absolute_error, tasks=["ranking"], greater_is_better=False)
    with pytest.raises(MetricError):
        register_metric("x", skm.median_absolute_error, tasks=["regression"], greater_is_better=False, needs="z")


@pytest.mark.parametrize("name", ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "r2", "silhouette"])
def test_better_higher_is_better(name):
    assert better(name, 0.8, 0.7)
    assert not better(name, 0.7, 0.8)
    assert not better(name, 0.8, 0.8)
    assert not better(name, 0.8, 0.75, margin=0.05)
    assert better(name, 0.81, 0.75, margin=0.05)


@pytest.mark.parametrize("name", ["log_loss", "rmse", "mae"])
def test_better_lower_is_better(name):
    assert better(name, 0.7, 0.8)
    assert not better(name, 0.8, 0.7)
    assert not better(name, 0.8, 0.8)
    assert not better(name, 0.75, 0.8, margin=0.05)
    assert better(name, 0.74, 0.8, margin=0.05)


def test_better_with_nan_and_bad_arguments():
    assert not better("accuracy", math.nan, 0.5)
    assert better("accuracy", 0.5, math.nan)
    assert not better("rmse", math.nan, math.nan)
    with pytest.raises(MetricError) as err:
        better("accuracy", 0.9, 0.8, margin=-0.1)
    assert err.value.field == "margin"
    with pytest.raises(MetricError):
        better("confusion_matrix", 0.9, 0.8)
    with pytest.raises(MetricError):
        better("nope", 0.9, 0.8)


@given(
    st.sampled_from([m.name for m in list_metrics() if m.greater_is_better is not None]),
    st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0, 1e3),
)
def test_better_is_asymmetric(name, a, b, margin):
    assert not (better(name, a, b, margin) and better(name, b, a, margin))
    if a == b:
        assert not better(name, a, b, margin)


# --------------------------------------------------------------------------- baselines


def test_classification_baseline_is_the_class_prior(binary):
    y_train, t = binary["y_train"], binary["y_true"]
    scores = baseline_scores("classification", y_train, t)
    prior = np.bincount(y_train, minlength=2) / len(y_train)
    majority = int(np.argmax(prior))
    assert abs(scores["accuracy"] - np.mean(t == majority)) <= TOL
    assert scores["roc_auc"] == 0.5
    assert abs(scores["log_loss"] - skm.log_loss(t, np.tile(prior, (len(t), 1)))) <= TOL
    assert abs(scores["pr_auc"] - np.mean(t == 1)) <= TOL
    assert set(scores) == set(evaluate("classification", t, y_pred=binary["y_pred"], y_score=binary["proba"]))


def test_candidate_beats_the_baseline(binary, regression):
    base = baseline_scores("classification", binary["y_train"], binary["y_true"])
    cand = evaluate("classification", binary["y_true"], y_pred=binary["y_pred"], y_score=binary["proba"])
    for name in ("accuracy", "f1", "roc_auc", "pr_auc", "log_loss"):
        assert better(name, cand[name], base[name], margin=0.01), name
    base = baseline_scores("regression", regression["y_train"], regression["y_true"])
    cand = evaluate("regression", regression["y_true"], y_pred=regression["y_pred"])
    for name in ("rmse", "mae", "r2"):
        assert better(name, cand[name], base[name]), name


def test_regression_and_forecasting_baselines(regression):
    y_train, t = regression["y_train"], regression["y_true"]
    mean = np.full(len(t), y_train.mean())
    scores = baseline_scores("regression", y_train, t)
    assert abs(scores["rmse"] - skm.root_mean_squared_error(t, mean)) <= TOL
    assert abs(scores["r2"] - skm.r2_score(t, mean)) <= TOL
    last = np.full(len(t), y_train[-1])
    assert abs(baseline_scores("forecasting", y_train, t)["mae"] - skm.mean_absolute_error(t, last)) <= TOL
    with pytest.raises(MetricError) as err:
        baseline_scores("clustering", y_train, t)
    assert err.value.field == "task"


def test_multiclass_baseline_with_unseen_test_class():
    scores = baseline_scores("classification", ["a", "a", "b"], ["a", "c", "b"], labels=["a", "b", "c"])
    assert scores["accuracy"] == pytest.approx(1 / 3)
    assert scores["roc_auc"] == 0.5
    assert scores["labels"] == ["a", "b", "c"]


# --------------------------------------------------------------------------- curves


def test_roc_curve_matches_sklearn(binary):
    t, s = binary["y_true"], binary["proba"][:, 1]
    curve = roc_curve(t, s)
    fpr, tpr, thresholds = skm.roc_curve(t, s)
    np.testing.assert_array_equal(curve.x, fpr)
    np.testing.assert_array_equal(curve.y, tpr)
    np.testing.assert_array_equal(curve.thresholds, thresholds)
    assert abs(curve.auc - skm.roc_auc_score(t, s)) <= TOL
    assert abs(curve.auc - skm.auc(fpr, tpr)) <= TOL
    assert (curve.kind, curve.pos_label, curve.n_positive + curve.n_negative) == ("roc", 1, len(t))
    assert isinstance(curve.x, tuple) and all(type(v) is float for v in curve.x)
    full = roc_curve(t, s, drop_intermediate=False)
    assert len(full.x) >= len(curve.x)


def test_pr_curve_matches_sklearn(binary):
    t, s = binary["y_true"], binary["proba"][:, 1]
    curve = pr_curve(t, s)
    precision, recall, thresholds = skm.precision_recall_curve(t, s)
    np.testing.assert_array_equal(curve.x, recall)
    np.testing.assert_array_equal(curve.y, precision)
    np.testing.assert_array_equal(curve.thresholds[:-1], thresholds)
    assert curve.thresholds[-1] == math.inf
    assert len(curve.x) == len(curve.y) == len(curve.thresholds)
    assert abs(curve.auc - skm.average_precision_score(t, s)) <= TOL
    assert curve.prevalence == pytest.approx(np.mean(t == 1))


def test_curves_accept_probability_columns_and_pos_label(binary):
    t, proba = binary["y_true"], binary["proba"]
    assert roc_curve(t, proba) == roc_curve(t, proba[:, 1])
    flipped = roc_curve(t, proba, pos_label=0)
    assert abs(flipped.auc - skm.roc_auc_score(t == 0, proba[:, 0])) <= TOL


def test_curve_errors():
    with pytest.raises(UndefinedMetricError):
        roc_curve([1, 1, 1], [0.1, 0.5, 0.9])
    with pytest.raises(UndefinedMetricError):
        pr_curve([0, 0], [0.1, 0.5])
    with pytest.raises(MetricError) as err:
        roc_curve([0, 1, 2], [0.1, 0.5, 0.9])
    assert err.value.field == "y_true"
    with pytest.raises(MetricError) as err:
        roc_curve([0, 1], [0.1])
    assert err.value.field == "y_score"
    with pytest.raises(MetricError) as err:
        roc_curve([0, 1], [0.1, 0.3], pos_label=5)
    assert err.value.field == "pos_label"


def test_curve_is_frozen_and_serialisable(binary):
    curve = pr_curve(binary["y_true"], binary["proba"][:, 1])
    with pytest.raises(AttributeError):
        curve.auc = 1.0  # type: ignore[misc]
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(curve), type=Curve) == curve
    as_json = msgspec.json.decode(msgspec.json.encode(curve))
    assert as_json["kind"] == "pr" and as_json["thresholds"][-1] is None  # inf has no JSON form


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("kind", ["roc", "pr"])
def test_render_png(tmp_path, binary, kind):
    t, s = binary["y_true"], binary["proba"][:, 1]
    curve = roc_curve(t, s) if kind == "roc" else pr_curve(t, s)
    path = render_png(curve, tmp_path / f"{kind}.png", dpi=80)
    assert path == tmp_path / f"{kind}.png"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000  # axes, labels, legend and the curve: not an empty picture
    assert _png_size(data) == (400, 400)  # 5 x 5 inches at 80 dpi
    assert [p.name for p in tmp_path.iterdir()] == [f"{kind}.png"]  # no temporary left behind


def test_render_png_refuses_unknown_kind(tmp_path):
    bogus = Curve(kind="lift", x=(0.0, 1.0), y=(0.0, 1.0), thresholds=(1.0, 0.0), auc=0.5)
    with pytest.raises(MetricError):
        render_png(bogus, tmp_path / "x.png")
    assert not list(tmp_path.iterdir())
