"""The Python client: typed request/response calls and async submission.

    >>> import asyncio                                   # doctest: +SKIP
    >>> from client.connection import Conveyor
    >>> async def main():
    ...     async with Conveyor.connect() as conveyor:
    ...         print((await conveyor.status()).state)
    ...         msg_id = await conveyor.submit(StreamEvent(stream="clicks", entity_key="u1"))
    >>> asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import msgspec

from client.audit import AuditQueries
from client.configs import ConfigQueries
from client.data import DataQueries, QueryRefused, check_message_id, check_name, check_version
from client.errors import ClusterNotRunning, SubmitRefused
from client.learning import LearningCalls
from client.lineage import LineageQueries
from client.monitoring import MonitoringQueries
from client.schedules import ScheduleQueries
from client.scoring import NAME as _NAME_RE, valid_entity_key
from client.status import ActorStatus, ClusterStatus, ServiceStatus, SpareStatus
from messages.base import Message
from messages.codec import MAX_MESSAGE_BYTES, encode
from messages.ingestion import IngestBatch, SourceAvailable
from messages.stream import Observation, StreamEvent
from messages.training import TrainModels
from storage import embedded
from storage.settings import Settings, load_settings, mask_secret

#: Where each message type is published by default.
DEFAULT_TOPICS: dict[type, str] = {StreamEvent: "events", IngestBatch: "ingest", SourceAvailable: "ingest",
                                   TrainModels: "train", Observation: "observations"}




def _config_text(config: str | Path) -> str:
    """TOML text given as text, or read from a path (a Path, or a string ending in .toml)."""
    from client.training import TrainingRefused

    if isinstance(config, Path) or (isinstance(config, str) and config.endswith(".toml") and "\n" not in config):
        path = Path(config)
        try:
            if path.stat().st_size > 64 * 1024:
                raise TrainingRefused("config", f"{path} is larger than 64 KiB")
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TrainingRefused("config", f"cannot read {path}: {exc}") from None
    if not isinstance(config, str):
        raise TrainingRefused("config", f"expected TOML text or a path, got {type(config).__name__}")
    return config


def _dataset_name(field: str, value: object) -> str:
    """``value`` if it follows the name rule, else :class:`SubmitRefused` naming ``field``."""
    from actors.batch_parse import IngestError, validate_dataset_name

    try:
        return validate_dataset_name(value)
    except IngestError as exc:
        raise SubmitRefused(field, exc.reason) from None


def _check_deploy_version(version: object) -> None:
    """None (the best deployable) or a version number (:func:`client.data.check_version`),
    else :class:`DeploymentRefused`."""
    from client.scoring import DeploymentRefused

    try:
        check_version(version, optional=True)
    except QueryRefused as exc:
        raise DeploymentRefused(exc.field, exc.reason) from None


class Conveyor(DataQueries, LineageQueries, AuditQueries, ScheduleQueries, MonitoringQueries, LearningCalls,
               ConfigQueries):
    """A connection to a running cluster. Use ``async with Conveyor.connect(...)``; the data
    service, lineage, audit, schedule, monitoring, online-learning and configuration calls come
    from client.data, .lineage, .audit, .schedules, .monitoring, .learning and .configs."""

    def __init__(self, settings: Settings, record: embedded.ClusterRecord) -> None:
        self.settings = embedded.resolve(settings, record)
        self.record = record
        self._publisher = None
        self._pool = None
        self._redis = None

    @classmethod
    def connect(cls, settings: Settings | None = None, config_path: str | Path | None = None) -> "Conveyor":
        settings = settings or load_settings(config_path)
        record = embedded.read_record(settings)
        if record is None and not all((settings.postgres_dsn, settings.redis_url, settings.kafka_bootstrap,
                                       settings.ray_address)):
            raise ClusterNotRunning(f"no cluster is recorded in {settings.state_path}; run "
                                    "`python run.py cluster start`")
        return cls(settings, record or embedded.ClusterRecord(settings.cluster_name, str(settings.state_path), 0))

    async def __aenter__(self) -> "Conveyor":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if getattr(self, "_scoring", None) is not None:
            await self._scoring.flush()
            self._scoring = None
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _db(self):
        if self._pool is None:
            from storage.postgres import connect_pool

            self._pool = await connect_pool(self.settings.postgres_dsn, max_size=2)
        return self._pool

    # --- preparation --------------------------------------------------------------------

    async def set_feature_spec(self, dataset: str, spec_toml: str) -> int:
        """Register the feature spec of ``dataset`` (checked here: ml.transforms.FeatureSpecError
        names the step and field); batches ingested from now on are prepared with it. Its
        version in the configuration service (the same spec again is the same version)."""
        from actors.wiring import signing_key_bytes
        from ml.features import FeatureSpec
        from storage.feature_store import PostgresFeatureStore

        _dataset_name("dataset", dataset)
        FeatureSpec.from_toml(spec_toml)
        db = await self._db()
        if await db.fetchval("SELECT 1 FROM feature_joins WHERE name = $1", dataset):
            raise SubmitRefused("dataset", f"{dataset!r} is a join: its feature sets are its sources' side by side")
        return await PostgresFeatureStore(db, signing_key_bytes(self.settings)).set_spec(dataset, spec_toml)

    async def define_join(self, name: str, sources: list[str], time_column: str | None = None) -> None:
        """Join the features of ``sources`` (the first is the left side) on entity key, as of
        ``time_column`` when given; it runs once every source has features, and again when one
        gets a new batch."""
        _dataset_name("name", name)
        if not isinstance(sources, list) or len(sources) < 2 or len(set(sources)) != len(sources):
            raise SubmitRefused("sources", "name at least two different datasets")
        for source in sources:
            _dataset_name("sources", source)
        if name in sources:
            raise SubmitRefused("sources", f"a join cannot be its own source ({name!r})")
        db = await self._db()
        # The join's name is the dataset of its feature sets (a model trains on `dataset = NAME`),
        # so it must not be a dataset of its own; a join is no source of another (no cycles).
        if await db.fetchval("SELECT 1 FROM feature_specs WHERE dataset = $1 UNION ALL"
                             " SELECT 1 FROM raw_batches WHERE dataset = $1 LIMIT 1", name):
            raise SubmitRefused("name", f"{name!r} is a dataset; a join needs a name of its own")
        if await db.fetchval("SELECT 1 FROM feature_joins WHERE name <> $1 AND $1 = ANY(sources)", name):
            raise SubmitRefused("name", f"{name!r} is a source of another join")
        joins = await db.fetch("SELECT name FROM feature_joins WHERE name = ANY($1::text[])", sources)
        if joins:
            raise SubmitRefused("sources", f"{joins[0]['name']!r} is a join; the sources of a join are datasets")
        await db.execute(
            "INSERT INTO feature_joins (name, sources, time_column) VALUES ($1, $2, $3) ON CONFLICT (name)"
            " DO UPDATE SET sources = EXCLUDED.sources, time_column = EXCLUDED.time_column", name, sources,
            time_column)

    async def joined_features(self, name: str) -> tuple[str | None, list[tuple[str, list[float], str | None]]]:
        """(run id, rows) of the newest run of join ``name``, in the order of its first source's
        rows; (None, []) before it first runs."""
        db = await self._db()
        run = await db.fetchrow("SELECT run_id, feature_set_id FROM join_runs WHERE join_name = $1"
                                " ORDER BY created_at DESC LIMIT 1", name)
        if run is None:
            return None, []
        if run["feature_set_id"] is not None:
            from actors.wiring import signing_key_bytes
            from storage.feature_store import PostgresFeatureStore

            _, keys, X, labels = await PostgresFeatureStore(db, signing_key_bytes(self.settings)).matrix(
                run["feature_set_id"])
            return run["run_id"], list(zip(keys, X.tolist(), labels))
        rows = await db.fetch("SELECT entity_key, vector, label FROM joined_features WHERE join_name = $1"
                              " AND run_id = $2 ORDER BY row_no", name, run["run_id"])   # a run made before
        return run["run_id"], [(r["entity_key"], list(r["vector"]), r["label"]) for r in rows]

    async def online_aggregates(self, stream: str, entity_key: str):
        """Running aggregates of an entity's numeric fields on ``stream``:
        ``{field: AggregateView(n, total, min, max)}`` (empty before its first event)."""
        import msgspec as _msgspec

        from actors.online_preparation import AggregateView
        from storage.redis_store import connect_redis

        if self._redis is None:
            self._redis = connect_redis(self.settings.redis_url)
        raw = await self._redis.get(f"conveyor:{self.settings.cluster_name}:agg:{stream}:{entity_key}")
        fields = _msgspec.json.decode(raw) if raw else {}
        return {name: AggregateView(int(v[0]), v[1], v[2], v[3]) for name, v in fields.items()}

    async def online_features(self, dataset: str, entity_key: str):
        """The latest feature vector of ``entity_key`` in the online store, or None;
        :class:`SubmitRefused` names a malformed dataset or entity key."""
        from storage.feature_store import RedisOnlineStore
        from storage.redis_store import connect_redis

        _dataset_name("dataset", dataset)
        if not valid_entity_key(entity_key):
            raise SubmitRefused("entity_key", f"1-256 printable characters; got {str(entity_key)[:80]!r}")
        if self._redis is None:
            self._redis = connect_redis(self.settings.redis_url)
        store = RedisOnlineStore(self._redis, self.settings.cluster_name, self.settings.online_ttl_s)
        return await store.get(dataset, entity_key)

    async def training_split(self, feature_set_id: str, *, strategy: str = "random", ratio: float = 0.8,
                             seed: int = 0, with_labels: bool = True, batch_ids=None):
        """The rows of a feature set split by the segregation API (``ml.segregation``):
        returns ``(split, X_train, X_test[, y_train, y_test])``; ``split.warnings`` says when a
        class is under-represented, a side is tiny or the ratio extreme."""
        import numpy as np

        from actors.preparation import typed_value
        from actors.wiring import signing_key_bytes
        from ml.segregation import split as segregate
        from storage.feature_store import PostgresFeatureStore

        store = PostgresFeatureStore(await self._db(), signing_key_bytes(self.settings))
        _, _, vectors, labels = await store.matrix(feature_set_id, batch_ids)
        X = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
        y = np.asarray([typed_value(label) for label in labels]) if with_labels else None
        result = segregate(len(X), strategy=strategy, ratio=ratio, seed=seed, labels=y, with_labels=with_labels)
        return (result, *result.take(X, y))

    # --- training and evaluation ----------------------------------------------------------

    async def train(self, config: str | Path) -> str:
        """Check a training configuration (TOML text, or the path of a ``.toml`` file) and its
        feature set here (:class:`client.training.TrainingRefused` naming the field), then
        submit it; returns the run id to follow with :meth:`wait_trained`."""
        from client.training import check_config, check_source

        plan = check_config(_config_text(config), self.settings.plugins)
        await check_source(await self._db(), plan)
        return await self.submit(TrainModels(config_toml=_config_text(config)), key=plan.config.model)

    async def training_progress(self, run_id: str):
        from client.training import progress

        check_message_id("run_id", run_id)
        return await progress(await self._db(), run_id)

    async def wait_trained(self, run_id: str, timeout_s: float = 3600, on_progress=None):
        """Wait for the run's verdict (a :class:`client.training.TrainingProgress`);
        :class:`client.training.TrainingFailed` if it failed."""
        from client.training import wait_for

        return await wait_for(await self._db(), self.settings.postgres_dsn, run_id, timeout_s, on_progress)

    async def candidates(self, model: str | None = None) -> list[dict]:
        """Every stored candidate (of ``model``): version, algorithm, params, metrics, verdict, lineage."""
        check_name("model", model, optional=True)
        return await (await self._models()).candidates(model)

    async def candidate(self, model: str, version: int | None = None) -> dict | None:
        """One candidate (the newest version when ``version`` is None), with its curves as data."""
        check_name("model", model)
        check_version(version, optional=True)
        return await (await self._models()).candidate(model, version)

    async def load_candidate(self, candidate_id: str):
        """The trained model of a candidate (its signature verified before unpickling)."""
        return await (await self._models()).load_model(candidate_id)

    async def set_training_trigger(self, dataset: str, config: str | Path) -> int:
        """Train with ``config`` whenever ``dataset`` gets a new feature batch; the trigger's
        version in the configuration service."""
        from client.training import check_config
        from storage.config_store import set_config

        _dataset_name("dataset", dataset)
        text = _config_text(config)
        check_config(text, self.settings.plugins)
        return await set_config(await self._db(), "training_trigger", dataset, text)

    async def set_serving_config(self, model: str, config: str | Path) -> int:
        """Serve ``model`` with ``config`` (serving.toml: ``replicas``, and the monitoring
        objectives ``latency_objective_ms``, ``fallback_rate_alert``, ``error_rate_alert``,
        ``accuracy_drop_margin``, ``auto_rollback``; a key left out keeps the cluster's
        setting); checked here (ml.serving_config.ServingConfigError names the field). The
        monitor holds the model to it from its next pass, deployments start its replicas;
        its version in the configuration service."""
        from client.scoring import DeploymentRefused
        from ml.serving_config import parse_serving_config
        from storage.config_store import set_config

        if not isinstance(model, str) or not _NAME_RE.match(model):
            raise DeploymentRefused("model", "letters, digits, '_', '.', '-'; starts with a letter; at most 63")
        text = _config_text(config)
        parse_serving_config(text)
        return await set_config(await self._db(), "serving", model, text)

    async def schedule_training(self, config: str | Path, every: str) -> str:
        """Train with ``config`` whenever the cron expression ``every`` is due; the schedule id."""
        import datetime as dt

        from actors.scheduler import check_cron, next_run
        from client.training import check_config

        try:
            check_cron(every)
        except ValueError as exc:
            raise SubmitRefused("every", str(exc).split(": ", 1)[1]) from None
        text = _config_text(config)
        plan = check_config(text, self.settings.plugins)
        command = TrainModels(config_toml=text)
        schedule_id = f"train-{plan.config.model[:40]}-{command.msg_id[:8]}"
        await self._schedule_change(
            "schedule.added", schedule_id, {"cron": every, "topic": "train", "model": plan.config.model},
            "INSERT INTO schedules (schedule_id, cron, topic, command, next_run_at) VALUES ($1, $2, $3, $4, $5)",
            schedule_id, every, "train", encode(command), next_run(every, dt.datetime.now(dt.timezone.utc)))
        return schedule_id

    async def _schedule_change(self, action: str, schedule_id: str, detail: dict, sql: str, *args) -> bool:
        """Change the schedules and record it in the audit log, in one transaction; whether a row changed."""
        async with (await self._db()).acquire() as conn, conn.transaction():
            changed = (await conn.execute(sql, *args)).endswith(" 1")
            if changed:
                await conn.execute("INSERT INTO audit_log (actor, action, subject, detail) VALUES ('client', $1, $2,"
                                   " $3::jsonb)", action, schedule_id, json.dumps(detail))
        return changed

    async def _models(self):
        from actors.wiring import signing_key_bytes
        from storage.model_store import PostgresModelStore

        return PostgresModelStore(await self._db(), signing_key_bytes(self.settings))

    # --- deployment and scoring --------------------------------------------------------

    async def deploy(self, model: str, version: int | None = None, *, replicas: int | None = None,
                     canary_weight: float | None = None, timeout_s: float = 300,
                     correlation_id: str | None = None) -> dict:
        """Deploy ``version`` of ``model`` (default: its newest deployable candidate) as production,
        or as a canary taking ``canary_weight`` of the traffic; returns once its replicas answer
        and the routes have moved. :class:`client.scoring.DeploymentRefused` names what is wrong.
        The result's ``correlation_id`` (yours, or a new one) is on the deployment manager's log
        lines, the ``model.deployed`` event and the audit record."""
        return await self._serve_request("deploy", timeout_s, model, version, replicas, canary_weight,
                                         correlation_id=correlation_id)

    async def rollback(self, model: str, timeout_s: float = 60, correlation_id: str | None = None) -> dict:
        """Production goes back along the chain of earlier production versions: to the newest
        one not rolled back from (a retired one is loaded again first). Rolling back again
        goes further back; ``DeploymentRefused`` when there is no earlier version."""
        return await self._serve_request("rollback", timeout_s, model, correlation_id=correlation_id)

    async def _serve_request(self, method: str, timeout_s: float, model, *args,
                             correlation_id: str | None = None) -> dict:
        import asyncio

        from client.scoring import DeploymentRefused, _cause
        from messages.base import new_id, valid_chain

        try:
            correlation_id, _ = valid_chain(new_id() if correlation_id is None else correlation_id)
        except (ValueError, TypeError) as exc:
            raise DeploymentRefused("correlation_id", str(exc).split(": ", 1)[-1]) from None
        if not correlation_id:
            raise DeploymentRefused("correlation_id", "an id, or None for a new one; got ''")
        if not isinstance(model, str) or not _NAME_RE.match(model):
            raise DeploymentRefused("model", "letters, digits, '_', '.', '-'; starts with a letter; at most 63")
        if method == "deploy":
            version, replicas, weight = args
            _check_deploy_version(version)
            if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)
                                         or not 1 <= replicas <= 16):
                raise DeploymentRefused("replicas", f"from 1 to 16; got {replicas!r}")
            if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                                       or not 0.0 < weight < 1.0):
                raise DeploymentRefused("canary_weight", f"a share between 0 and 1; got {weight!r}")
        handle = await self._cluster_actor("root.serve")
        if handle is None:
            raise ClusterNotRunning("the deployment manager (root.serve) is not running")
        try:
            done = await asyncio.wait_for(handle.request.remote(method, model, *args, correlation_id=correlation_id),
                                          timeout=timeout_s)
            if getattr(self, "_scoring", None) is not None:   # this client's next request sees what it changed
                self._scoring.forget_routes(model)
            return {**done, "correlation_id": correlation_id}
        except Exception as exc:
            cause = _cause(exc)
            if hasattr(cause, "field") and hasattr(cause, "reason"):
                raise DeploymentRefused(cause.field, cause.reason) from None
            raise

    async def deployments(self, model: str | None = None) -> list[dict]:
        """Live and retired versions with their aliases."""
        check_name("model", model, optional=True)
        rows = await (await self._db()).fetch(
            "SELECT d.model, d.version, d.candidate_id, d.replicas, d.state, d.canary_weight, d.deployed_at,"
            " d.retired_at, array_remove(array_agg(a.alias ORDER BY a.alias), NULL) AS aliases FROM deployments d"
            " LEFT JOIN model_aliases a ON a.model = d.model AND a.candidate_id = d.candidate_id"
            " WHERE $1::text IS NULL OR d.model = $1 GROUP BY d.model, d.version ORDER BY d.model, d.version",
            model)
        return [dict(r) for r in rows]

    async def score(self, model: str, features: dict | None = None, *, entity_key: str | None = None,
                    version: int | str | None = None, deadline_ms: float = 100.0, request_id: str | None = None):
        """Score one request: a typed :class:`client.scoring.ScoreResult` (which version answered,
        the fallback flag, the latency, the request id), always within ``deadline_ms``; or
        :class:`client.scoring.ScoringRefused` for a bad request / ScoringFailed. ``request_id``
        (default: a new one) is what an observed outcome names as its ``event_id`` to be joined
        to this answer by the monitor."""
        from messages.base import MessageId

        if request_id is not None:
            try:
                msgspec.convert(request_id, MessageId)
            except msgspec.ValidationError:
                from client.scoring import ScoringRefused

                raise ScoringRefused("request_id", "1-64 letters, digits, '_', '.', ':', '-'") from None
        router = await self._router()
        return await router.score(model, features, entity_key, version, deadline_ms, request_id)

    async def get_score(self, request_id: str):
        """The recorded answer of a request (polling), or None until it is stored."""
        from client.scoring import ScoreResult

        check_message_id("request_id", request_id)
        row = await (await self._db()).fetchrow(
            "SELECT request_id, model, version, score, label, answered_by, fallback, latency_ms, reason FROM scores"
            " WHERE request_id = $1", request_id)
        return None if row is None else ScoreResult(**dict(row))

    async def subscribe(self, model: str | None = None):
        """Every answer recorded from now on (push), as :class:`messages.serving.ScoreRecorded`."""
        import time as _time

        from messages.codec import decode
        from messages.serving import ScoreRecorded
        from storage.kafka import PartitionReader

        since = _time.time() - 1.0
        offset = await (await self._db()).fetchval(
            "SELECT next_offset FROM consumer_offsets WHERE consumer = 'score-recorder' AND topic = 'scores'"
            " AND partition = 0") or 0
        reader = PartitionReader(self.settings.kafka_bootstrap, "scores", 0, self.settings.kafka_fetch_max_wait_ms)
        await reader.start(offset)
        try:
            while True:
                for record in await reader.read(timeout_ms=200, max_records=500):
                    event = decode(record.value)
                    if isinstance(event, ScoreRecorded) and event.produced_at >= since and (
                            model is None or event.model == model):
                        yield event
        finally:
            await reader.stop()

    async def batch_score(self, model: str, version: int | None = None, feature_set_id: str | None = None) -> str:
        """Score every row of a feature set (default: the one the version was trained on) with
        ``version`` of ``model`` (default: production) as an asynchronous job; its id."""
        from client.scoring import DeploymentRefused
        from messages.serving import ScoreBatch

        if not isinstance(model, str) or not _NAME_RE.match(model):
            raise DeploymentRefused("model", "letters, digits, '_', '.', '-'; starts with a letter; at most 63")
        _check_deploy_version(version)
        if feature_set_id is not None and not re.fullmatch(r"[0-9a-f]{8,64}", str(feature_set_id)):
            raise DeploymentRefused("feature_set_id", "8-64 lowercase hex digits")
        return await self.submit(ScoreBatch(model=model, version=version, feature_set_id=feature_set_id),
                                 topic="score.jobs", key=model)

    async def batch_score_progress(self, job_id: str) -> dict | None:
        check_message_id("job_id", job_id)
        row = await (await self._db()).fetchrow(
            "SELECT j.job_id, j.model, j.version, j.feature_set_id, j.state, j.error, j.n_rows,"
            " coalesce(sum(p.rows_done), 0)::int AS rows_done FROM score_jobs j LEFT JOIN score_job_progress p"
            " USING (job_id) WHERE j.job_id = $1 GROUP BY j.job_id", job_id)
        return None if row is None else dict(row)

    async def wait_batch_scored(self, job_id: str, timeout_s: float = 3600, on_progress=None) -> dict:
        """Wait for the job (its progress dict), seen when it ends (:func:`client.finished.watch`);
        :class:`client.scoring.ScoringFailed` if it failed."""
        from client.finished import watch
        from client.scoring import ScoringFailed

        found = await watch(self.settings.postgres_dsn, "score_jobs", job_id, lambda: self.batch_score_progress(job_id),
                            lambda p: p["state"], timeout_s, on_progress)
        if found is None:
            raise TimeoutError(f"batch scoring job {job_id} not done after {timeout_s:.0f} s")
        if found["state"] == "failed":
            raise ScoringFailed(f"batch scoring job {job_id} failed: {found['error']}")
        return found

    async def batch_scores(self, job_id: str) -> list[dict]:
        """The job's results: batch, line, entity key, score, label (in the feature set's order)."""
        rows = await (await self._db()).fetch("SELECT batch_id, line_no, entity_key, score, label FROM batch_scores"
                                              " WHERE job_id = $1 ORDER BY batch_id, line_no", job_id)
        return [dict(r) for r in rows]

    async def _router(self):
        if getattr(self, "_scoring", None) is None:
            from client.scoring import Router
            from storage.redis_store import connect_redis

            self._join_ray()
            if self._redis is None:
                self._redis = connect_redis(self.settings.redis_url)
            publisher = await self._ensure_publisher()
            self._scoring = Router(self.settings, self._redis, publisher.publish_many)
        return self._scoring

    # --- offline ingestion ---------------------------------------------------------------

    async def ingest(self, dataset: str, path: str | Path, *, format: str | None = None, key: str | None = None,
                     time: str | None = None, label: str | None = None) -> str:
        """Check the source here (typed :class:`client.ingestion.IngestRefused` naming the field),
        then submit it; returns the request id to follow with :meth:`wait_ingested`."""
        from client.ingestion import check_source

        absolute, fmt = check_source(dataset, path, format, key, time, label)
        command = IngestBatch(dataset=dataset, path=absolute, format=fmt, key_column=key, time_column=time,
                              label_column=label)
        return await self.submit(command, key=dataset)

    async def schedule_ingest(self, dataset: str, path: str | Path, every: str, *, format: str | None = None,
                              key: str | None = None, time: str | None = None, label: str | None = None) -> str:
        """Ingest the source whenever the cron expression ``every`` is due (an unchanged file is
        recognised and stored once); returns the schedule id."""
        import datetime as dt

        from actors.scheduler import check_cron, next_run
        from client.ingestion import check_source

        try:
            check_cron(every)
        except ValueError as exc:
            raise SubmitRefused("every", str(exc).split(": ", 1)[1]) from None
        absolute, fmt = check_source(dataset, path, format, key, time, label)
        command = IngestBatch(dataset=dataset, path=absolute, format=fmt, key_column=key, time_column=time,
                              label_column=label)
        schedule_id = f"ingest-{dataset[:40]}-{command.msg_id[:8]}"
        first = next_run(every, dt.datetime.now(dt.timezone.utc))
        await self._schedule_change(
            "schedule.added", schedule_id, {"cron": every, "topic": "ingest", "dataset": dataset, "path": absolute},
            "INSERT INTO schedules (schedule_id, cron, topic, command, next_run_at) VALUES ($1, $2, $3, $4, $5)",
            schedule_id, every, "ingest", encode(command), first)
        return schedule_id

    async def schedules(self) -> list[dict]:
        rows = await (await self._db()).fetch(
            "SELECT schedule_id, cron, topic, next_run_at, last_run_at, n_runs FROM schedules ORDER BY schedule_id")
        return [dict(r) for r in rows]

    async def remove_schedule(self, schedule_id: str) -> bool:
        return await self._schedule_change("schedule.removed", schedule_id, {},
                                           "DELETE FROM schedules WHERE schedule_id = $1", schedule_id)

    async def ingest_progress(self, request_id: str):
        from client.ingestion import ingest_progress

        check_message_id("request_id", request_id)
        return await ingest_progress(await self._db(), request_id)

    async def wait_ingested(self, request_id: str, dataset: str = "", timeout_s: float = 3600,
                            on_progress=None):
        """Wait until the request is complete (or a duplicate); :class:`IngestFailed` if it failed."""
        from client.ingestion import wait_for

        return await wait_for(await self._db(), request_id, dataset, timeout_s, on_progress)

    # --- request/response ----------------------------------------------------------

    async def _cluster_actor(self, name: str):
        """The handle of one of the cluster's named actors, or None when it is not running.
        Looking it up is a GCS call: it runs in a thread, so that the caller's other requests
        (scoring) go on meanwhile."""
        self._join_ray()
        from actors.remote import RayRuntime

        return await asyncio.to_thread(RayRuntime(self.settings.cluster_name).lookup, name)

    def _join_ray(self) -> None:
        embedded.prepare_ray_environment(self.record.ray_token_path)
        from actors.remote import connect

        connect(self.settings.ray_address, self.settings.cluster_name)

    def services(self) -> list[ServiceStatus]:
        fresh = embedded.read_record(self.settings)
        if fresh is not None and fresh.started_at == self.record.started_at:
            self.record = fresh    # services started again in place (cluster start's repair) have new pids
        out = []
        for name, service in sorted(self.record.services.items()):
            address = service.address if service.embedded else getattr(self.settings, {
                "postgres": "postgres_dsn", "redis": "redis_url", "kafka": "kafka_bootstrap",
                "ray": "ray_address"}[name]) or ""
            out.append(ServiceStatus(name=name, embedded=service.embedded,
                                     alive=embedded.service_alive(service) if service.embedded else True,
                                     address=mask_secret(address) if "@" in address else address))
        return out

    async def status(self, timeout_s: float = 10.0) -> ClusterStatus:
        """The supervision tree with every actor's state, restarts and checkpoint."""
        services = self.services()
        base = dict(cluster_name=self.settings.cluster_name, state_dir=str(self.settings.state_path),
                    services=services)
        if any(s.name == "ray" and not s.alive for s in services):
            return ClusterStatus(state="degraded", healthy=False, **base)
        services_alive = all(s.alive for s in services)   # the tree is still shown while one is down
        self._join_ray()
        from actors.remote import RayRuntime
        from supervisors.tree import ROOT

        runtime = RayRuntime(self.settings.cluster_name)
        handle = await asyncio.to_thread(runtime.lookup, ROOT)    # a blocking GCS call: not on the loop
        if handle is None:
            return ClusterStatus(state="stopped", healthy=False, **base)
        raw, spares = await asyncio.gather(runtime.call(handle, "status", timeout_s), self._spares(runtime))
        tree = msgspec.convert(raw, ActorStatus)
        healthy = services_alive and all(a.state == "running" for a in ClusterStatus(state="", healthy=False,
                                                                                     tree=tree, **base).actors())
        return ClusterStatus(state="running" if healthy else "degraded", healthy=healthy, tree=tree,
                             spares=spares, **base)

    async def _spares(self, runtime) -> list[SpareStatus]:
        """The spare processes no worker took (a spare is not part of the tree's health)."""
        async def spare(name: str, handle) -> SpareStatus:
            try:     # a spare whose process is still being created answers only once it runs
                beat = await runtime.call(handle, "ping", 0.1)
                return SpareStatus(name=name, state=beat["state"], pid=beat["pid"])
            except asyncio.TimeoutError:
                return SpareStatus(name=name, state="starting")
            except Exception:
                return SpareStatus(name=name, state="unreachable")

        found = await asyncio.gather(*(spare(name, handle) for name, handle in
                                       await asyncio.to_thread(runtime.free_spares)))
        return sorted(found, key=lambda s: s.name)

    # --- async submission ---------------------------------------------------------------

    async def submit(self, message: Message, topic: str | None = None, key: str | None = None) -> str:
        """Publish ``message`` to the broker; returns its ``msg_id`` once the broker has it."""
        if not isinstance(message, Message):
            raise SubmitRefused("message", f"expected a Conveyor message, got {type(message).__name__}")
        topic = topic or DEFAULT_TOPICS.get(type(message))
        if topic is None:
            raise SubmitRefused("topic", f"no default topic for {type(message).__name__}; name one")
        try:
            payload = encode(message)
        except UnicodeEncodeError:
            raise SubmitRefused("message", "holds text that is not valid Unicode (an unpaired surrogate)") from None
        if len(payload) > MAX_MESSAGE_BYTES:
            raise SubmitRefused("message", f"{len(payload)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
        if key is None and isinstance(message, (StreamEvent, Observation)):
            key = message.entity_key
        publisher = await self._ensure_publisher()
        await publisher.publish_raw(topic, payload, key.encode() if key else None)
        return message.msg_id

    async def submit_raw(self, topic: str, payload: bytes, key: bytes | None = None,
                         partition: int | None = None) -> None:
        """Publish bytes as they are (tools and tests that need to send what a decoder refuses,
        or to one chosen partition)."""
        publisher = await self._ensure_publisher()
        await publisher.publish_raw(topic, payload, key, partition)

    async def _ensure_publisher(self):
        if self._publisher is None:
            from storage.doorbell import DoorbellRinger
            from storage.kafka import KafkaPublisher
            from storage.redis_store import connect_redis

            if self._redis is None:
                self._redis = connect_redis(self.settings.redis_url)
            publisher = KafkaPublisher(self.settings.kafka_bootstrap,
                                       ringer=DoorbellRinger(self._redis, self.settings.cluster_name))
            await publisher.start()
            self._publisher = publisher
        return self._publisher
