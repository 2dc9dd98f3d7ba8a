"""Distribution drift between a reference sample (what a model was trained on) and a
live one (what it is asked to score): the population stability index over the
reference's quantile bins, and the two-sample Kolmogorov-Smirnov statistic.

Pure functions of arrays: no I/O, nothing of the project.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> ref = fit_reference(rng.normal(size=(5000, 2)), ["a", "b"])
>>> same = feature_drift(ref, rng.normal(size=(2000, 2)))
>>> shifted = feature_drift(ref, rng.normal(loc=[1.0, 0.0], size=(2000, 2)))
>>> same["a"].psi < 0.1 < 0.25 < shifted["a"].psi, shifted["b"].psi < 0.1
(True, True)
>>> shifted["a"].ks > 0.3 and shifted["a"].p_value < 1e-6
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Bin shares below this count as this in PSI (an empty bin would make it infinite).
PSI_FLOOR = 1e-4
#: Conventional PSI reading: below 0.1 stable, 0.1-0.25 a moderate shift, above a significant one.
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25


def quantile_edges(reference: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """The inner edges of ``n_bins`` equal-frequency bins of ``reference`` (fewer when the
    values repeat, as a discrete or constant feature's do).

    >>> quantile_edges(np.arange(100.0), 4).tolist()
    [24.75, 49.5, 74.25]
    >>> quantile_edges(np.array([0.0, 0.0, 0.0, 0.0, 1.0]), 4).tolist()
    [0.0]
    """
    if n_bins < 2:
        raise ValueError(f"n_bins: at least 2; got {n_bins}")
    values = np.asarray(reference, dtype=float)
    if values.size == 0:
        raise ValueError("reference: empty")
    edges = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(edges)


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The share of ``values`` in each bin cut by ``edges`` (a value on an edge goes to the
    bin above it; ``len(edges) + 1`` bins from minus to plus infinity).

    >>> bin_shares(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.5])).tolist()
    [0.5, 0.5]
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.zeros(len(edges) + 1)
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / values.size


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index of bin shares: sum((a - e) * ln(a / e)), each share
    floored at ``floor``.

    >>> psi(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    0.0
    >>> round(psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])), 4)
    0.8789
    """
    e = np.maximum(np.asarray(expected, dtype=float), floor)
    a = np.maximum(np.asarray(actual, dtype=float), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_2samp(sorted_reference: np.ndarray, live: np.ndarray) -> tuple[float, float]:
    """(D, p): the two-sided two-sample Kolmogorov-Smirnov statistic of a sorted reference
    and a live sample, with its asymptotic p-value (what ``scipy.stats.ks_2samp(...,
    method="asymp")`` gives). (0.0, 1.0) when either sample is empty.

    >>> ks_2samp(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    (0.0, 1.0)
    >>> ks_2samp(np.array([1.0, 2.0]), np.array([5.0, 6.0]))[0]
    1.0
    """
    a = np.asarray(sorted_reference, dtype=float)
    b = np.sort(np.asarray(live, dtype=float))
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    points = np.concatenate([a, b])
    d = float(np.max(np.abs(np.searchsorted(a, points, side="right") / n1
                            - np.searchsorted(b, points, side="right") / n2)))
    from scipy.stats import distributions

    en = n1 * n2 / (n1 + n2)
    p = float(np.clip(distributions.kstwo.sf(d, max(1.0, np.round(en))), 0.0, 1.0))
    return d, p


@dataclass(frozen=True)
class Reference:
    """What live samples are compared with, per column: bin edges, the reference's bin
    shares, and a sorted (sub)sample for KS."""

    names: tuple[str, ...]
    edges: tuple[np.ndarray, ...]
    shares: tuple[np.ndarray, ...]
    sorted_sample: tuple[np.ndarray, ...]
    n_rows: int


@dataclass(frozen=True)
class Drift:
    psi: float
    ks: float
    p_value: float

    @property
    def level(self) -> str:
        """``stable``, ``moderate`` or ``significant`` by the PSI convention."""
        return "stable" if self.psi < PSI_MODERATE else "moderate" if self.psi < PSI_SIGNIFICANT else "significant"


def fit_reference(X: np.ndarray, names: Sequence[str], n_bins: int = 10, max_sample: int = 5000,
                  seed: int = 0) -> Reference:
    """The reference of a matrix (rows: samples; columns named ``names``); KS compares with
    at most ``max_sample`` of its rows (a seeded draw), PSI with the bins of all of them."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.shape[1] != len(names):
        raise ValueError(f"names: {len(names)} names for {X.shape[1]} columns")
    if X.shape[0] == 0:
        raise ValueError("X: the reference has no rows")
    sample = X
    if X.shape[0] > max_sample:
        sample = X[np.random.default_rng(seed).choice(X.shape[0], max_sample, replace=False)]
    edges = tuple(quantile_edges(X[:, j], n_bins) for j in range(X.shape[1]))
    return Reference(names=tuple(names), edges=edges,
                     shares=tuple(bin_shares(X[:, j], e) for j, e in enumerate(edges)),
                     sorted_sample=tuple(np.sort(sample[:, j]) for j in range(X.shape[1])), n_rows=X.shape[0])


def feature_drift(reference: Reference, live: np.ndarray) -> dict[str, Drift]:
    """PSI and KS of every column of ``live`` against ``reference``."""
    live = np.asarray(live, dtype=float)
    if live.ndim == 1:
        live = live.reshape(-1, 1)
    if live.shape[1] != len(reference.names):
        raise ValueError(f"live: {live.shape[1]} columns; the reference has {len(reference.names)}")
    out = {}
    for j, name in enumerate(reference.names):
        column = live[:, j]
        d, p = ks_2samp(reference.sorted_sample[j], column)
        value = psi(reference.shares[j], bin_shares(column, reference.edges[j]))
        out[name] = Drift(psi=value if math.isfinite(value) else 0.0, ks=d, p_value=p)
    return out
