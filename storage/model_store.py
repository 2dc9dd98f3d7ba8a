"""The candidate store (PostgreSQL): training runs, trained candidates with signed
artifacts and their lineage, partition checkpoints, and version aliases.

Artifacts and checkpoints are pickled models signed with HMAC-SHA256: a signature
that does not verify is refused before anything is unpickled (DESIGN §4).
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from typing import Any

import asyncpg

from storage.signing import sign, verify


def dump_signed(key: bytes, obj: Any) -> tuple[bytes, bytes]:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return data, sign(key, data)


def load_signed(key: bytes, data: bytes, signature: bytes) -> Any:
    verify(key, data, signature)                      # SignatureMismatch before unpickling
    return pickle.loads(data)


@dataclass(frozen=True)
class OpenRun:
    run_id: str
    model: str
    config_toml: str
    feature_set_id: str | None
    state: str


@dataclass(frozen=True)
class NewCandidate:
    candidate_id: str
    run_id: str
    model: str
    name: str
    algorithm: str
    params: dict
    summary: dict
    search: list
    metrics: dict
    curves: bytes | None
    artifact: bytes
    feature_set_id: str
    batch_ids: list[str]
    n_train: int
    partitions: int
    blocks: int
    attempts: int
    started_at: float
    finished_at: float
    fit_s: float


_CANDIDATE_COLUMNS = ("candidate_id, run_id, model, version, name, algorithm, params, summary, search, metrics,"
                      " feature_set_id, batch_ids, n_train, partitions, blocks, attempts, started_at, finished_at,"
                      " fit_s, deployable, created_at")


def _plain(row: asyncpg.Record) -> dict:
    out = dict(row)
    for name in ("params", "summary", "search", "metrics", "split_warnings"):
        if isinstance(out.get(name), str):
            out[name] = json.loads(out[name])
    return out


def _json(value: Any) -> str:
    """JSON text for a jsonb column; NaN and infinities (undefined metrics) become null."""
    return json.dumps(_finite(value), default=_default, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _default(value: Any):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class PostgresModelStore:
    def __init__(self, pool: asyncpg.Pool, signing_key: bytes) -> None:
        self._pool = pool
        self._key = signing_key

    # --- runs ----------------------------------------------------------------------------

    @staticmethod
    async def add_run(conn, run_id: str, model: str, config_toml: str, feature_set_id: str | None,
                      state: str = "pending", error: str | None = None) -> None:
        await conn.execute(
            "INSERT INTO training_runs (run_id, model, config_toml, feature_set_id, state, error, finished_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $5 = 'failed' THEN now() END)"
            " ON CONFLICT (run_id) DO NOTHING", run_id, model, config_toml, feature_set_id, state, error)

    async def open_runs(self) -> list[OpenRun]:
        rows = await self._pool.fetch(
            "SELECT run_id, model, config_toml, feature_set_id, state FROM training_runs"
            " WHERE state IN ('pending', 'running') ORDER BY requested_at, run_id")
        return [OpenRun(**dict(r)) for r in rows]

    async def start_run(self, run_id: str, **fields: Any) -> None:
        fields["split_warnings"] = _json(fields.get("split_warnings", []))
        names = list(fields)
        sets = ", ".join(f"{n} = ${i + 2}" + ("::jsonb" if n == "split_warnings" else "") for i, n in enumerate(names))
        await self._pool.execute(f"UPDATE training_runs SET state = 'running', started_at = coalesce(started_at,"
                                 f" now()), {sets} WHERE run_id = $1", run_id, *fields.values())

    async def fail_run(self, run_id: str, error: str) -> None:
        await self._pool.execute("UPDATE training_runs SET state = 'failed', error = $2, finished_at = now()"
                                 " WHERE run_id = $1 AND state <> 'done'", run_id, error[:4000])

    @staticmethod
    async def finish_run(conn, run_id: str, best: str | None, score: float | None, reference: str,
                         reference_score: float | None, deployable: bool) -> None:
        await conn.execute(
            "UPDATE training_runs SET state = 'done', finished_at = now(), best_candidate = $2, score = $3,"
            " reference = $4, reference_score = $5, deployable = $6 WHERE run_id = $1",
            run_id, best, score, reference, reference_score, deployable)
        if best is not None and deployable:
            await conn.execute("UPDATE candidates SET deployable = true WHERE candidate_id = $1", best)

    async def run(self, run_id: str) -> dict | None:
        row = await self._pool.fetchrow("SELECT * FROM training_runs WHERE run_id = $1", run_id)
        return None if row is None else _plain(row)

    # --- candidates ------------------------------------------------------------------------

    async def add_candidate(self, conn, c: NewCandidate) -> int:
        """Store a trained candidate as the next version of its model; returns the version
        (an existing candidate of the same run and name keeps its version: a replay)."""
        known = await conn.fetchval("SELECT version FROM candidates WHERE run_id = $1 AND name = $2", c.run_id, c.name)
        if known is not None:
            return known
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('candidates:' || $1))", c.model)
        version = await conn.fetchval("SELECT coalesce(max(version), 0) + 1 FROM candidates WHERE model = $1", c.model)
        await conn.execute(
            "INSERT INTO candidates (candidate_id, run_id, model, version, name, algorithm, params, summary, search,"
            " metrics, curves, artifact, signature, feature_set_id, batch_ids, n_train, partitions, blocks, attempts,"
            " started_at, finished_at, fit_s) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb,"
            " $10::jsonb, $11, $12, $13, $14, $15, $16, $17, $18, $19, to_timestamp($20), to_timestamp($21), $22)",
            c.candidate_id, c.run_id, c.model, version, c.name, c.algorithm, _json(c.params), _json(c.summary),
            _json(c.search), _json(c.metrics), c.curves, c.artifact, sign(self._key, c.artifact), c.feature_set_id,
            c.batch_ids, c.n_train, c.partitions, c.blocks, c.attempts, c.started_at, c.finished_at, c.fit_s)
        return version

    async def run_candidates(self, run_id: str) -> list[dict]:
        rows = await self._pool.fetch(f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE run_id = $1"
                                      " ORDER BY version", run_id)
        return [_plain(r) for r in rows]

    async def candidates(self, model: str | None = None) -> list[dict]:
        rows = await self._pool.fetch(
            f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE $1::text IS NULL OR model = $1"
            " ORDER BY model, version", model)
        return [_plain(r) for r in rows]

    async def candidate(self, model: str, version: int | None = None) -> dict | None:
        """One candidate of ``model``: ``version``, or the newest."""
        row = await self._pool.fetchrow(
            f"SELECT {_CANDIDATE_COLUMNS}, curves FROM candidates WHERE model = $1"
            " AND ($2::int IS NULL OR version = $2) ORDER BY version DESC LIMIT 1", model, version)
        return None if row is None else _plain(row)

    async def artifact_bytes(self, candidate_id: str) -> bytes:
        """The candidate's artifact, its signature verified (SignatureMismatch otherwise)."""
        row = await self._pool.fetchrow("SELECT artifact, signature FROM candidates WHERE candidate_id = $1",
                                        candidate_id)
        if row is None:
            raise LookupError(f"candidate_id: no candidate {candidate_id!r}")
        verify(self._key, bytes(row["artifact"]), bytes(row["signature"]))
        return bytes(row["artifact"])

    async def load_model(self, candidate_id: str):
        """The candidate's model, its signature verified before it is unpickled."""
        row = await self._pool.fetchrow("SELECT artifact, signature FROM candidates WHERE candidate_id = $1",
                                        candidate_id)
        if row is None:
            raise LookupError(f"candidate_id: no candidate {candidate_id!r}")
        return load_signed(self._key, bytes(row["artifact"]), bytes(row["signature"]))

    async def alias(self, model: str, alias: str) -> dict | None:
        row = await self._pool.fetchrow(
            f"SELECT {', '.join('c.' + c.strip() for c in _CANDIDATE_COLUMNS.split(','))} FROM model_aliases a"
            " JOIN candidates c USING (candidate_id) WHERE a.model = $1 AND a.alias = $2", model, alias)
        return None if row is None else _plain(row)

    # --- partition checkpoints -------------------------------------------------------------

    async def save_checkpoint(self, owner: str, rows_done: int, state: Any) -> None:
        data, signature = dump_signed(self._key, state)
        await self._pool.execute(
            "INSERT INTO training_checkpoints (owner, rows_done, state, signature) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (owner, rows_done) DO NOTHING", owner, rows_done, data, signature)

    async def latest_checkpoint(self, owner: str) -> tuple[int, Any] | None:
        row = await self._pool.fetchrow("SELECT rows_done, state, signature FROM training_checkpoints"
                                        " WHERE owner = $1 ORDER BY rows_done DESC LIMIT 1", owner)
        if row is None:
            return None
        return row["rows_done"], load_signed(self._key, bytes(row["state"]), bytes(row["signature"]))

    async def checkpoints(self, owner_prefix: str) -> list[tuple[str, int]]:
        rows = await self._pool.fetch("SELECT owner, rows_done FROM training_checkpoints WHERE starts_with(owner, $1)"
                                      " ORDER BY owner, rows_done", owner_prefix)
        return [(r["owner"], r["rows_done"]) for r in rows]
