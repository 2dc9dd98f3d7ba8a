"""Algorithms made for demonstrations: registered when this module is imported (list it in
the ``plugins`` setting, as ``python run.py demo`` does for the cluster it starts).

``demo.slow_classifier`` is a logistic regression that takes ``delay_s`` for every
prediction: a version that misses its deadline, so the router's fallback answers and the
monitor rolls production back.

Examples
--------
>>> import numpy as np
>>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
>>> model = SlowClassifier(delay_s=0.0).fit(X, y)
>>> model.predict(np.array([[0.1], [2.9]])).tolist()
[0, 1]
>>> from ml.algorithms import get_algorithm
>>> get_algorithm("demo.slow_classifier").task
'classification'
"""

from __future__ import annotations

import time

from ml.algorithms import ParamSpec, register_algorithm

__all__ = ["SlowClassifier"]


class SlowClassifier:
    """A scikit-learn logistic regression whose every prediction takes ``delay_s`` longer."""

    def __init__(self, delay_s: float = 1.0) -> None:
        from sklearn.linear_model import LogisticRegression

        self.delay_s = delay_s
        self.inner = LogisticRegression(max_iter=5000)

    def fit(self, X, y):
        self.inner.fit(X, y)
        self.classes_ = self.inner.classes_
        return self

    def predict(self, X):
        time.sleep(self.delay_s)
        return self.inner.predict(X)

    def predict_proba(self, X):
        time.sleep(self.delay_s)
        return self.inner.predict_proba(X)


register_algorithm("demo.slow_classifier", SlowClassifier, task="classification",
                   params={"delay_s": ParamSpec(float, 1.0, min=0.0)}, replace=True)
