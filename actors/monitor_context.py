"""What the monitor needs to know of a model version, loaded once from PostgreSQL: its
feature set (to turn a request's raw features into the vector the model saw), and the
training reference: the feature distributions of the rows it was trained on and the
distribution of its own predictions on them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.drift import Reference, fit_reference

#: Reference rows the model predicts (once per version) for its prediction reference.
PREDICTION_REFERENCE_ROWS = 5000


@dataclass
class VersionContext:
    model: str
    version: int
    task: str
    dataset: str
    feature_set_id: str
    fitted: Any                          # ml.features.FittedFeatureSet
    features: Reference
    predictions: Reference | None        # None when the model could not be loaded here


def batch_scores(model, task: str, X: np.ndarray) -> np.ndarray:
    """What actors.serving.prediction answers as ``score``, for many rows: the positive
    class's probability (binary), the top class's (multi-class), the value (regression)."""
    if task == "classification":
        proba = np.asarray(model.predict_proba(X), dtype=float)
        return proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
    return np.asarray(model.predict(X), dtype=float)


async def load_context(pool, signing_key: bytes, plugins: str, model: str, version: int,
                       log=None) -> VersionContext | None:
    """The version's context; None when no such candidate is stored."""
    from actors.wiring import import_plugins
    from ml.joined_features import load_feature_set
    from storage.feature_store import PostgresFeatureStore
    from storage.model_store import PostgresModelStore
    from storage.signing import verify

    row = await pool.fetchrow(
        "SELECT c.candidate_id, c.feature_set_id, c.batch_ids, r.task, s.dataset, s.fitted, s.signature"
        " FROM candidates c JOIN training_runs r USING (run_id)"
        " JOIN feature_sets s ON s.feature_set_id = c.feature_set_id"
        " WHERE c.model = $1 AND c.version = $2", model, version)
    if row is None:
        return None
    verify(signing_key, bytes(row["fitted"]), bytes(row["signature"]))
    fitted = await asyncio.to_thread(load_feature_set, bytes(row["fitted"]))
    names, _, vectors, _ = await PostgresFeatureStore(pool, signing_key).matrix(row["feature_set_id"],
                                                                              list(row["batch_ids"]) or None)
    X = np.asarray(vectors, dtype=float).reshape(len(vectors), len(names))
    features = await asyncio.to_thread(fit_reference, X, names)
    predictions = None
    try:
        await asyncio.to_thread(import_plugins, plugins)
        trained = await PostgresModelStore(pool, signing_key).load_model(row["candidate_id"])
        sample = X
        if len(X) > PREDICTION_REFERENCE_ROWS:
            sample = X[np.random.default_rng(0).choice(len(X), PREDICTION_REFERENCE_ROWS, replace=False)]
        scores = await asyncio.to_thread(batch_scores, trained, row["task"], sample)
        predictions = fit_reference(scores.reshape(-1, 1), ["score"])
    except Exception as exc:   # feature drift still works; prediction drift is left out
        if log is not None:
            log.warning("no prediction reference", model=model, version=version,
                        error=f"{type(exc).__name__}: {exc}"[:300])
    return VersionContext(model=model, version=version, task=row["task"], dataset=row["dataset"],
                          feature_set_id=row["feature_set_id"], fitted=fitted, features=features,
                          predictions=predictions)


def vectors_of_rows(context: VersionContext, rows: list[dict]) -> np.ndarray:
    """The vectors the version's feature set makes of raw request rows (rows it would refuse
    are left out)."""
    key = context.fitted.spec.key
    if key is not None:
        rows = [row if row.get(key) is not None else {**row, key: "request"} for row in rows]
    X, _, _ = context.fitted.transform_batch(rows, with_label=False)
    return np.asarray(X, dtype=float)
