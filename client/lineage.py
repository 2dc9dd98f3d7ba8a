"""Lineage of a model version, read back from the stores: the raw batches its features
came from → the feature set → the model version (candidate, training run) → its
deployments (state, aliases, every deploy and rollback in the audit log) → the answers
it gave (online, by who answered, and batch scoring jobs).

    import asyncio
    from client.connection import Conveyor
    async def main():
        async with Conveyor.connect() as conveyor:
            found = await conveyor.lineage("cancer", "production")    # or a version number
            print([b.batch_id for b in found.batches], found.feature_set.feature_set_id,
                  found.model.version, [d.state for d in found.deployments], found.scores.n_online)
    asyncio.run(main())
"""

from __future__ import annotations

import datetime as dt
import json

import msgspec

from client.data import (FeatureSetInfo, QueryRefused, RawBatchInfo, ScoreCount, ScoreJobInfo, check_name,
                         check_version)

ALIASES = ("production", "previous", "canary")


class LineageBatch(msgspec.Struct, frozen=True, kw_only=True):
    batch: RawBatchInfo
    n_feature_rows: int             # vectors of this batch in the feature set (rows minus quarantined)


class LineageModel(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    version: int
    candidate_id: str
    name: str
    algorithm: str
    run_id: str
    n_train: int
    metrics: dict
    deployable: bool
    created_at: dt.datetime


class DeploymentEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A deploy or rollback that moved this version in (``version``) or out (``previous_version``)."""

    at: dt.datetime
    action: str                     # model.deployed, model.rollback
    actor: str
    alias: str | None               # production, canary
    version: int                    # the version that took the alias
    previous_version: int | None    # the one that had it


class LineageDeployment(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    state: str                      # live, retired
    aliases: list[str]
    replicas: int
    canary_weight: float | None
    deployed_at: dt.datetime
    retired_at: dt.datetime | None
    history: list[DeploymentEvent]


class LineageScores(msgspec.Struct, frozen=True, kw_only=True):
    n_online: int                   # online answers this version gave
    online: list[ScoreCount]        # ... by who answered (primary, fallback, cache)
    n_batch_rows: int               # rows this version scored in batch jobs
    batch_jobs: list[ScoreJobInfo]


class Lineage(msgspec.Struct, frozen=True, kw_only=True):
    batches: list[LineageBatch]
    feature_set: FeatureSetInfo | None
    model: LineageModel
    deployments: list[LineageDeployment]
    scores: LineageScores


def check_version_or_alias(version: object) -> int | str:
    """A version number or an alias (production, previous, canary).

    >>> check_version_or_alias(3), check_version_or_alias("production")
    (3, 'production')
    """
    if isinstance(version, str) and version in ALIASES:
        return version
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int):
        raise QueryRefused("version", f"a version number >= 1 or one of {', '.join(ALIASES)}; got {version!r:.80}")
    return check_version(version)


class LineageQueries:
    """The lineage method of :class:`client.connection.Conveyor`."""

    async def lineage(self, model: str, version: int | str) -> Lineage:
        """Where ``version`` (a number or an alias) of ``model`` came from and what it did;
        :class:`client.data.QueryRefused` names an unknown model or version."""
        check_name("model", model)
        version = check_version_or_alias(version)
        db = await self._db()
        async with db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            candidate = await _candidate(conn, model, version)
            return Lineage(batches=await _batches(conn, candidate), feature_set=await _feature_set(conn, candidate),
                           model=LineageModel(**{f: candidate[f] for f in LineageModel.__struct_fields__}),
                           deployments=await _deployments(conn, model, candidate["version"]),
                           scores=await _scores(conn, model, candidate))


async def _candidate(conn, model: str, version: int | str) -> dict:
    columns = ("c.model, c.version, c.candidate_id, c.name, c.algorithm, c.run_id, c.n_train, c.metrics,"
               " c.deployable, c.created_at, c.feature_set_id, c.batch_ids")
    if isinstance(version, str):
        row = await conn.fetchrow(f"SELECT {columns} FROM model_aliases a JOIN candidates c USING (candidate_id)"
                                  " WHERE a.model = $1 AND a.alias = $2", model, version)
    else:
        row = await conn.fetchrow(f"SELECT {columns} FROM candidates c WHERE c.model = $1 AND c.version = $2",
                                  model, version)
    if row is not None:
        return {**dict(row), "metrics": json.loads(row["metrics"])}
    known = await conn.fetchrow("SELECT min(version) AS low, max(version) AS high, count(*) AS n FROM candidates"
                                " WHERE model = $1", model)
    if not known["n"]:
        raise QueryRefused("model", f"no trained model {model!r}")
    if isinstance(version, str):
        raise QueryRefused("version", f"{model!r} has no {version} version")
    raise QueryRefused("version", f"{model!r} has no version {version} (it has versions {known['low']} to "
                                  f"{known['high']})")


async def _batches(conn, candidate: dict) -> list[LineageBatch]:
    rows = await conn.fetch(
        "SELECT b.batch_id, b.dataset, b.format, b.source_path, b.checksum, b.key_column, b.time_column,"
        " b.label_column, b.n_rows, b.n_rejected, b.state, b.created_at, b.completed_at,"
        " (SELECT count(*) FROM features f WHERE f.feature_set_id = $2 AND f.batch_id = b.batch_id)::int AS n_feat"
        " FROM raw_batches b WHERE b.batch_id = ANY($1::text[]) ORDER BY b.created_at, b.batch_id",
        list(candidate["batch_ids"]), candidate["feature_set_id"])
    out = []
    for row in rows:
        fields = dict(row)
        n_feat = fields.pop("n_feat")
        out.append(LineageBatch(batch=RawBatchInfo(**fields), n_feature_rows=n_feat))
    return out


async def _feature_set(conn, candidate: dict) -> FeatureSetInfo | None:
    row = await conn.fetchrow(
        "SELECT s.feature_set_id, s.dataset, s.feature_names, s.fitted_on_batch, s.created_at,"
        " (SELECT count(*) FROM features f WHERE f.feature_set_id = s.feature_set_id)::int AS n_rows,"
        " (SELECT count(DISTINCT batch_id) FROM features f WHERE f.feature_set_id = s.feature_set_id)::int"
        " AS n_batches FROM feature_sets s WHERE s.feature_set_id = $1", candidate["feature_set_id"])
    return None if row is None else FeatureSetInfo(**dict(row))


async def _deployments(conn, model: str, version: int) -> list[LineageDeployment]:
    rows = await conn.fetch(
        "SELECT d.version, d.state, d.replicas, d.canary_weight, d.deployed_at, d.retired_at,"
        " array_remove(array_agg(a.alias ORDER BY a.alias), NULL) AS aliases FROM deployments d"
        " LEFT JOIN model_aliases a ON a.model = d.model AND a.candidate_id = d.candidate_id"
        " WHERE d.model = $1 AND d.version = $2 GROUP BY d.model, d.version", model, version)
    events = await conn.fetch(
        "SELECT at, action, actor, detail->>'alias' AS alias, (detail->>'version')::int AS version,"
        " (detail->>'previous_version')::int AS previous_version FROM audit_log WHERE subject = $1"
        " AND action IN ('model.deployed', 'model.rollback')"
        " AND (detail->>'version' = $2 OR detail->>'previous_version' = $2) ORDER BY id", model, str(version))
    history = [DeploymentEvent(**dict(e)) for e in events]
    return [LineageDeployment(**dict(r), history=history) for r in rows]


async def _scores(conn, model: str, candidate: dict) -> LineageScores:
    counts = await conn.fetch(
        "SELECT model, version, answered_by, count(*)::int AS n, min(scored_at) AS first_at, max(scored_at) AS last_at"
        " FROM scores WHERE model = $1 AND version = $2 GROUP BY model, version, answered_by ORDER BY answered_by",
        model, candidate["version"])
    jobs = await conn.fetch(
        "SELECT j.job_id, j.model, j.version, j.candidate_id, j.feature_set_id, j.state, j.error, j.n_rows,"
        " (SELECT count(*) FROM batch_scores b WHERE b.job_id = j.job_id)::int AS n_stored, j.created_at,"
        " j.finished_at FROM score_jobs j WHERE j.candidate_id = $1 ORDER BY j.created_at, j.job_id",
        candidate["candidate_id"])
    online = [ScoreCount(**dict(r)) for r in counts]
    batch_jobs = [ScoreJobInfo(**dict(r)) for r in jobs]
    return LineageScores(n_online=sum(c.n for c in online), online=online,
                         n_batch_rows=sum(j.n_stored for j in batch_jobs), batch_jobs=batch_jobs)
