"""The training coordinator: ``train.models`` commands become training runs.

A command is recorded as a run (with the consumed offset, in one transaction); runs
are then executed one at a time, oldest first, outside the consume loop. A run loads
its feature set, splits it with the segregation API, hosts one actor per candidate
(all in parallel; they spread their searches over the cluster), stores each trained
candidate as the next version of the model with a ``model.trained`` event, then
compares the best with the production version (or a baseline) and marks it deployable
when it wins by the margin (``model.evaluated``).

A coordinator that restarts finds its unfinished runs in the store and resumes them:
candidates already stored are kept, the others train again (data-parallel partitions
from their checkpoints).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import time

import numpy as np

from actors.partition_worker import PartitionWorker
from messages.codec import encode, printable
from messages.training import ModelEvaluated, ModelTrained, TrainModels
from storage.base import BatchEffects
from storage.kafka import Record
from storage.settings import Settings


def candidate_id(run_id: str, name: str) -> str:
    """The stored id of candidate ``name`` of run ``run_id`` (the same on a resumed run).

    >>> len(candidate_id("r1", "forest")), candidate_id("r1", "a") != candidate_id("r1", "b")
    (24, True)
    """
    return hashlib.sha256(f"{run_id}\x00{name}".encode()).hexdigest()[:24]


#: Seconds after its start before the coordinator starts its warm candidate actors.
WARM_AFTER_S = 20.0


class RunFailed(Exception):
    """A run that cannot go on; the message says why, naming the field."""


class TrainingCoordinator(PartitionWorker):
    consumer = "training"

    def __init__(self, settings: Settings, name: str, topic: str = "train", partition: int = 0,
                 poll_s: float = 0.5) -> None:
        super().__init__(settings, name, topic, partition)
        self.poll_s = poll_s
        self.models = None
        self.features = None
        self._running: asyncio.Task | None = None
        self._last_poll = 0.0
        self._recorded = False          # a command was recorded: look for its run now, not at the next poll
        self._warm = None
        self._metrics_imported: asyncio.Task | None = None
        self.started_at_monotonic = time.monotonic()
        self.progress: dict = {}

    async def open(self) -> None:
        from actors.wiring import signing_key_bytes
        from storage.feature_store import PostgresFeatureStore
        from storage.model_store import PostgresModelStore

        self.models = PostgresModelStore(self.pool, signing_key_bytes(self.settings))
        self.features = PostgresFeatureStore(self.pool, signing_key_bytes(self.settings))
        from actors.remote import Compute
        from actors.training_tasks import WarmPool

        from actors.wiring import import_plugins

        import_plugins(self.settings.plugins)
        self._warm = WarmPool(Compute(self.settings.cluster_name), self.settings.training_warm_actors,
                              self.settings.plugins, self.log, limit=self.settings.training_warm_actors_max)

    async def handle(self, records: list[Record]) -> BatchEffects:
        from ml.training_config import TrainingConfigError, parse_config, plan_training
        from storage.model_store import PostgresModelStore

        effects = BatchEffects()
        for record in records:
            command = self.expect(record, effects, TrainModels)
            if command is None:
                continue
            try:
                config = parse_config(command.config_toml)
                plan_training(config)
                model, state, error = config.model, "pending", None
            except TrainingConfigError as exc:   # recorded as a failed run: whoever waits sees why
                model, state, error = "-", "failed", printable(str(exc))

            async def write(conn, c=command, m=model, s=state, e=error) -> None:
                await PostgresModelStore.add_run(conn, c.msg_id, m, c.config_toml, c.feature_set_id, s, e)

            effects.writes.append(write)
            self._recorded = True
        return effects

    async def step(self) -> None:
        await super().step()
        idle = self._running is None or self._running.done()
        if idle:
            self._refill_warm_pool()
        if idle and (self._recorded or time.monotonic() - self._last_poll >= self.poll_s):
            self._last_poll, self._recorded = time.monotonic(), False
            runs = await self.models.open_runs()
            if runs:
                self._running = asyncio.get_running_loop().create_task(self._execute(runs[0]))

    def _refill_warm_pool(self) -> None:
        """Between runs, once the cluster's start has settled; the first time, scikit-learn's
        metrics are imported too (in a thread: the loop goes on), which a run's verdict
        needs: imported by the first run instead, they added ~1.2 s to it here."""
        if time.monotonic() - self.started_at_monotonic > WARM_AFTER_S:
            self._warm.fill()
            if self._metrics_imported is None:
                self._metrics_imported = asyncio.get_running_loop().create_task(
                    asyncio.to_thread(importlib.import_module, "sklearn.metrics"))

    async def teardown(self) -> None:
        if self._warm is not None:
            self._warm.close()
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)
        await super().teardown()

    def heartbeat(self) -> dict:
        beat = super().heartbeat()
        p = self.progress
        if p:
            beat["activity"] = (f"training {p['model']} (run {p['run_id'][:12]}): {p['trained']}/{p['candidates']}"
                                f" candidates trained" + (f", {p['failed']} failed" if p.get("failed") else "")
                                + (f", {p['fitting']} fitting" if p.get("fitting") else ""))
        return beat

    # --- one run --------------------------------------------------------------------------

    async def _execute(self, run) -> None:
        try:
            await self._run(run)
        except asyncio.CancelledError:
            raise
        except RunFailed as exc:
            await self.models.fail_run(run.run_id, printable(str(exc)))
            self.log.warning("training run failed", run=run.run_id, error=str(exc))
        except Exception as exc:
            await self.models.fail_run(run.run_id, printable(f"{type(exc).__name__}: {exc}"))
            self.log.error("training run failed", run=run.run_id, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.progress = {}
            self._refill_warm_pool()    # at once: the next run may come before the loop's next step

    async def _feature_set(self, config, override: str | None) -> str:
        fsid = override or config.feature_set
        if fsid is None:
            fsid = await self.pool.fetchval("SELECT feature_set_id FROM feature_sets WHERE dataset = $1"
                                            " ORDER BY created_at DESC LIMIT 1", config.dataset)
            if fsid is None:
                raise RunFailed(f"dataset: {config.dataset!r} has no feature set yet (set its feature spec and "
                                "ingest a batch)")
        return fsid

    async def _run(self, run) -> None:
        from actors.preparation import typed_value
        from ml.algorithms import AlgorithmError, check_training_data
        from ml.segregation import SegregationError, split
        from ml.training_config import TrainingConfigError, parse_config, plan_training

        try:
            plan = plan_training(parse_config(run.config_toml))
        except TrainingConfigError as exc:
            raise RunFailed(str(exc)) from None
        config = plan.config
        fsid = await self._feature_set(config, run.feature_set_id)
        try:
            names, _, vectors, labels = await self.features.matrix(fsid)
        except LookupError as exc:
            raise RunFailed(str(exc)) from None
        batch_ids = [r["batch_id"] for r in await self.pool.fetch(
            "SELECT DISTINCT batch_id FROM features WHERE feature_set_id = $1 ORDER BY batch_id", fsid)]
        X = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), len(names))
        y = None if plan.task == "clustering" else np.asarray([typed_value(v) for v in labels])
        if len(X) == 0:
            raise RunFailed(f"feature_set: {fsid} has no rows")
        try:
            check_training_data(X, y, plan.task)
        except AlgorithmError as exc:
            raise RunFailed(f"feature_set: {fsid}: {exc}") from None
        try:
            parts = split(len(X), strategy=config.split.strategy, ratio=config.split.ratio, seed=config.split.seed,
                          labels=y if y is not None else None, with_labels=y is not None)
        except SegregationError as exc:
            raise RunFailed(f"split: {exc}") from None
        X_train, X_test = X[parts.train_idx], X[parts.test_idx]
        y_train = None if y is None else y[parts.train_idx]
        y_test = None if y is None else y[parts.test_idx]
        if len(X_train) == 0 or len(X_test) == 0:
            raise RunFailed(f"split: {len(X_train)} training and {len(X_test)} test rows; both sides need rows")
        await self.models.start_run(run.run_id, feature_set_id=fsid, task=plan.task, metric=plan.metric,
                                    margin=config.margin, n_candidates=len(plan.candidates), n_train=len(X_train),
                                    n_test=len(X_test), split_warnings=[str(w) for w in parts.warnings])
        stored = {c["name"] for c in await self.models.run_candidates(run.run_id)}
        todo = [c for c in plan.candidates if c.name not in stored]
        self._warm.expect(len(plan.candidates))
        self.progress = {"run_id": run.run_id, "model": config.model, "candidates": len(plan.candidates),
                         "trained": len(stored), "failed": 0}
        self.log.info("training run started", run=run.run_id, model=config.model, feature_set=fsid,
                      candidates=len(plan.candidates), resumed=len(stored))
        data = (X_train, y_train, X_test, y_test, list(names))
        errors = await self._train_all(run, plan, todo, fsid, batch_ids, data)
        await self._evaluate(run, plan, fsid, X_train, y_train, X_test, y_test, errors)

    async def _train_all(self, run, plan, todo, fsid, batch_ids, data) -> list[str]:
        from actors.remote import ActorGone, Compute
        from actors.training_tasks import with_retries

        compute = Compute(self.settings.cluster_name)
        refs = [compute.put(part) for part in data[:4]]
        config = plan.config
        errors: list[str] = []
        # as many fits at once as the cluster has CPUs: the others wait for a slot instead of
        # sharing the CPUs (the run ends when its longest fit ends; sharing only slows it)
        slots = asyncio.Semaphore(self.settings.training_parallel_candidates or await compute.cluster_cpus())

        async def train(index: int, candidate) -> None:
            async with slots:
                self.progress["fitting"] = self.progress.get("fitting", 0) + 1
                try:
                    await train_now(index, candidate)
                finally:
                    self.progress["fitting"] -= 1

        async def train_now(index: int, candidate) -> None:
            attempts = 0

            async def attempt(n: int):
                nonlocal attempts
                attempts = n
                handle = await self._warm.take("actors.training_tasks:CandidateTrainer", self.settings, run.run_id,
                                               candidate, plan.task, plan.metric, config.seed + index,
                                               config.validation_ratio, config.checkpoint_every, config.max_attempts)
                try:
                    result = await compute.call(handle, "run", *refs, data[4])
                except BaseException:
                    self._warm.discard(handle)
                    raise
                await self._warm.give_back(handle)    # serves a later candidate
                return result

            try:
                result = await with_retries(config.max_attempts, attempt, (ActorGone, OSError, TimeoutError),
                                            log=self.log, what=candidate.name)
            except Exception as exc:
                errors.append(printable(f"{candidate.name}: {type(exc).__name__}: {exc}")[:500])
                self.progress["failed"] = self.progress.get("failed", 0) + 1
                self.log.warning("candidate failed", run=run.run_id, candidate=candidate.name, error=errors[-1])
                return
            await self._store(run, plan, candidate, fsid, batch_ids, len(data[0]), result, attempts)
            self.progress["trained"] = self.progress.get("trained", 0) + 1

        await asyncio.gather(*(train(i, c) for i, c in enumerate(plan.candidates) if c in todo))
        return errors

    async def _store(self, run, plan, candidate, fsid, batch_ids, n_train, result, attempts) -> None:
        from storage.model_store import NewCandidate

        cid = candidate_id(run.run_id, candidate.name)
        new = NewCandidate(
            candidate_id=cid, run_id=run.run_id, model=plan.config.model, name=candidate.name,
            algorithm=candidate.algorithm, params=result["params"], summary=result["summary"],
            search=result["search"], metrics=result["metrics"], curves=result["curves"], artifact=result["artifact"],
            feature_set_id=fsid, batch_ids=batch_ids, n_train=n_train, partitions=candidate.partitions,
            blocks=candidate.blocks, attempts=attempts, started_at=result["started_at"],
            finished_at=result["finished_at"], fit_s=result["fit_s"])
        score = result["metrics"].get(plan.metric)
        async with self.pool.acquire() as conn, conn.transaction():
            version = await self.models.add_candidate(conn, new)
            event = ModelTrained(model=plan.config.model, run_id=run.run_id, candidate_id=cid, candidate=candidate.name,
                                 algorithm=candidate.algorithm, version=version, feature_set_id=fsid, n_train=n_train,
                                 fit_s=result["fit_s"], metric=plan.metric,
                                 score=score if isinstance(score, float) else None, correlation_id=run.run_id,
                                 causation_id=run.run_id)
            await conn.execute("INSERT INTO outbox (topic, msg_key, payload, dedup_key) VALUES ($1, $2, $3, $4)"
                               " ON CONFLICT (dedup_key) DO NOTHING", "models", plan.config.model.encode(),
                               encode(event), f"trained:{cid}")
        self.log.info("candidate trained", run=run.run_id, candidate=candidate.name, version=version,
                      metric=plan.metric, score=score, fit_s=round(result["fit_s"], 3))

    async def _evaluate(self, run, plan, fsid, X_train, y_train, X_test, y_test, errors) -> None:
        from ml.training import best_of, deployable, evaluate_model, reference_score
        from storage.model_store import PostgresModelStore

        candidates = await self.models.run_candidates(run.run_id)
        if not candidates:
            raise RunFailed("candidates: none could be trained: " + "; ".join(errors))
        scores = {c["candidate_id"]: c["metrics"].get(plan.metric) for c in candidates}
        scores = {k: (float("nan") if v is None else float(v)) for k, v in scores.items()}
        best = best_of(scores, plan.metric)
        score = None if best is None else scores[best]
        production = await self.models.alias(plan.config.model, "production")
        if production is not None and production["run_id"] != run.run_id:
            reference = f"production v{production['version']}"
            if production["feature_set_id"] == fsid:   # the same evaluation set for both
                model = await self.models.load_model(production["candidate_id"])
                measured = await asyncio.to_thread(evaluate_model, model, plan.task, X_test, y_test)
                ref_score = measured.metrics.get(plan.metric)
            else:
                ref_score = production["metrics"].get(plan.metric)
        else:
            reference = "baseline"
            ref_score = reference_score(plan.task, plan.metric, y_train, y_test)
        ref_score = None if ref_score is None else float(ref_score)
        verdict = deployable(plan.metric, score, ref_score, plan.config.margin)
        done = ModelEvaluated(model=plan.config.model, run_id=run.run_id, best_candidate_id=best, metric=plan.metric,
                              score=score, reference=reference, reference_score=ref_score,
                              margin=plan.config.margin, deployable=verdict, correlation_id=run.run_id,
                              causation_id=run.run_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await PostgresModelStore.finish_run(conn, run.run_id, best, score, reference, ref_score, verdict)
            if errors:
                await conn.execute("UPDATE training_runs SET error = $2 WHERE run_id = $1", run.run_id,
                                   "; ".join(errors)[:4000])
            await conn.execute("INSERT INTO outbox (topic, msg_key, payload, dedup_key) VALUES ($1, $2, $3, $4)"
                               " ON CONFLICT (dedup_key) DO NOTHING", "models", plan.config.model.encode(),
                               encode(done), f"evaluated:{run.run_id}")
            await conn.execute("INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)",
                               self.name, "model.evaluated", plan.config.model, encode(done).decode())
        self.log.info("training run evaluated", run=run.run_id, best=best, score=score, reference=reference,
                      reference_score=ref_score, deployable=verdict)
