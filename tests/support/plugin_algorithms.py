"""A user's own algorithms, registered when the module is imported (the cluster of the
test session lists it in CONVEYOR_PLUGINS)."""

from __future__ import annotations

import numpy as np

from ml.algorithms import ParamSpec, register_algorithm


class NearestCentroid:
    """Anything with fit/predict: the class whose mean row is closest."""

    def __init__(self, shrink: float = 0.0) -> None:
        self.shrink = shrink

    def fit(self, X, y):
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        centroids = np.array([X[y == c].mean(axis=0) for c in self.classes_])
        self.centroids_ = (1 - self.shrink) * centroids + self.shrink * X.mean(axis=0)
        return self

    def predict(self, X):
        distances = ((np.asarray(X)[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2)
        return self.classes_[np.argmin(distances, axis=1)]


register_algorithm("test.nearest_centroid", NearestCentroid, task="classification",
                   params={"shrink": ParamSpec(float, 0.0, min=0.0, max=1.0)}, replace=True)


class SlowClassifier:
    """A logistic regression whose predictions take ``delay_s``: a version that is late."""

    def __init__(self, delay_s: float = 1.0) -> None:
        from sklearn.linear_model import LogisticRegression

        self.delay_s = delay_s
        self.inner = LogisticRegression(max_iter=5000)

    def fit(self, X, y):
        self.inner.fit(X, y)
        self.classes_ = self.inner.classes_
        return self

    def predict(self, X):
        import time

        time.sleep(self.delay_s)
        return self.inner.predict(X)

    def predict_proba(self, X):
        import time

        time.sleep(self.delay_s)
        return self.inner.predict_proba(X)


register_algorithm("test.slow_classifier", SlowClassifier, task="classification",
                   params={"delay_s": ParamSpec(float, 1.0, min=0.0)}, replace=True)
