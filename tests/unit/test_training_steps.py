"""The pure training steps: fitting, search scoring, evaluation, choosing the best, the
verdict, data-parallel combination and coefficient blocks."""

from __future__ import annotations

import doctest
import math
import pickle

import numpy as np
import pytest

import ml.blocks
import ml.ensemble
import ml.training
from ml.blocks import LinearBlock, block_columns, train_blocks
from ml.ensemble import PartitionEnsemble
from ml.training import best_of, deployable, evaluate_model, fit_model, partition_rows, reference_score, score_trial


@pytest.mark.parametrize("module", [ml.training, ml.ensemble, ml.blocks], ids=lambda m: m.__name__)
def test_module_doctests_pass(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return X[:400], y[:400], X[400:], y[400:]


def test_evaluation_matches_scikit_learn_on_the_same_fit(cancer):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score

    X_train, y_train, X_test, y_test = cancer
    model = fit_model("sklearn.random_forest", {"n_estimators": 20, "random_state": 3}, X_train, y_train,
                      [f"f{i}" for i in range(30)])
    result = evaluate_model(model, "classification", X_test, y_test)
    direct = RandomForestClassifier(n_estimators=20, random_state=3, n_jobs=1).fit(X_train, y_train)
    assert result.metrics["accuracy"] == accuracy_score(y_test, direct.predict(X_test))
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(y_test, direct.predict_proba(X_test)[:, 1]),
                                                      abs=1e-12)
    assert result.curves["roc"].auc == pytest.approx(result.metrics["roc_auc"], abs=1e-12)


def test_a_search_trial_is_scored_on_the_validation_rows(cancer):
    X_train, y_train, X_test, y_test = cancer
    shallow = score_trial("sklearn.decision_tree", {"max_depth": 1}, X_train, y_train, X_test, y_test,
                          "classification", "accuracy", [f"f{i}" for i in range(30)])
    deep = score_trial("sklearn.decision_tree", {"max_depth": 4}, X_train, y_train, X_test, y_test,
                       "classification", "accuracy", [f"f{i}" for i in range(30)])
    assert 0.5 < shallow < 1.0 and 0.5 < deep <= 1.0


def test_best_of_respects_the_metric_direction_and_skips_undefined_scores():
    assert best_of({"a": 0.7, "b": 0.71}, "roc_auc") == "b"
    assert best_of({"a": 0.7, "b": 0.71}, "log_loss") == "a"
    assert best_of({"a": math.nan, "b": None}, "roc_auc") is None
    assert best_of({"a": 0.9, "b": 0.9}, "accuracy") == "a"      # a tie keeps the first


def test_verdict_rules():
    assert deployable("roc_auc", 0.9, 0.5, 0.0)
    assert not deployable("roc_auc", 0.9, 0.9, 0.0)               # a tie is not enough
    assert not deployable("roc_auc", 0.9, 0.85, 0.1)              # nor a win smaller than the margin
    assert deployable("rmse", 1.0, 1.5, 0.2)
    assert not deployable("roc_auc", None, 0.5, 0.0)
    assert deployable("roc_auc", 0.6, None, 0.0)                  # nothing to beat
    assert reference_score("classification", "roc_auc", [0, 1, 1], [0, 1, 1, 0]) == 0.5
    assert reference_score("regression", "mae", [1.0, 3.0], [2.0, 2.0]) == 0.0


def test_partitions_interleave_and_cover_every_row_once():
    parts = partition_rows(10, 3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert [p.tolist() for p in parts] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_ensemble_averages_its_members_and_pickles(cancer):
    from ml.algorithms import build

    X_train, y_train, X_test, _ = cancer
    members = [build("sklearn.decision_tree", {"max_depth": d}).fit(X_train, y_train) for d in (1, 3)]
    combined = PartitionEnsemble(members)
    expected = (members[0].predict_proba(X_test) + members[1].predict_proba(X_test)) / 2
    assert np.allclose(combined.predict_proba(X_test), expected)
    back = pickle.loads(pickle.dumps(combined))
    assert np.array_equal(back.predict(X_test), combined.predict(X_test))
    assert combined.summary()["partitions"] == 2
    with pytest.raises(ValueError, match="members"):
        PartitionEnsemble([])


def test_blocks_split_columns_evenly_and_never_empty():
    assert [b.tolist() for b in block_columns(3, 8)] == [[0], [1], [2]]
    assert sum(len(b) for b in block_columns(31, 4)) == 31


def test_coefficient_blocks_reach_the_least_squares_solution():
    rng = np.random.default_rng(1)
    X = rng.normal(loc=3.0, scale=2.0, size=(500, 5))
    y = X @ np.array([0.5, -1.0, 2.0, 0.0, 1.5]) - 2.0
    model = train_blocks("regression", X, y, n_blocks=3, n_iter=2000, l2=0.0)
    exact, *_ = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), y, rcond=None)
    assert np.allclose(model.coef, exact[:-1], atol=1e-6) and model.intercept == pytest.approx(exact[-1], abs=1e-6)


def test_coefficient_blocks_classify_like_logistic_regression(cancer):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X_train, y_train, X_test, y_test = cancer
    model = train_blocks("classification", X_train, y_train, n_blocks=4, n_iter=500)
    scaler = StandardScaler().fit(X_train)
    direct = LogisticRegression(C=1e6, max_iter=5000).fit(scaler.transform(X_train), y_train)
    agree = np.mean(model.predict(X_test) == direct.predict(scaler.transform(X_test)))
    assert agree > 0.95 and model.predict_proba(X_test).shape == (len(X_test), 2)
    with pytest.raises(ValueError, match="binary"):
        train_blocks("classification", X_train, np.arange(len(X_train)) % 3, n_blocks=2)


def test_a_block_keeps_its_own_columns():
    X = np.arange(12, dtype=float).reshape(4, 3)
    block = LinearBlock(X, [0, 2])
    assert block.X.shape == (4, 2) and block.margin().tolist() == [0.0] * 4
