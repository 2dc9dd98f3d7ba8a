"""Combining the copies of a data-parallel training: each partition's learner saw its
share of the rows; the combined model averages their probabilities (classification)
or predictions (regression).

Examples
--------
>>> import numpy as np
>>> from ml.algorithms import build
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]] * 10); y = np.array([0, 0, 1, 1] * 10)
>>> parts = [build("river.logistic_regression").fit(X[p::2], y[p::2]) for p in range(2)]
>>> combined = PartitionEnsemble(parts)
>>> combined.predict(np.array([[0.0], [3.0]])).tolist(), combined.classes_.tolist()
([0, 1], [0, 1])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class PartitionEnsemble:
    """The partitions' models as one model (same interface as :class:`ml.algorithms.Model`)."""

    def __init__(self, members: Sequence[Any]) -> None:
        if not members:
            raise ValueError("members: a combined model needs at least one partition's model")
        self.members = list(members)
        first = self.members[0]
        self.spec, self.params, self.feature_names = first.spec, dict(first.params), first.feature_names

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def is_fitted(self) -> bool:
        return all(m.is_fitted for m in self.members)

    @property
    def classes_(self) -> np.ndarray:
        found = sorted({c for m in self.members for c in np.asarray(m.classes_).tolist()})
        return np.asarray(found)

    def predict_proba(self, X: Any) -> np.ndarray:
        classes = self.classes_.tolist()
        total = np.zeros((np.asarray(X).shape[0], len(classes)))
        for member in self.members:
            columns = [classes.index(c) for c in np.asarray(member.classes_).tolist()]
            total[:, columns] += np.asarray(member.predict_proba(X), dtype=float)
        return total / len(self.members)

    def predict(self, X: Any) -> np.ndarray:
        if self.task == "classification":
            return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        return np.mean([np.asarray(m.predict(X), dtype=float) for m in self.members], axis=0)

    def summary(self) -> dict[str, Any]:
        return {"algorithm": self.name, "partitions": len(self.members),
                "members": [m.summary() for m in self.members]}
