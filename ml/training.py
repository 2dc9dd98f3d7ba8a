"""Pure training steps: fit a candidate, score a search trial, evaluate on the test side,
choose the best, and decide whether it is deployable. No I/O, no Ray: the training
actors call these, and tests call them to check the actors' results.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
>>> model = fit_model("sklearn.logistic_regression", {}, X[:150], y[:150], ["a", "b", "c"])
>>> result = evaluate_model(model, "classification", X[150:], y[150:])
>>> result.metrics["accuracy"] > 0.9, sorted(result.curves)
(True, ['pr', 'roc'])
>>> deployable("roc_auc", 0.97, 0.5, margin=0.01)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["Evaluation", "best_of", "deployable", "evaluate_model", "fit_model", "partition_rows",
           "predictions", "reference_score", "score_trial", "search_split"]


def fit_model(algorithm: str, params: dict, X: np.ndarray, y: np.ndarray | None, feature_names: Sequence[str]):
    """A fitted :class:`ml.algorithms.Model` (scikit-learn estimators as they are, the seed in ``params``)."""
    from ml.algorithms import build

    return build(algorithm, params).fit(X, y, feature_names=list(feature_names))


def search_split(n_rows: int, labels: np.ndarray | None, task: str, ratio: float, seed: int):
    """(fit rows, validation rows) of the training side for a search: stratified for
    classification, seeded random otherwise."""
    from ml.segregation import split

    strategy = "stratified" if task == "classification" and labels is not None else "random"
    result = split(n_rows, strategy=strategy, ratio=ratio, seed=seed,
                   labels=labels if strategy == "stratified" else None)
    return result.train_idx, result.test_idx


def predictions(model, task: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, list | None]:
    """(y_pred, y_score, class order of y_score's columns) of ``model`` on ``X``."""
    y_pred = np.asarray(model.predict(X))
    if task != "classification":
        return y_pred, None, None
    try:
        proba = np.asarray(model.predict_proba(X), dtype=float)
    except Exception:  # an estimator without probabilities (e.g. hinge loss): label metrics only
        return y_pred, None, None
    return y_pred, proba, list(np.asarray(model.classes_).tolist())


def score_trial(algorithm: str, params: dict, X_fit, y_fit, X_val, y_val, task: str, metric: str,
                feature_names: Sequence[str]) -> float:
    """The validation score of one parameter set of a search (``nan`` when it cannot be computed)."""
    from ml.evaluators import evaluate

    model = fit_model(algorithm, params, X_fit, y_fit, feature_names)
    y_pred, y_score, labels = predictions(model, task, X_val)
    scores = evaluate(task, y_val, y_pred=y_pred, y_score=y_score, X=X_val, labels=labels)
    value = scores.get(metric, math.nan)
    return float(value) if isinstance(value, (int, float)) else math.nan


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    curves: dict[str, Any] = field(default_factory=dict)    # "roc"/"pr" -> ml.curves.Curve (binary only)


def evaluate_model(model, task: str, X_test: np.ndarray, y_test: np.ndarray | None) -> Evaluation:
    """Every metric of the task on the test side, and the ROC and PR curves of a binary classifier."""
    from ml.curves import pr_curve, roc_curve
    from ml.evaluators import evaluate

    y_pred, y_score, labels = predictions(model, task, X_test)
    metrics = evaluate(task, y_test, y_pred=y_pred, y_score=y_score, X=X_test, labels=labels)
    curves = {}
    if y_score is not None and labels is not None and len(labels) == 2 and len(set(np.asarray(y_test).tolist())) == 2:
        positive = labels[1]
        curves = {"roc": roc_curve(y_test, y_score[:, 1], pos_label=positive),
                  "pr": pr_curve(y_test, y_score[:, 1], pos_label=positive)}
    return Evaluation(metrics, curves)


def best_of(scores: dict[str, float], metric: str) -> str | None:
    """The name with the best score on ``metric`` (ties: the first in order); None if none is a number.

    >>> best_of({"a": 0.8, "b": 0.9, "c": float("nan")}, "accuracy"), best_of({"a": 2.0, "b": 1.0}, "rmse")
    ('b', 'b')
    """
    from ml.evaluators import better

    best = None
    for name, score in scores.items():
        if score is None or math.isnan(score):
            continue
        if best is None or better(metric, score, scores[best]):
            best = name
    return best


def reference_score(task: str, metric: str, y_train, y_test) -> float:
    """The score of the baseline a first model must beat: the class prior, the mean, or (for
    clustering, which has none) a silhouette of 0."""
    from ml.evaluators import baseline_scores

    if task == "clustering":
        return 0.0
    value = baseline_scores(task, y_train, y_test).get(metric, math.nan)
    return float(value) if isinstance(value, (int, float)) else math.nan


def deployable(metric: str, score: float | None, reference: float | None, margin: float) -> bool:
    """Whether ``score`` beats ``reference`` by more than ``margin`` (a tie is not enough).

    >>> deployable("accuracy", 0.91, 0.90, margin=0.02), deployable("rmse", 1.0, 2.0, margin=0.5)
    (False, True)
    """
    from ml.evaluators import better

    if score is None:
        return False
    return better(metric, score, math.nan if reference is None else reference, margin)


def partition_rows(n_rows: int, n_partitions: int) -> list[np.ndarray]:
    """The rows of each data-parallel partition: every ``n_partitions``-th row, in order,
    so each partition sees the whole range of the data.

    >>> [p.tolist() for p in partition_rows(5, 2)]
    [[0, 2, 4], [1, 3]]
    """
    return [np.arange(p, n_rows, n_partitions) for p in range(n_partitions)]
