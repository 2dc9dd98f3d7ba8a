"""Evaluators: classification, regression and clustering metrics, with baselines.

Every metric is computed by scikit-learn, which is the reference; this module
adds one registry by name, the direction of each score (:func:`better`), the
handling of labels and score shapes, and trivial baselines that a candidate
must beat (:func:`baseline_scores`).

Conventions
-----------
- Classes are ``labels`` when given, else the sorted union of the labels in
  ``y_true`` and ``y_pred``. Columns of a 2-D ``y_score`` follow that order.
- Binary problems: the positive class is the last class (``1``, ``True``, or
  the larger label); a 1-D ``y_score`` is the positive-class score.
  Precision, recall and F1 are those of the positive class.
- Multiclass problems: precision, recall, F1, ROC-AUC (one-vs-rest) and
  PR-AUC are macro averages; ROC-AUC, PR-AUC and log loss need a 2-D
  ``y_score``.
- A metric that is undefined for the data (ROC-AUC with one class in
  ``y_true``, silhouette with one cluster, R² of one sample) raises
  :class:`UndefinedMetricError` when called directly; :func:`evaluate` records
  it as ``nan`` and goes on. Wrong input (length mismatch, bad shapes) raises
  :class:`MetricError` everywhere.

Examples
--------
>>> from ml.evaluators import evaluate, better
>>> scores = evaluate("classification", [0, 1, 1, 0], y_pred=[0, 1, 0, 0], y_score=[0.1, 0.9, 0.4, 0.3])
>>> scores["accuracy"], scores["recall"], scores["roc_auc"]
(0.75, 0.5, 1.0)
>>> better("roc_auc", 0.91, 0.90, margin=0.005), better("rmse", 3.0, 2.0)
(True, False)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SILHOUETTE_SAMPLE_SIZE",
    "TASKS",
    "Metric",
    "MetricError",
    "UndefinedMetricError",
    "accuracy",
    "baseline_scores",
    "better",
    "confusion_matrix",
    "evaluate",
    "f1",
    "get_metric",
    "list_metrics",
    "log_loss",
    "mae",
    "pr_auc",
    "precision",
    "r2",
    "recall",
    "register_metric",
    "rmse",
    "roc_auc",
    "silhouette",
    "unregister_metric",
]

TASKS: tuple[str, ...] = ("classification", "regression", "clustering", "forecasting")
SILHOUETTE_SAMPLE_SIZE = 10_000
"""Above this many rows, :func:`evaluate` computes the silhouette on a seeded sample."""


class MetricError(ValueError):
    """Bad input to a metric or an evaluator.

    Parameters
    ----------
    field : str
        The metric or argument at fault: ``"y_pred"``, ``"labels"``, ``"roc_auc"`` ...
    reason : str

    Examples
    --------
    >>> err = MetricError("y_pred", "has 3 values but y_true has 4")
    >>> err.field, str(err)
    ('y_pred', 'y_pred: has 3 values but y_true has 4')
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.field, self.reason))


class UndefinedMetricError(MetricError):
    """The metric has no value for this data (e.g. ROC-AUC with one class).

    :func:`evaluate` turns it into ``nan``.

    Examples
    --------
    >>> roc_auc([1, 1, 1], [0.2, 0.5, 0.9])
    Traceback (most recent call last):
    ...
    ml.evaluators.UndefinedMetricError: roc_auc: y_true has only one class (1); the metric is undefined
    """


# --------------------------------------------------------------------------- input helpers


def _vector(values: Any, field: str, *, numeric: bool = False) -> np.ndarray:
    if values is None:
        raise MetricError(field, "is required")
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise MetricError(field, f"must be 1-D; got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise MetricError(field, "is empty")
    if numeric:
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError):
            raise MetricError(field, f"must be numeric; got dtype {arr.dtype}") from None
        if not np.isfinite(arr).all():
            raise MetricError(field, f"contains NaN or infinite values (first at index {int(np.argmin(np.isfinite(arr)))})")
    return arr


def _same_length(y_true: np.ndarray, other: np.ndarray, field: str) -> None:
    if other.shape[0] != y_true.shape[0]:
        raise MetricError(field, f"has {other.shape[0]} values but y_true has {y_true.shape[0]}")


def _sorted_unique(*arrays: np.ndarray) -> list[Any]:
    values: list[Any] = []
    for arr in arrays:
        for v in np.unique(arr).tolist():
            if v not in values:
                values.append(v)
    try:
        return sorted(values)
    except TypeError:
        return values


def _classes(y_true: np.ndarray, y_pred: np.ndarray | None, labels: Sequence[Any] | None) -> list[Any]:
    if labels is not None:
        classes = np.asarray(labels).tolist()
        if len(classes) != len(set(classes)):
            raise MetricError("labels", "must not repeat a label")
        if not classes:
            raise MetricError("labels", "is empty")
        seen = _sorted_unique(y_true) if y_pred is None else _sorted_unique(y_true, y_pred)
        unknown = [v for v in seen if v not in classes]
        if unknown:
            raise MetricError("labels", f"does not list {unknown[:3]!r}, found in the data")
        return classes
    return _sorted_unique(y_true) if y_pred is None else _sorted_unique(y_true, y_pred)


def _scores(y_true: np.ndarray, y_score: Any, classes: list[Any], metric: str) -> tuple[np.ndarray, list[Any]]:
    """Return y_score as (n, k) probabilities/scores in ``classes`` order, and the classes.

    A 1-D score is the positive-class score of a binary problem.
    """
    scores = np.asarray(y_score, dtype=float) if y_score is not None else None
    if scores is None:
        raise MetricError("y_score", f"is required by {metric}")
    if scores.ndim not in (1, 2):
        raise MetricError("y_score", f"must be 1-D or 2-D; got shape {scores.shape}")
    _same_length(y_true, scores, "y_score")
    if not np.isfinite(scores).all():
        raise MetricError("y_score", "contains NaN or infinite values")
    if scores.ndim == 1:
        if len(classes) > 2:
            raise MetricError("y_score", f"{metric} of {len(classes)} classes needs 2-D scores, one column per class")
        return scores, classes
    if scores.shape[1] != len(classes):
        raise MetricError(
            "y_score", f"has {scores.shape[1]} columns but there are {len(classes)} classes {classes!r}; pass labels="
        )
    return scores, classes


def _positive_column(scores: np.ndarray) -> np.ndarray:
    return scores if scores.ndim == 1 else scores[:, -1]


def _require_two_classes(y_true: np.ndarray, metric: str) -> None:
    present = np.unique(y_true).tolist()
    if len(present) < 2:
        raise UndefinedMetricError(metric, f"y_true has only one class ({present[0]!r}); the metric is undefined")


def _sklearn(metric: str, call: Callable[[], Any]) -> Any:
    import warnings

    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        try:
            return call()
        except UndefinedMetricWarning as warning:
            raise UndefinedMetricError(metric, str(warning)) from None
        except ValueError as exc:
            raise MetricError(metric, str(exc)) from None


def _label_inputs(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _vector(y_true, "y_true")
    p = _vector(y_pred, "y_pred")
    _same_length(t, p, "y_pred")
    return t, p


# --------------------------------------------------------------------------- classification


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of correct predictions (``sklearn.metrics.accuracy_score``).

    Examples
    --------
    >>> accuracy([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    """
    from sklearn.metrics import accuracy_score

    t, p = _label_inputs(y_true, y_pred)
    return float(accuracy_score(t, p))


def _prf(kind: str, y_true: Any, y_pred: Any, labels: Sequence[Any] | None) -> float:
    from sklearn import metrics

    t, p = _label_inputs(y_true, y_pred)
    classes = _classes(t, p, labels)
    fn = {"precision": metrics.precision_score, "recall": metrics.recall_score, "f1": metrics.f1_score}[kind]
    if len(classes) <= 2:
        kwargs = {"average": "binary", "pos_label": classes[-1]}
    else:
        kwargs = {"average": "macro"}
    return float(_sklearn(kind, lambda: fn(t, p, labels=classes, zero_division=0.0, **kwargs)))


def precision(y_true: Any, y_pred: Any, *, labels: Sequence[Any] | None = None) -> float:
    """Precision of the positive class (binary) or macro precision (multiclass).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
    labels : sequence, optional
        Classes, last one positive; default sorted labels found.

    Returns
    -------
    float
        ``0.0`` when nothing was predicted positive (scikit-learn's
        ``zero_division=0``).

    Examples
    --------
    >>> precision([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    >>> precision(["a", "b", "c", "a"], ["a", "b", "c", "b"])
    0.8333333333333334
    """
    return _prf("precision", y_true, y_pred, labels)


def recall(y_true: Any, y_pred: Any, *, labels: Sequence[Any] | None = None) -> float:
    """Recall of the positive class (binary) or macro recall (multiclass).

    Examples
    --------
    >>> recall([0, 1, 1, 0], [0, 1, 0, 0])
    0.5
    """
    return _prf("recall", y_true, y_pred, labels)


def f1(y_true: Any, y_pred: Any, *, labels: Sequence[Any] | None = None) -> float:
    """F1 of the positive class (binary) or macro F1 (multiclass).

    Examples
    --------
    >>> round(f1([0, 1, 1, 0], [0, 1, 0, 0]), 6)
    0.666667
    """
    return _prf("f1", y_true, y_pred, labels)


def confusion_matrix(y_true: Any, y_pred: Any, *, labels: Sequence[Any] | None = None) -> list[list[int]]:
    """Confusion matrix: row = true class, column = predicted class, in class order.

    Examples
    --------
    >>> confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0])
    [[2, 0], [1, 1]]
    """
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    t, p = _label_inputs(y_true, y_pred)
    classes = _classes(t, p, labels)
    return [[int(v) for v in row] for row in sk_confusion_matrix(t, p, labels=classes)]


def roc_auc(y_true: Any, y_score: Any, *, labels: Sequence[Any] | None = None) -> float:
    """Area under the ROC curve; one-vs-rest macro average for multiclass.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_score : array-like of shape (n_samples,) or (n_samples, n_classes)
        Positive-class score (binary) or one column per class.
    labels : sequence, optional
        Classes in the column order of ``y_score``.

    Raises
    ------
    UndefinedMetricError
        ``y_true`` holds a single class (or, multiclass, misses one).

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    from sklearn.metrics import roc_auc_score

    t = _vector(y_true, "y_true")
    classes = _classes(t, None, labels)
    scores, classes = _scores(t, y_score, classes, "roc_auc")
    _require_two_classes(t, "roc_auc")
    if len(classes) == 2:
        return float(_sklearn("roc_auc", lambda: roc_auc_score(t == classes[-1], _positive_column(scores))))
    _require_every_class(t, classes, "roc_auc")
    sorted_classes, sorted_scores = _sorted_columns(classes, scores)
    return float(
        _sklearn(
            "roc_auc",
            lambda: roc_auc_score(t, sorted_scores, multi_class="ovr", average="macro", labels=sorted_classes),
        )
    )


def pr_auc(y_true: Any, y_score: Any, *, labels: Sequence[Any] | None = None) -> float:
    """Area under the precision-recall curve as average precision.

    ``sklearn.metrics.average_precision_score`` (step-wise, no interpolation);
    macro average over one-vs-rest classes for multiclass.

    Raises
    ------
    UndefinedMetricError
        ``y_true`` holds a single class (or, multiclass, misses one).

    Examples
    --------
    >>> round(pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 6)
    0.833333
    """
    from sklearn.metrics import average_precision_score
    from sklearn.preprocessing import label_binarize

    t = _vector(y_true, "y_true")
    classes = _classes(t, None, labels)
    scores, classes = _scores(t, y_score, classes, "pr_auc")
    _require_two_classes(t, "pr_auc")
    if len(classes) == 2:
        return float(_sklearn("pr_auc", lambda: average_precision_score(t == classes[-1], _positive_column(scores))))
    _require_every_class(t, classes, "pr_auc")
    indicator = label_binarize(t, classes=classes)
    return float(_sklearn("pr_auc", lambda: average_precision_score(indicator, scores, average="macro")))


def log_loss(y_true: Any, y_score: Any, *, labels: Sequence[Any] | None = None) -> float:
    """Cross-entropy of predicted probabilities (``sklearn.metrics.log_loss``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_score : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities in [0, 1]: of the positive class (1-D), or one column
        per class.
    labels : sequence, optional
        Classes in the column order of ``y_score``; needed when ``y_true``
        does not show every class.

    Raises
    ------
    MetricError
        Scores outside [0, 1]. (Rows that do not sum to one only make
        scikit-learn warn, as it does.)
    UndefinedMetricError
        Fewer than two classes known.

    Examples
    --------
    >>> round(log_loss([0, 1], [0.2, 0.9]), 6)
    0.164252
    """
    from sklearn.metrics import log_loss as sk_log_loss

    t = _vector(y_true, "y_true")
    classes = _classes(t, None, labels)
    scores, classes = _scores(t, y_score, classes, "log_loss")
    if not _is_probability(scores):
        raise MetricError("y_score", "log_loss needs probabilities in [0, 1]")
    if len(classes) < 2:
        raise UndefinedMetricError("log_loss", f"only one class ({classes[0]!r}) is known; pass labels=")
    if scores.ndim == 1:
        scores = np.column_stack([1.0 - scores, scores])
    sorted_classes, sorted_scores = _sorted_columns(classes, scores)
    return float(_sklearn("log_loss", lambda: sk_log_loss(t, sorted_scores, labels=sorted_classes)))


def _is_probability(scores: np.ndarray) -> bool:
    return bool(np.all(scores >= 0.0) and np.all(scores <= 1.0))


def _looks_like_probability(y_score: Any) -> bool:
    try:
        scores = np.asarray(y_score, dtype=float)
    except (TypeError, ValueError):
        return True  # let the metric report the bad input
    return _is_probability(scores)


def _sorted_columns(classes: list[Any], scores: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """scikit-learn expects columns in sorted label order."""
    try:
        order = sorted(range(len(classes)), key=lambda i: classes[i])
    except TypeError:
        return classes, scores
    return [classes[i] for i in order], scores[:, order]


def _require_every_class(y_true: np.ndarray, classes: list[Any], metric: str) -> None:
    present = set(np.unique(y_true).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise UndefinedMetricError(metric, f"classes {missing[:3]!r} never occur in y_true; the macro average is undefined")


# --------------------------------------------------------------------------- regression


def _numeric_inputs(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _vector(y_true, "y_true", numeric=True)
    p = _vector(y_pred, "y_pred", numeric=True)
    _same_length(t, p, "y_pred")
    return t, p


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error (``sklearn.metrics.root_mean_squared_error``).

    Examples
    --------
    >>> rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    1.1547005383792515
    """
    from sklearn.metrics import root_mean_squared_error

    t, p = _numeric_inputs(y_true, y_pred)
    return float(root_mean_squared_error(t, p))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error (``sklearn.metrics.mean_absolute_error``).

    Examples
    --------
    >>> mae([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    0.6666666666666666
    """
    from sklearn.metrics import mean_absolute_error

    t, p = _numeric_inputs(y_true, y_pred)
    return float(mean_absolute_error(t, p))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination (``sklearn.metrics.r2_score``).

    A constant ``y_true`` gives 1.0 for a perfect prediction and 0.0
    otherwise, as in scikit-learn.

    Raises
    ------
    UndefinedMetricError
        Fewer than two samples.

    Examples
    --------
    >>> r2([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    1.0
    """
    from sklearn.metrics import r2_score

    t, p = _numeric_inputs(y_true, y_pred)
    if t.shape[0] < 2:
        raise UndefinedMetricError("r2", "needs at least two samples")
    return float(r2_score(t, p))


# --------------------------------------------------------------------------- clustering


def silhouette(X: Any, labels: Any, *, sample_size: int | None = None, random_state: int = 0) -> float:
    """Mean silhouette coefficient of a clustering (``sklearn.metrics.silhouette_score``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        Cluster of each row.
    sample_size : int, optional
        Compute on a seeded random sample of this many rows (the full metric
        is quadratic in ``n_samples``).
    random_state : int, default 0

    Raises
    ------
    UndefinedMetricError
        Fewer than 2 clusters, or as many clusters as rows.

    Examples
    --------
    >>> X = [[0.0], [0.1], [5.0], [5.1]]
    >>> round(silhouette(X, [0, 0, 1, 1]), 3)
    0.98
    """
    from sklearn.metrics import silhouette_score

    lab = _vector(labels, "labels")
    arr = np.asarray(X, dtype=float) if X is not None else None
    if arr is None or arr.ndim != 2:
        raise MetricError("X", "must be 2-D (n_samples, n_features)")
    _same_length(lab, arr, "X")
    if not np.isfinite(arr).all():
        raise MetricError("X", "contains NaN or infinite values")
    n_clusters = len(np.unique(lab))
    if not 2 <= n_clusters <= arr.shape[0] - 1:
        raise UndefinedMetricError(
            "silhouette", f"needs 2 to n_samples - 1 clusters; got {n_clusters} clusters for {arr.shape[0]} rows"
        )
    if sample_size is not None and sample_size >= arr.shape[0]:
        sample_size = None
    return float(_sklearn("silhouette", lambda: silhouette_score(arr, lab, sample_size=sample_size, random_state=random_state)))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    Parameters
    ----------
    name : str
    tasks : tuple of str
        Tasks it applies to.
    needs : {"y_pred", "y_score", "X"}
        What it is computed from besides ``y_true``: ``fn(y_true, y_pred)``,
        ``fn(y_true, y_score)``, or ``fn(X, y_pred)`` (clustering).
    greater_is_better : bool or None
        Direction; ``None`` for a report that is not a score (confusion matrix).
    fn : callable
    takes_labels : bool
        Whether ``fn`` takes ``labels=``.

    Examples
    --------
    >>> m = get_metric("log_loss")
    >>> m.greater_is_better, m.needs
    (False, 'y_score')
    """

    name: str
    tasks: tuple[str, ...]
    needs: str
    greater_is_better: bool | None
    fn: Callable[..., Any]
    takes_labels: bool = False

    def compute(
        self,
        y_true: Any,
        *,
        y_pred: Any = None,
        y_score: Any = None,
        X: Any = None,
        labels: Sequence[Any] | None = None,
    ) -> Any:
        """Compute the metric from whichever inputs it needs."""
        kwargs = {"labels": labels} if self.takes_labels else {}
        if self.needs == "X":
            return self.fn(X, y_pred, **kwargs)
        if self.needs == "y_score":
            return self.fn(y_true, y_score, **kwargs)
        return self.fn(y_true, y_pred, **kwargs)


_METRICS: dict[str, Metric] = {}
_LOCK = threading.Lock()
_NEEDS = ("y_pred", "y_score", "X")


def register_metric(
    name: str,
    fn: Callable[..., Any],
    *,
    tasks: Sequence[str],
    greater_is_better: bool | None,
    needs: str = "y_pred",
    takes_labels: bool = False,
    replace: bool = False,
) -> Metric:
    """Add a metric that :func:`evaluate` computes for its tasks.

    Examples
    --------
    >>> import numpy as np
    >>> _ = register_metric("max_error", lambda t, p: float(np.max(np.abs(np.subtract(t, p)))),
    ...                     tasks=["regression"], greater_is_better=False)
    >>> evaluate("regression", [1.0, 2.0], y_pred=[1.5, 2.0])["max_error"]
    0.5
    >>> unregister_metric("max_error")
    """
    if not isinstance(name, str) or not name:
        raise MetricError("name", f"must be a non-empty string; got {name!r}")
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise MetricError("tasks", f"must be among {', '.join(TASKS)}; got {list(tasks)!r}")
    if needs not in _NEEDS:
        raise MetricError("needs", f"must be one of {', '.join(_NEEDS)}; got {needs!r}")
    if not callable(fn):
        raise MetricError("fn", "must be callable")
    metric = Metric(name, tuple(tasks), needs, greater_is_better, fn, takes_labels)
    with _LOCK:
        if name in _METRICS and not replace:
            raise MetricError("name", f"{name!r} is already registered; pass replace=True")
        _METRICS[name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove a metric from the registry."""
    with _LOCK:
        if name not in _METRICS:
            raise MetricError("metric", f"unknown metric {name!r}")
        del _METRICS[name]


def get_metric(name: str) -> Metric:
    """The metric registered under ``name``.

    Raises
    ------
    MetricError
        ``field="metric"`` for an unknown name.

    Examples
    --------
    >>> get_metric("r2").greater_is_better
    True
    """
    try:
        return _METRICS[name]
    except (KeyError, TypeError):
        raise MetricError("metric", f"unknown metric {name!r}; known: {', '.join(sorted(_METRICS))}") from None


def list_metrics(task: str | None = None) -> list[Metric]:
    """Registered metrics in registration order, optionally for one task.

    Examples
    --------
    >>> [m.name for m in list_metrics("regression")]
    ['rmse', 'mae', 'r2']
    """
    with _LOCK:
        metrics = list(_METRICS.values())
    return [m for m in metrics if task is None or task in m.tasks]


for _name, _fn, _tasks, _needs, _gib, _labels in (
    ("accuracy", accuracy, ("classification",), "y_pred", True, False),
    ("precision", precision, ("classification",), "y_pred", True, True),
    ("recall", recall, ("classification",), "y_pred", True, True),
    ("f1", f1, ("classification",), "y_pred", True, True),
    ("roc_auc", roc_auc, ("classification",), "y_score", True, True),
    ("pr_auc", pr_auc, ("classification",), "y_score", True, True),
    ("log_loss", log_loss, ("classification",), "y_score", False, True),
    ("confusion_matrix", confusion_matrix, ("classification",), "y_pred", None, True),
    ("rmse", rmse, ("regression", "forecasting"), "y_pred", False, False),
    ("mae", mae, ("regression", "forecasting"), "y_pred", False, False),
    ("r2", r2, ("regression", "forecasting"), "y_pred", True, False),
    ("silhouette", silhouette, ("clustering",), "X", True, False),
):
    register_metric(_name, _fn, tasks=_tasks, greater_is_better=_gib, needs=_needs, takes_labels=_labels)
del _name, _fn, _tasks, _needs, _gib, _labels


# --------------------------------------------------------------------------- evaluate / better / baselines


def evaluate(
    task: str,
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    X: Any = None,
    *,
    labels: Sequence[Any] | None = None,
) -> dict[str, float | list]:
    """Compute every registered metric of ``task`` that the inputs allow.

    Parameters
    ----------
    task : {"classification", "regression", "clustering", "forecasting"}
        Forecasting uses the regression metrics.
    y_true : array-like of shape (n_samples,)
        True labels or targets; ignored for clustering (may be ``None``).
    y_pred : array-like of shape (n_samples,), optional
        Predicted labels or values; cluster of each row for clustering.
    y_score : array-like of shape (n_samples,) or (n_samples, n_classes), optional
        Classification scores or probabilities; enables ROC-AUC, PR-AUC and,
        when they are probabilities in [0, 1], log loss.
    X : array-like of shape (n_samples, n_features), optional
        Features, for clustering metrics.
    labels : sequence, optional
        Classes in the column order of ``y_score`` (default: sorted labels found).

    Returns
    -------
    dict
        Metric name -> float (``nan`` where undefined for the data, see
        :class:`UndefinedMetricError`), ``confusion_matrix`` -> list of lists,
        and for classification with ``y_pred``, ``labels`` -> the class order
        of the confusion matrix.

    Raises
    ------
    MetricError
        Unknown task, nothing to evaluate, or inconsistent inputs.

    Examples
    --------
    >>> s = evaluate("regression", [3.0, 5.0, 7.0], y_pred=[2.5, 5.0, 7.5])
    >>> round(s["rmse"], 6), round(s["mae"], 6), round(s["r2"], 6)
    (0.408248, 0.333333, 0.9375)
    >>> s = evaluate("classification", [1, 1, 1], y_pred=[1, 0, 1], y_score=[0.9, 0.4, 0.8])
    >>> s["accuracy"], s["roc_auc"]
    (0.6666666666666666, nan)
    """
    if task not in TASKS:
        raise MetricError("task", f"must be one of {', '.join(TASKS)}; got {task!r}")
    if y_pred is None and y_score is None:
        raise MetricError("y_pred", "give y_pred and/or y_score")
    if task == "clustering":
        if y_pred is None:
            raise MetricError("y_pred", "clustering metrics need the cluster of each row in y_pred")
        if X is None:
            raise MetricError("X", "clustering metrics need the features X")
    else:
        t = _vector(y_true, "y_true")
        if y_pred is not None:
            _same_length(t, _vector(y_pred, "y_pred"), "y_pred")
        if labels is None and task == "classification":
            labels = _classes(t, None if y_pred is None else _vector(y_pred, "y_pred"), None)
    result: dict[str, float | list] = {}
    for metric in list_metrics(task):
        if metric.needs == "y_pred" and y_pred is None:
            continue
        if metric.needs == "y_score" and y_score is None:
            continue
        if metric.name == "log_loss" and not _looks_like_probability(y_score):
            continue  # decision scores, not probabilities
        try:
            if metric.name == "silhouette":
                n = np.asarray(X).shape[0]
                value = silhouette(X, y_pred, sample_size=SILHOUETTE_SAMPLE_SIZE if n > SILHOUETTE_SAMPLE_SIZE else None)
            else:
                value = metric.compute(y_true, y_pred=y_pred, y_score=y_score, X=X, labels=labels)
        except UndefinedMetricError:
            value = math.nan
        result[metric.name] = value
    if task == "classification" and y_pred is not None:
        result["labels"] = list(labels or [])
    return result


def better(metric: str, a: float, b: float, margin: float = 0.0) -> bool:
    """Whether score ``a`` beats score ``b`` by more than ``margin`` on ``metric``.

    Higher is better for accuracy, precision, recall, F1, ROC-AUC, PR-AUC,
    R² and silhouette; lower for log loss, RMSE and MAE. A tie is not better.
    ``nan`` (undefined) never beats anything, and any number beats ``nan``.

    Parameters
    ----------
    metric : str
        A registered metric name.
    a, b : float
        Candidate and reference scores.
    margin : float, default 0.0
        Required improvement, in the metric's units, >= 0.

    Raises
    ------
    MetricError
        Unknown metric, a metric with no direction, or a negative margin.

    Examples
    --------
    >>> better("accuracy", 0.90, 0.88), better("accuracy", 0.90, 0.88, margin=0.05)
    (True, False)
    >>> better("log_loss", 0.30, 0.35), better("mae", 2.0, 2.0)
    (True, False)
    """
    spec = get_metric(metric)
    if spec.greater_is_better is None:
        raise MetricError("metric", f"{metric} is not a score and cannot be compared")
    margin = float(margin)
    if not margin >= 0.0:
        raise MetricError("margin", f"must be >= 0; got {margin!r}")
    a, b = float(a), float(b)
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b + margin if spec.greater_is_better else a < b - margin


def baseline_scores(
    task: str,
    y_train: Any,
    y_test: Any,
    *,
    labels: Sequence[Any] | None = None,
) -> dict[str, float | list]:
    """Scores of a trivial model fitted on ``y_train`` and scored on ``y_test``.

    - classification: the class-prior classifier; it predicts the majority
      class of ``y_train`` and scores every row with the training class
      priors (so ROC-AUC is 0.5).
    - regression: the mean of ``y_train``.
    - forecasting: the last value of ``y_train`` (naive forecast).

    Returns the same dict as :func:`evaluate`, so a candidate can be compared
    with it metric by metric through :func:`better`.

    Raises
    ------
    MetricError
        For clustering, which has no baseline, or bad inputs.

    Examples
    --------
    >>> s = baseline_scores("classification", [0, 0, 0, 1], [0, 1, 0, 0])
    >>> s["accuracy"], s["roc_auc"], s["recall"]
    (0.75, 0.5, 0.0)
    >>> baseline_scores("regression", [1.0, 3.0], [2.0, 4.0])["mae"]
    1.0
    """
    if task not in TASKS:
        raise MetricError("task", f"must be one of {', '.join(TASKS)}; got {task!r}")
    if task == "clustering":
        raise MetricError("task", "clustering has no baseline")
    if task == "classification":
        train = _vector(y_train, "y_train")
        test = _vector(y_test, "y_test")
        classes = _classes(test, train, labels)
        train_labels = train.tolist()
        counts = np.array([train_labels.count(c) for c in classes], dtype=float)
        priors = counts / counts.sum()
        majority = classes[int(np.argmax(priors))]  # ties: the first class in order
        y_pred = np.array([majority] * test.shape[0])
        y_score = np.tile(priors, (test.shape[0], 1))
        return evaluate(task, test, y_pred=y_pred, y_score=y_score, labels=classes)
    train = _vector(y_train, "y_train", numeric=True)
    test = _vector(y_test, "y_test", numeric=True)
    constant = float(np.mean(train)) if task == "regression" else float(train[-1])
    return evaluate(task, test, y_pred=np.full(test.shape[0], constant))
