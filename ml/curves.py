"""ROC and precision-recall curves as data, and as PNG pictures.

A :class:`Curve` is a frozen msgspec struct, so it can be stored or sent as
msgpack (or JSON, see the note on thresholds) next to the scores of a
candidate. :func:`render_png` draws one with matplotlib's Agg canvas, which it
imports only when called, so this module stays cheap to import and never
touches the process-wide pyplot state.

Examples
--------
>>> from ml.curves import roc_curve, pr_curve
>>> c = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
>>> c.kind, c.auc, len(c.x) == len(c.y) == len(c.thresholds)
('roc', 0.75, True)
>>> round(pr_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]).auc, 6)
0.833333
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ml.evaluators import MetricError, UndefinedMetricError, pr_auc, roc_auc

__all__ = ["Curve", "pr_curve", "render_png", "roc_curve"]



class Curve(msgspec.Struct, frozen=True, kw_only=True):
    """One ROC or precision-recall curve.

    Attributes
    ----------
    kind : {"roc", "pr"}
    x, y : tuple of float
        ROC: false-positive rate, true-positive rate (as
        ``sklearn.metrics.roc_curve``). PR: recall, precision (as
        ``sklearn.metrics.precision_recall_curve``, recall decreasing).
    thresholds : tuple of float
        Score threshold of each point; same length as ``x``. ROC starts with
        ``inf`` (nothing predicted positive), as in scikit-learn; PR ends
        with ``inf`` for its last point (recall 0, precision 1), which
        scikit-learn leaves without a threshold. JSON has no ``inf``: msgspec
        writes it as ``null``, so store curves as msgpack, or drop the
        thresholds, when the exact value matters.
    auc : float
        ROC-AUC, or PR-AUC as average precision (the same numbers as
        :func:`ml.evaluators.roc_auc` and :func:`ml.evaluators.pr_auc`).
    pos_label : str, int, float or bool
        The positive class.
    n_positive, n_negative : int
        Class counts in ``y_true`` (the PR chance level is
        ``n_positive / (n_positive + n_negative)``).

    Examples
    --------
    >>> c = roc_curve([0, 1, 1], [0.2, 0.7, 0.9])
    >>> c.x, c.y
    ((0.0, 0.0, 0.0, 1.0), (0.0, 0.5, 1.0, 1.0))
    >>> msgspec.msgpack.decode(msgspec.msgpack.encode(c), type=Curve) == c
    True
    """

    kind: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    thresholds: tuple[float, ...]
    auc: float
    pos_label: str | int | float | bool | None = None
    n_positive: int = 0
    n_negative: int = 0

    @property
    def x_label(self) -> str:
        """Axis title of ``x``."""
        return "False positive rate" if self.kind == "roc" else "Recall"

    @property
    def y_label(self) -> str:
        """Axis title of ``y``."""
        return "True positive rate" if self.kind == "roc" else "Precision"

    @property
    def prevalence(self) -> float:
        """Share of positives: the chance level of a PR curve."""
        total = self.n_positive + self.n_negative
        return self.n_positive / total if total else float("nan")


def _binary_inputs(y_true: Any, y_score: Any, pos_label: Any, curve: str) -> tuple[np.ndarray, np.ndarray, Any]:
    t = np.asarray(y_true)
    if t.ndim != 1 or t.shape[0] == 0:
        raise MetricError("y_true", f"must be a non-empty 1-D array; got shape {t.shape}")
    scores = np.asarray(y_score, dtype=float)
    if scores.ndim == 2 and scores.shape[1] == 2:
        pass  # binary probabilities, columns in sorted label order
    elif scores.ndim != 1:
        raise MetricError("y_score", f"must be 1-D, or 2-D with two columns; got shape {scores.shape}")
    if scores.shape[0] != t.shape[0]:
        raise MetricError("y_score", f"has {scores.shape[0]} values but y_true has {t.shape[0]}")
    if not np.isfinite(scores).all():
        raise MetricError("y_score", "contains NaN or infinite values")
    present = sorted(np.unique(t).tolist())
    if len(present) > 2:
        raise MetricError("y_true", f"{curve} curves are binary; got {len(present)} classes (pass y_true == label)")
    if pos_label is None:
        pos_label = present[-1]
    if len(present) < 2:
        raise UndefinedMetricError(curve, f"y_true has only one class ({present[0]!r}); the curve is undefined")
    if pos_label not in present:
        raise MetricError("pos_label", f"{pos_label!r} is not a label of y_true {present!r}")
    if scores.ndim == 2:
        scores = scores[:, present.index(pos_label)]
    return t == pos_label, scores, pos_label


def _plain(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def roc_curve(y_true: Any, y_score: Any, *, pos_label: Any = None, drop_intermediate: bool = True) -> Curve:
    """ROC curve of a binary classifier (``sklearn.metrics.roc_curve``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Two classes.
    y_score : array-like of shape (n_samples,) or (n_samples, 2)
        Positive-class score, or probabilities with columns in sorted label order.
    pos_label : object, optional
        Positive class; defaults to the larger label.
    drop_intermediate : bool, default True
        Drop points that do not change the curve's shape.

    Returns
    -------
    Curve
        ``kind="roc"``; ``x`` false-positive rate, ``y`` true-positive rate.

    Raises
    ------
    UndefinedMetricError
        ``y_true`` holds a single class.
    MetricError
        More than two classes, or bad shapes.

    Examples
    --------
    >>> c = roc_curve(["no", "yes", "yes", "no"], [0.3, 0.8, 0.6, 0.7])
    >>> c.pos_label, c.auc, c.thresholds[0]
    ('yes', 0.75, inf)
    """
    from sklearn.metrics import roc_curve as sk_roc_curve

    positive, scores, pos_label = _binary_inputs(y_true, y_score, pos_label, "roc")
    fpr, tpr, thresholds = sk_roc_curve(positive, scores, drop_intermediate=drop_intermediate)
    return Curve(
        kind="roc",
        x=_plain(fpr),
        y=_plain(tpr),
        thresholds=_plain(thresholds),
        auc=roc_auc(positive, scores),
        pos_label=pos_label,
        n_positive=int(positive.sum()),
        n_negative=int((~positive).sum()),
    )


def pr_curve(y_true: Any, y_score: Any, *, pos_label: Any = None) -> Curve:
    """Precision-recall curve of a binary classifier.

    Points are those of ``sklearn.metrics.precision_recall_curve``; ``auc``
    is the average precision.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_score : array-like of shape (n_samples,) or (n_samples, 2)
    pos_label : object, optional
        Positive class; defaults to the larger label.

    Returns
    -------
    Curve
        ``kind="pr"``; ``x`` recall, ``y`` precision.

    Raises
    ------
    UndefinedMetricError
        ``y_true`` holds a single class.

    Examples
    --------
    >>> c = pr_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> c.x[-1], c.y[-1], c.thresholds[-1], c.prevalence
    (0.0, 1.0, inf, 0.5)
    """
    from sklearn.metrics import precision_recall_curve

    positive, scores, pos_label = _binary_inputs(y_true, y_score, pos_label, "pr")
    precision, recall, thresholds = precision_recall_curve(positive, scores)
    return Curve(
        kind="pr",
        x=_plain(recall),
        y=_plain(precision),
        thresholds=_plain(np.append(thresholds, np.inf)),
        auc=pr_auc(positive, scores),
        pos_label=pos_label,
        n_positive=int(positive.sum()),
        n_negative=int((~positive).sum()),
    )


def render_png(
    curve: Curve,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    dpi: int = 100,
    size_in: tuple[float, float] = (5.0, 5.0),
) -> Path:
    """Draw ``curve`` to a PNG file at ``path`` and return the path.

    The file is written to a temporary name in the same folder and renamed,
    so a reader never sees half a picture. The folder must exist.

    Parameters
    ----------
    curve : Curve
    path : str or path-like
    title : str, optional
        Defaults to "ROC curve" or "Precision-recall curve" with the AUC.
    dpi : int, default 100
    size_in : (float, float), default (5, 5)
        Width and height in inches.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     png = render_png(roc_curve([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.4]), pathlib.Path(folder) / "roc.png")
    ...     png.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if curve.kind not in ("roc", "pr"):
        raise MetricError("curve", f"kind must be 'roc' or 'pr'; got {curve.kind!r}")
    target = Path(path)
    fig = Figure(figsize=size_in, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if curve.kind == "roc":
        ax.plot(curve.x, curve.y, color="tab:blue", linewidth=2, label=f"ROC (AUC = {curve.auc:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance (AUC = 0.5)")
        default_title = "ROC curve"
    else:
        ax.plot(curve.x, curve.y, color="tab:blue", linewidth=2, drawstyle="steps-post",
                label=f"PR (AP = {curve.auc:.3f})")
        if curve.n_positive + curve.n_negative:
            ax.axhline(curve.prevalence, color="grey", linestyle="--", linewidth=1,
                       label=f"chance (AP = {curve.prevalence:.3f})")
        default_title = "Precision-recall curve"
    if curve.pos_label is not None:
        default_title += f" (positive: {curve.pos_label})"
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel(curve.x_label)
    ax.set_ylabel(curve.y_label)
    ax.set_title(title if title is not None else default_title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right" if curve.kind == "roc" else "lower left")
    fig.tight_layout()

    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, format="png", dpi=dpi)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
