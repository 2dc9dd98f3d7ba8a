"""A user's own algorithms and feature transforms, registered when the module is imported
(the cluster of the test session lists it in CONVEYOR_PLUGINS)."""

from __future__ import annotations

import numpy as np

from ml.algorithms import ParamSpec, register_algorithm
from ml.demo_algorithms import SlowClassifier
from ml.transforms import Transform, register_transform


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


class SlowFit(NearestCentroid):
    """A fit that takes ``delay_s`` longer (sleeping: it leaves the CPUs to the others)."""

    def __init__(self, delay_s: float = 1.0) -> None:
        super().__init__()
        self.delay_s = delay_s

    def fit(self, X, y):
        import time

        time.sleep(self.delay_s)
        return super().fit(X, y)


register_algorithm("test.slow_fit", SlowFit, task="classification",
                   params={"delay_s": ParamSpec(float, 1.0, min=0.0)}, replace=True)


# A version that is late: the product's demo algorithm, under the tests' own name.
register_algorithm("test.slow_classifier", SlowClassifier, task="classification",
                   params={"delay_s": ParamSpec(float, 1.0, min=0.0)}, replace=True)


class Unlucky(Transform):
    """A custom step with a bug: it raises on the value 13 (a batch without one goes through)."""

    kind = "transform"
    PARAMS = {}

    def transform_batch(self, columns):
        if any((column == 13).any() for column in columns):
            raise ValueError("13 is unlucky")
        return list(columns)


register_transform("test.unlucky", Unlucky, replace=True)
