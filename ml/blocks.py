"""Model-parallel training of a linear model: its coefficients split into blocks of
columns, each block held and updated by its own worker.

One step of full-batch gradient descent: every block sends its part of the margin
``X_b @ w_b``; the driver adds them (plus the intercept), turns them into the residual
(``sigmoid(m) - y`` for logistic, ``m - y`` for least squares) and sends it back; every
block updates its own coefficients from its own columns. Columns are standardised
inside each block, and the result is mapped back to the raw scale.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(300, 4)); y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 4.0
>>> model = train_blocks("regression", X, y, n_blocks=2, n_iter=500, l2=0.0)
>>> np.round(model.coef, 3).tolist(), round(model.intercept, 3)
([1.0, -2.0, 0.5, 3.0], 4.0)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def block_columns(n_features: int, n_blocks: int) -> list[np.ndarray]:
    """Contiguous column ranges, as even as possible; never an empty block.

    >>> [b.tolist() for b in block_columns(5, 2)]
    [[0, 1, 2], [3, 4]]
    """
    return [part for part in np.array_split(np.arange(n_features), min(n_blocks, n_features)) if len(part)]


class LinearBlock:
    """One block of coefficients and its columns (what one worker holds)."""

    def __init__(self, X: np.ndarray, columns: Sequence[int]) -> None:
        raw = np.asarray(X, dtype=float)[:, list(columns)]
        self.columns = list(columns)
        self.mean = raw.mean(axis=0)
        scale = raw.std(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)
        self.X = (raw - self.mean) / self.scale
        self.w = np.zeros(len(self.columns))

    def margin(self) -> np.ndarray:
        return self.X @ self.w

    def step(self, residual: np.ndarray, lr: float, l2: float) -> float:
        """One gradient step on this block; returns the largest gradient component."""
        grad = self.X.T @ residual / len(residual) + l2 * self.w
        self.w = self.w - lr * grad
        return float(np.max(np.abs(grad))) if len(grad) else 0.0

    def raw_coefficients(self) -> tuple[list[int], np.ndarray, float]:
        """(columns, coefficients on the raw scale, this block's share of the intercept)."""
        coef = self.w / self.scale
        return self.columns, coef, float(-np.sum(self.mean * coef))


def residual(task: str, margin: np.ndarray, y01: np.ndarray) -> np.ndarray:
    if task == "classification":
        return 1.0 / (1.0 + np.exp(-np.clip(margin, -500, 500))) - y01
    return margin - y01


class BlockLinearModel:
    """The assembled linear model (predict / predict_proba like :class:`ml.algorithms.Model`)."""

    def __init__(self, spec, params: dict, task: str, coef: np.ndarray, intercept: float,
                 classes: list | None, feature_names: Sequence[str] | None, n_blocks: int) -> None:
        self.spec, self.params, self.task = spec, dict(params), task
        self.coef, self.intercept = np.asarray(coef, dtype=float), float(intercept)
        self._classes = classes
        self.feature_names = tuple(feature_names) if feature_names is not None else None
        self.n_blocks = n_blocks
        self.is_fitted = True

    @property
    def name(self) -> str:
        return self.spec.name if self.spec is not None else "block_linear"

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self._classes)

    def decision_function(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float) @ self.coef + self.intercept

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-np.clip(self.decision_function(X), -500, 500)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        if self.task == "classification":
            return self.classes_[(self.decision_function(X) > 0).astype(int)]
        return self.decision_function(X)

    def summary(self) -> dict[str, Any]:
        return {"algorithm": self.name, "blocks": self.n_blocks, "coef": self.coef.tolist(),
                "intercept": self.intercept, "feature_names": list(self.feature_names or ())}


def assemble(spec, params: dict, task: str, parts: Sequence[tuple[list[int], np.ndarray, float]],
             intercept: float, n_features: int, classes: list | None, feature_names, n_blocks: int) -> BlockLinearModel:
    coef = np.zeros(n_features)
    total = intercept
    for columns, block_coef, share in parts:
        coef[columns] = block_coef
        total += share
    return BlockLinearModel(spec, params, task, coef, total, classes, feature_names, n_blocks)


def targets(task: str, y: np.ndarray) -> tuple[np.ndarray, list | None]:
    """(numeric targets, class order): a binary label becomes 0/1 (the second sorted class is 1)."""
    if task != "classification":
        return np.asarray(y, dtype=float), None
    classes = sorted(set(np.asarray(y).tolist()))
    if len(classes) != 2:
        raise ValueError(f"y: coefficient blocks train binary classifiers; got {len(classes)} classes")
    return (np.asarray(y) == classes[1]).astype(float), classes


def train_blocks(task: str, X: np.ndarray, y: np.ndarray, n_blocks: int, n_iter: int = 300, l2: float = 0.0,
                 lr: float = 0.5, tol: float = 1e-6) -> BlockLinearModel:
    """The whole loop in one process (what the block workers do, for tests and the floor)."""
    y01, classes = targets(task, y)
    blocks = [LinearBlock(X, cols) for cols in block_columns(X.shape[1], n_blocks)]
    intercept = float(np.mean(y01)) if task != "classification" else 0.0
    for _ in range(n_iter):
        r = residual(task, sum(b.margin() for b in blocks) + intercept, y01)
        intercept -= lr * float(np.mean(r))
        largest = max(b.step(r, lr, l2) for b in blocks)
        if largest < tol and abs(float(np.mean(r))) < tol:
            break
    return assemble(None, {}, task, [b.raw_coefficients() for b in blocks], intercept, X.shape[1], classes, None,
                    len(blocks))
