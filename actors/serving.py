"""Serving: model replicas, the deployment manager that owns them, and the fallback
actor that answers when a version is late ("better wrong than late").

- :class:`ServedModel` turns a request (raw features, or an entity key whose vector is
  read from the online store) into a prediction, with the feature set's own code.
- :class:`ModelReplica`, hosted by its own actor (``actors.remote.ReplicaHost``): one copy of one
  deployed version.
- :class:`DeploymentManager` (``root.serve``): deploys a version (artifact verified and
  copied to Redis, replicas started and warmed by a health prediction, then the routes
  moved), rolls back, and keeps every live version's replicas running (a reconcile
  loop that restarts a dead replica under the same name).
- :class:`FallbackScorer` (``root.fallback``): keeps the previous version of every
  model loaded, and its baseline, and answers from them.

Ray-free: actors are hosted through ``actors.remote``.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from typing import Any

import numpy as np

from actors.worker import Worker
from ml.errors import FieldError
from storage.route_rules import fallback_versions
from storage.settings import Settings

MAX_FEATURES = 4096
_FLOAT_MAX = sys.float_info.max



def warm_up() -> None:
    """What a spare replica process does ahead of loading a version: import what loading and
    unpickling need (the modules of the library's scikit-learn estimators among them)."""
    import sklearn.cluster  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.tree  # noqa: F401

    import ml.features  # noqa: F401
    import storage.redis_store  # noqa: F401
    import storage.serving_store  # noqa: F401

class ScoringError(FieldError):
    """A request that cannot be scored; ``field`` names what is wrong. Travels through Ray."""


class RequestExpired(RuntimeError):
    """A request taken up after its caller had stopped waiting; nobody reads the answer."""


#: How long past a request's ``answer_by`` a replica still answers it (clocks of two
#: machines may disagree by this much before a waiting caller loses an answer).
EXPIRY_GRACE_S = 1.0



def check_features(features: Any) -> dict:
    """Raw features as given by a caller: a flat mapping of names to finite numbers, strings,
    booleans or None; anything else is a :class:`ScoringError` naming the feature.

    >>> check_features({"x": 1.5, "color": "red"})
    {'x': 1.5, 'color': 'red'}
    >>> check_features({"x": float("nan")})
    Traceback (most recent call last):
    ...
    actors.serving.ScoringError: features.x: must be a finite number; got nan
    >>> check_features({"x": 10**400})
    Traceback (most recent call last):
    ...
    actors.serving.ScoringError: features.x: must be a finite number; got an int beyond the float range
    """
    if not isinstance(features, dict):
        raise ScoringError("features", f"expected a mapping of feature names to values, got {type(features).__name__}")
    if len(features) > MAX_FEATURES:
        raise ScoringError("features", f"{len(features)} features; at most {MAX_FEATURES}")
    for name, value in features.items():
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise ScoringError("features", f"feature names are strings of 1-128 characters; got {name!r:.40}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ScoringError(f"features.{name}", f"must be a finite number; got {value!r}")
        if type(value) is int and not -_FLOAT_MAX <= value <= _FLOAT_MAX:     # JSON allows 10**400
            raise ScoringError(f"features.{name}", "must be a finite number; got an int beyond the float range")
        if isinstance(value, str) and len(value) > 65536:
            raise ScoringError(f"features.{name}", "text longer than 65,536 characters")
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ScoringError(f"features.{name}", f"must be a number, text, boolean or null; got "
                                                   f"{type(value).__name__}")
    return features


def prediction(model, task: str, vector: np.ndarray) -> tuple[float | None, str | None]:
    """(score, label) of one vector: the positive class's probability (binary) or the top
    class's, with the predicted class; the predicted value for regression."""
    X = vector.reshape(1, -1)
    if task == "classification":
        try:
            proba = np.asarray(model.predict_proba(X), dtype=float)[0]
        except Exception:   # no probabilities: the label alone
            return None, str(np.asarray(model.predict(X))[0])
        classes = np.asarray(model.classes_)
        best = int(np.argmax(proba))
        return float(proba[1] if len(classes) == 2 else proba[best]), str(classes[best])
    value = float(np.asarray(model.predict(X), dtype=float)[0])
    return value, None


class ServedModel:
    """One deployed version with what it needs to answer a request."""

    def __init__(self, model, fitted, online, dataset: str, task: str, version: int) -> None:
        self.model, self.fitted, self.online, self.dataset = model, fitted, online, dataset
        self.task, self.version = task, version

    def vector_of(self, features: dict, entity_key: str | None = None) -> np.ndarray:
        """The vector of a request's raw features, by the feature set's own code."""
        from ml.quality import QuarantineError

        row = check_features(features)
        key = self.fitted.spec.key
        if key is not None and row.get(key) is None:   # the entity key names a row; it is no feature
            row = {**row, key: entity_key or "request"}
        try:
            return np.asarray(self.fitted.transform_one(row), dtype=float)
        except QuarantineError as exc:
            raise ScoringError("features", str(exc)) from None

    async def vector(self, request: dict) -> np.ndarray:
        """The request's vector: from its features, else the online store's by its entity key."""
        features, entity_key = request.get("features"), request.get("entity_key")
        if features is not None:
            return self.vector_of(features, entity_key)
        if entity_key is None:
            raise ScoringError("features", "give features or an entity_key")
        found = await self.online.get(self.dataset, entity_key)
        if found is None:
            raise ScoringError("entity_key", f"no features for {entity_key!r} in the online store of "
                                             f"{self.dataset!r}; pass them as features")
        return np.asarray(found.vector, dtype=float)

    def answer(self, vector: np.ndarray) -> dict:
        """The prediction for one vector, as every scorer answers it."""
        if vector.shape[0] != self.fitted.n_features:
            raise ScoringError("features", f"{vector.shape[0]} values; the model takes {self.fitted.n_features}")
        score, label = prediction(self.model, self.task, vector)
        return {"score": score, "label": label, "version": self.version}

    async def score(self, request: dict) -> dict:
        """The answer to one request."""
        return self.answer(await self.vector(request))


async def load_served(settings: Settings, redis, model: str, version: int) -> ServedModel:
    """A deployed version, loaded from Redis (artifact and feature set, both signature-checked)."""
    import pickle

    from actors.wiring import import_plugins, signing_key_bytes
    from ml.joined_features import load_feature_set
    from storage.feature_store import RedisOnlineStore
    from storage.serving_store import RedisServingStore

    await asyncio.to_thread(import_plugins, settings.plugins)   # the loop keeps answering while this loads
    key = signing_key_bytes(settings)
    store = RedisServingStore(redis, settings.cluster_name, key)
    routes = await store.routes(model)
    if routes is None or version not in routes.versions:
        raise LookupError(f"version: {model} v{version} is not deployed")
    info = routes.versions[version]
    artifact = await store.artifact(model, version)                 # verified before unpickling
    trained = await asyncio.to_thread(pickle.loads, artifact)
    fitted = await asyncio.to_thread(load_feature_set, await store.feature_set(info.feature_set_id))
    online = RedisOnlineStore(redis, settings.cluster_name, settings.online_ttl_s)
    return ServedModel(trained, fitted, online, info.dataset, routes.task, version)


class ModelReplica:
    """One copy of one deployed version, hosted by its own ``actors.remote.ReplicaHost``:
    requests are answered on the host's request thread (:meth:`score_now`); what needs I/O
    is a coroutine the host runs on its own event loop."""

    def __init__(self, settings: Settings, model: str, version: int) -> None:
        self.settings, self.model, self.version = settings, model, version
        self.served: ServedModel | None = None
        self._redis = None
        self.n_scored = self.n_expired = 0

    def describe(self) -> str:
        return f"replica {self.model} v{self.version}"

    async def load(self) -> dict:
        """Load the version and answer a health prediction (a vector of zeros)."""
        from storage.redis_store import connect_redis

        self._redis = connect_redis(self.settings.redis_url)
        served = await load_served(self.settings, self._redis, self.model, self.version)
        zeros = np.zeros(served.fitted.n_features)
        await asyncio.to_thread(prediction, served.model, served.task, zeros)      # the first call warms caches
        score, _ = prediction(served.model, served.task, zeros)
        self.served = served        # answers from now on
        return {"healthy": True, "score": score}

    def score_now(self, request: dict, run) -> dict:
        """The answer to one request; ``run(coroutine)`` runs the online store's read of an
        entity's features to its end. A request whose caller stopped waiting for it more
        than ``EXPIRY_GRACE_S`` ago (its ``answer_by``, wall clock) is dropped unanswered:
        a replica that stalled works through what queued meanwhile without predicting."""
        if self.served is None:   # not the caller's fault: the router asks another replica or the fallback
            raise RuntimeError(f"{self.model} v{self.version} is still loading")
        if not isinstance(request, dict):
            raise ScoringError("features", "a request is a mapping of features or an entity_key")
        answer_by = request.get("answer_by")
        if isinstance(answer_by, (int, float)) and time.time() > answer_by + EXPIRY_GRACE_S:
            self.n_expired += 1
            raise RequestExpired(f"{self.model} v{self.version}: the caller stopped waiting "
                                 f"{time.time() - answer_by:.1f} s ago")
        self.n_scored += 1
        features = request.get("features")
        if features is not None:
            vector = self.served.vector_of(features, request.get("entity_key"))
        else:
            vector = run(self.served.vector(request))
        return self.served.answer(vector)

    def stats(self) -> dict:
        return {"n_scored": self.n_scored, "n_expired": self.n_expired, "loaded": self.served is not None}


class FallbackScorer(Worker):
    """``root.fallback``: answers with the previous version of a model, else its baseline.

    It keeps every model's previous version loaded (refreshed when the routes change), so
    its answer costs one prediction: a caller whose chosen version is late or failing asks
    it with the time that is left.
    """

    requests = ("score",)

    def __init__(self, settings: Settings, name: str, refresh_s: float = 0.5) -> None:
        super().__init__(settings, name)
        self.refresh_s = refresh_s
        self._redis = self._store = None
        self._loaded: dict[tuple[str, int], ServedModel] = {}
        self._routes: dict[str, Any] = {}

    async def setup(self) -> None:
        from actors.wiring import signing_key_bytes
        from storage.redis_store import connect_redis
        from storage.serving_store import RedisServingStore

        self._redis = connect_redis(self.settings.redis_url)
        self._store = RedisServingStore(self._redis, self.settings.cluster_name, signing_key_bytes(self.settings))
        self._warming = None

    async def step(self) -> None:
        if self._warming is None:   # libraries imported before the first request, once the start has settled
            from actors.training_tasks import Warm

            self._warming = asyncio.get_running_loop().create_task(asyncio.to_thread(Warm, self.settings.plugins))
        for routes in await self._store.all_routes():
            known = self._routes.get(routes.model)
            if known is None or known.revision != routes.revision:
                await self._adopt(routes)
        await asyncio.sleep(self.refresh_s)

    async def _adopt(self, routes) -> None:
        """Load the versions this model may fall back on (previous and production, never one
        rolled back from)."""
        wanted = set(fallback_versions(routes))
        for version in wanted:
            if (routes.model, version) not in self._loaded:
                try:
                    self._loaded[(routes.model, version)] = await load_served(self.settings, self._redis,
                                                                               routes.model, version)
                except Exception as exc:
                    self.log.warning("fallback could not load a version", model=routes.model, version=version,
                                     error=f"{type(exc).__name__}: {exc}"[:300])
        for key in [k for k in self._loaded if k[0] == routes.model and k[1] not in wanted]:
            del self._loaded[key]
        self._routes[routes.model] = routes

    async def score(self, model: str, request: dict, failed_version: int | None) -> dict:
        """The previous version's answer (or production's when the previous one failed; never
        a version rolled back from), else the baseline's."""
        routes = self._routes.get(model)
        if routes is None:   # not adopted yet: nothing is loaded on the request path, the baseline answers
            routes = await self._store.routes(model)
            if routes is None:
                raise ScoringError("model", f"{model!r} is not deployed")
        self.n_processed += 1
        for version in fallback_versions(routes):
            served = self._loaded.get((model, version)) if version not in (None, failed_version) else None
            if served is not None:
                try:
                    return {**await served.score(request), "answered_by": "fallback"}
                except ScoringError:
                    raise
                except Exception as exc:   # a version that cannot answer: try the next, then the baseline
                    self.log.warning("fallback version failed", model=model, version=version, error=str(exc)[:200],
                                     correlation_id=str(request.get("request_id") or "")[:64])
        if routes.baseline is None:
            raise ScoringError("model", f"{model!r} has no version to fall back on and no baseline")
        return {"score": routes.baseline.score, "label": routes.baseline.label, "version": None,
                "answered_by": "baseline"}

    async def teardown(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
