"""Batch scoring: a ``score.batch`` command becomes a job whose rows are spread over the
batch scorers, one per partition of ``score.tasks``; ``scores.ready`` announces it done.

- :class:`BatchScoreCoordinator` resolves the version (production by default) and the
  feature set (the one it was trained on by default), records the job, and emits one
  ``score.partition`` task per scorer.
- :class:`BatchScorer` scores its share of the rows (its stretch of the feature set's
  stable order, planned by the coordinator) chunk by chunk; each chunk's results are
  stored with the partition's progress in one transaction fenced by the scorer's epoch
  (while the next chunk is scored), so a restarted scorer goes on after the last stored
  chunk: every row is scored exactly once. The results are also put in the prediction
  cache, from which online callers are answered while fresh. The last partition to
  finish completes the job and emits ``scores.ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np

from actors.partition_worker import PartitionWorker
from messages.codec import encode, printable
from messages.serving import ScoreBatch, ScorePartition, ScoresReady
from storage.base import BatchEffects
from storage.float_arrays import float8_matrix
from storage.kafka import Record
from storage.settings import Settings


def predict_rows(model, task: str, vectors: np.ndarray) -> tuple[list[float | None], list[str | None]]:
    """(scores, labels) of many rows, as ``actors.serving.prediction`` gives them one by one."""
    if task == "classification":
        classes = np.asarray(model.classes_)
        try:
            proba = np.asarray(model.predict_proba(vectors), dtype=float)
        except Exception:
            return [None] * len(vectors), [str(v) for v in np.asarray(model.predict(vectors)).tolist()]
        best = np.argmax(proba, axis=1)
        scores = proba[:, 1] if len(classes) == 2 else proba[np.arange(len(proba)), best]
        return scores.tolist(), [str(c) for c in classes[best].tolist()]
    return np.asarray(model.predict(vectors), dtype=float).tolist(), [None] * len(vectors)


def partition_rows(task: ScorePartition) -> tuple[str, tuple]:
    """The query (without order or limit) of a scoring partition's rows, and its parameters:
    its stretch of the feature set's primary key, or every n-th line (a task without one).

    >>> task = ScorePartition(job_id="j", model="m", version=1, candidate_id="c", feature_set_id="0123abcd",
    ...                       partition=1, n_partitions=2, start=("b1", 500))
    >>> sql, args = partition_rows(task)
    >>> sql.split("WHERE ")[1], args
    ('feature_set_id = $1 AND (batch_id, line_no) >= ($2, $3)', ('0123abcd', 'b1', 500))
    """
    sql = "SELECT batch_id, line_no, entity_key, array_send(vector) AS vector FROM features WHERE feature_set_id = $1"
    args: tuple = (task.feature_set_id,)
    if task.start is None and task.stop is None and task.n_partitions > 1:
        return f"{sql} AND line_no % $2 = $3", (*args, task.n_partitions, task.partition)
    if task.start is not None:
        sql += f" AND (batch_id, line_no) >= (${len(args) + 1}, ${len(args) + 2})"
        args = (*args, *task.start)
    if task.stop is not None:
        sql += f" AND (batch_id, line_no) < (${len(args) + 1}, ${len(args) + 2})"
        args = (*args, *task.stop)
    return sql, args


def import_model_libraries() -> None:
    """The scikit-learn modules the registry's batch algorithms come from.

    >>> import_model_libraries()
    """
    import sklearn.cluster  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.tree  # noqa: F401


@contextlib.asynccontextmanager
async def key_ordered_reads(pool):
    """A connection of ``pool`` in a read-only transaction whose queries read a feature
    set in its primary key's order by scanning that key, never by sorting: for a set the
    planner has no statistics of yet (any set just prepared) it would otherwise sort all
    of the set's rows first (100,000 rows: ~0.3 s before the first row of a stretch,
    ~0.1 s for one boundary row; 0.02-0.10 s by the key)."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute("SET LOCAL enable_sort = off")
        yield conn


class PhaseClock:
    """Seconds spent per named phase, summed over laps.

    >>> clock = PhaseClock()
    >>> clock.lap("fetch"); clock.lap("fetch")
    >>> list(clock.seconds())
    ['fetch']
    """

    def __init__(self) -> None:
        self._last, self._spent = time.perf_counter(), {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self._spent[phase] = self._spent.get(phase, 0.0) + now - self._last
        self._last = now

    def seconds(self) -> dict[str, float]:
        return {phase: round(spent, 4) for phase, spent in self._spent.items()}


class BatchScoreCoordinator(PartitionWorker):
    consumer = "batch-score-coordinator"

    def __init__(self, settings: Settings, name: str, topic: str = "score.jobs", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        for record in records:
            command = self.expect(record, effects, ScoreBatch)
            if command is not None:
                await self._plan(command, effects)
        return effects

    async def _plan(self, command: ScoreBatch, effects: BatchEffects) -> None:
        job_id, n = command.msg_id, self.settings.batch_score_workers
        try:
            candidate = await self._candidate(command)
            fsid = command.feature_set_id or candidate["feature_set_id"]
            names = await self.pool.fetchval("SELECT feature_names FROM feature_sets WHERE feature_set_id = $1", fsid)
            if names is None:
                raise LookupError(f"feature_set_id: no feature set {fsid!r}")
            trained_on = await self.pool.fetchval("SELECT feature_names FROM feature_sets WHERE feature_set_id = $1",
                                                  candidate["feature_set_id"])
            if list(names) != list(trained_on):
                raise LookupError(f"feature_set_id: {fsid} has other features than the ones {command.model} "
                                  f"v{candidate['version']} was trained on")
            n_rows = await self.pool.fetchval("SELECT count(*) FROM features WHERE feature_set_id = $1", fsid)
            bounds = await self._bounds(fsid, n_rows, n)
        except LookupError as exc:
            error = printable(str(exc))

            async def failed(conn, c=command, e=error) -> None:
                await conn.execute("INSERT INTO score_jobs (job_id, model, state, error, finished_at) VALUES"
                                   " ($1, $2, 'failed', $3, now()) ON CONFLICT (job_id) DO NOTHING", c.msg_id,
                                   c.model, e)

            effects.writes.append(failed)
            self.log.warning("batch scoring refused", job=job_id, error=error)
            return

        async def record(conn, c=command, cand=candidate, f=fsid, rows=n_rows) -> None:
            await conn.execute(
                "INSERT INTO score_jobs (job_id, model, version, candidate_id, feature_set_id, n_partitions, n_rows,"
                " state, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 = 0 THEN 'done' ELSE"
                " 'scoring' END, CASE WHEN $7 = 0 THEN now() END) ON CONFLICT (job_id) DO NOTHING", c.msg_id, c.model,
                cand["version"], cand["candidate_id"], f, n, rows)
            await conn.executemany("INSERT INTO score_job_progress (job_id, partition) VALUES ($1, $2)"
                                   " ON CONFLICT DO NOTHING", [(c.msg_id, p) for p in range(n)])

        effects.writes.append(record)
        if n_rows == 0:
            ready = ScoresReady(job_id=job_id, model=command.model, version=candidate["version"], feature_set_id=fsid,
                                n_rows=0, correlation_id=command.correlation_id, causation_id=command.msg_id)
            effects.outbox.append(("scores.ready", command.model.encode(), encode(ready), f"scoresready:{job_id}"))
            return
        for p in range(n):
            task = ScorePartition(job_id=job_id, model=command.model, version=candidate["version"],
                                  candidate_id=candidate["candidate_id"], feature_set_id=fsid, partition=p,
                                  n_partitions=n, start=bounds[p], stop=bounds[p + 1],
                                  correlation_id=command.correlation_id, causation_id=command.msg_id)
            effects.outbox.append(("score.tasks", job_id.encode(), encode(task), f"scorejob:{job_id}:{p}", p))
        self.log.info("batch scoring planned", job=job_id, model=command.model, version=candidate["version"],
                      feature_set=fsid, rows=n_rows, partitions=n)

    async def _bounds(self, fsid: str, n_rows: int, n: int) -> list[tuple[str, int] | None]:
        """Where each partition's rows begin in the feature set's order (None: open), so
        that each scorer reads one contiguous stretch of the primary key: an equal share,
        and no scorer reads past the rows of the others. Rows added to the set later fall
        into exactly one stretch."""
        bounds: list[tuple[str, int] | None] = [None]
        async with key_ordered_reads(self.pool) as conn:
            for k in range(1, n):
                row = await conn.fetchrow("SELECT batch_id, line_no FROM features WHERE feature_set_id = $1"
                                          " ORDER BY batch_id, line_no OFFSET $2 LIMIT 1", fsid, k * n_rows // n)
                bounds.append(None if row is None else (row["batch_id"], row["line_no"]))
        bounds.append(None)
        if any(b is None for b in bounds[1:-1]):     # fewer rows than counted: every n-th row instead
            return [None] * (n + 1)
        return bounds

    async def _candidate(self, command: ScoreBatch) -> dict:
        if command.version is None:
            row = await self.pool.fetchrow(
                "SELECT c.candidate_id, c.version, c.feature_set_id FROM model_aliases a JOIN candidates c"
                " USING (candidate_id) WHERE a.model = $1 AND a.alias = 'production'", command.model)
            if row is None:
                raise LookupError(f"model: {command.model!r} has no production version; name a version")
        else:
            row = await self.pool.fetchrow("SELECT candidate_id, version, feature_set_id FROM candidates"
                                           " WHERE model = $1 AND version = $2", command.model, command.version)
            if row is None:
                raise LookupError(f"version: {command.model!r} has no version {command.version}")
        return dict(row)


class BatchScorer(PartitionWorker):
    consumer = "batch-scorer"
    pause_between_reads = True       # a job takes seconds: its partition is not fetched meanwhile

    def __init__(self, settings: Settings, name: str, topic: str = "score.tasks", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)
        self._models: dict[str, tuple[object, str]] = {}
        self._redis = None
        self._warming: asyncio.Future | None = None

    async def open(self) -> None:
        from actors.wiring import import_plugins, signing_key_bytes
        from storage.model_store import PostgresModelStore
        from storage.redis_store import connect_redis
        from storage.serving_store import RedisServingStore

        import_plugins(self.settings.plugins)
        # scikit-learn is imported while nobody waits (about a second here), not when the
        # first job's model is unpickled
        self._warming = asyncio.ensure_future(asyncio.to_thread(import_model_libraries))
        self._redis = connect_redis(self.settings.redis_url)
        self.store = PostgresModelStore(self.pool, signing_key_bytes(self.settings))
        self.cache = RedisServingStore(self._redis, self.settings.cluster_name, signing_key_bytes(self.settings))

    async def teardown(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        await super().teardown()

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        for record in records:
            task = self.expect(record, effects, ScorePartition)
            if task is not None:
                await self._score(task, record.offset)
        return effects

    async def _model(self, candidate_id: str):
        if candidate_id not in self._models:
            if self._warming is not None:
                with contextlib.suppress(Exception):     # failed: the load imports what it needs
                    await self._warming
            task = await self.pool.fetchval("SELECT r.task FROM candidates c JOIN training_runs r USING (run_id)"
                                            " WHERE c.candidate_id = $1", candidate_id)
            self._models[candidate_id] = (await self.store.load_model(candidate_id), task)
        return self._models[candidate_id]

    async def _score(self, task: ScorePartition, offset: int) -> None:
        progress = await self.pool.fetchrow("SELECT rows_done, done FROM score_job_progress WHERE job_id = $1"
                                            " AND partition = $2", task.job_id, task.partition)
        if progress is None or progress["done"]:
            return                                  # a replay of a finished partition
        model, kind = await self._model(task.candidate_id)
        clock = PhaseClock()
        n_features = await self.pool.fetchval("SELECT cardinality(feature_names) FROM feature_sets"
                                              " WHERE feature_set_id = $1", task.feature_set_id)
        done = progress["rows_done"]
        storing: asyncio.Future | None = None
        try:
            # closed on leaving, even by an error: its connection goes back to the pool at once
            async with contextlib.aclosing(self._chunks(task, done, clock)) as chunks:
                async for part in chunks:
                    vectors = float8_matrix([r["vector"] for r in part], n_features)
                    clock.lap("decode")
                    scores, labels = await asyncio.to_thread(predict_rows, model, kind, vectors)
                    clock.lap("predict")
                    done += len(part)
                    results = [(task.job_id, r["batch_id"], r["line_no"], r["entity_key"], s, lab)
                               for r, s, lab in zip(part, scores, labels)]
                    clock.lap("results")
                    if storing is not None:     # one chunk stored at a time, in order: progress only grows
                        await storing
                        clock.lap("store")
                    storing = asyncio.ensure_future(self._store(task, offset, results, done))
            if storing is not None:
                await storing
                clock.lap("store")
        finally:
            if storing is not None and not storing.done():
                storing.cancel()
        await self.ledger.commit(self.claim, offset, BatchEffects(writes=[lambda conn: self._finish(conn, task)]))
        clock.lap("finish")
        self.log.info("batch scoring partition done", job=task.job_id, partition=task.partition,
                      rows=done - progress["rows_done"], seconds=clock.seconds())

    async def _store(self, task: ScorePartition, offset: int, results: list[tuple], rows_done: int) -> None:
        """A chunk's results and the partition's progress in one fenced transaction (the
        offset unmoved), and its predictions in the cache meanwhile (the same answers again
        should the transaction fail and the chunk be scored anew). The caller scores the next
        chunk while this runs."""

        async def write(conn) -> None:
            await conn.copy_records_to_table("batch_scores", records=results, columns=[
                "job_id", "batch_id", "line_no", "entity_key", "score", "label"])
            await conn.execute("UPDATE score_job_progress SET rows_done = $3, updated_at = now()"
                               " WHERE job_id = $1 AND partition = $2", task.job_id, task.partition, rows_done)

        await asyncio.gather(self.ledger.commit(self.claim, offset, BatchEffects(writes=[write])),
                             self._cache(task, results))
        self.n_processed += len(results)

    async def _chunks(self, task: ScorePartition, rows_done: int, clock: PhaseClock):
        """This partition's rows not yet scored (its stretch of the feature set, in its stable
        order), a chunk at a time; the next chunk is read while the caller works on this one.

        One query per partition, read through a cursor in the primary key's order. A query
        per chunk (keyset, ``LIMIT``) was planned anew each time, and for a feature set the
        planner has no statistics of yet (any set just prepared) it sorted the whole stretch
        for every chunk."""
        chunk = self.settings.batch_score_chunk
        select, where = partition_rows(task)
        async with key_ordered_reads(self.pool) as conn:    # the first chunk comes at once
            cursor = await conn.cursor(f"{select} ORDER BY batch_id, line_no OFFSET ${len(where) + 1}", *where,
                                       rows_done)
            reading = asyncio.ensure_future(cursor.fetch(chunk))
            try:
                while reading is not None:
                    rows = await reading
                    clock.lap("fetch")
                    reading = None if len(rows) < chunk else asyncio.ensure_future(cursor.fetch(chunk))
                    if rows:
                        yield rows
            finally:
                if reading is not None:
                    reading.cancel()
                    await asyncio.gather(reading, return_exceptions=True)

    async def _cache(self, task: ScorePartition, results: list[tuple]) -> None:
        """The chunk's predictions in the prediction cache (online callers are answered from it)."""
        await self.cache.put_predictions(task.model, task.version, [
            (key, (score, label)) for _, _, _, key, score, label in results if key is not None],
            self.settings.prediction_cache_ttl_s)

    async def _finish(self, conn, task: ScorePartition) -> None:
        """This partition is done; the last one completes the job (the job row is locked
        while deciding, so exactly one partition does)."""
        job = await conn.fetchrow("SELECT state, n_rows FROM score_jobs WHERE job_id = $1 FOR UPDATE", task.job_id)
        await conn.execute("UPDATE score_job_progress SET done = true, updated_at = now() WHERE job_id = $1"
                           " AND partition = $2", task.job_id, task.partition)
        left = await conn.fetchval("SELECT count(*) FROM score_job_progress WHERE job_id = $1 AND NOT done",
                                   task.job_id)
        if left == 0 and job["state"] == "scoring":
            await conn.execute("UPDATE score_jobs SET state = 'done', finished_at = now() WHERE job_id = $1",
                               task.job_id)
            ready = ScoresReady(job_id=task.job_id, model=task.model, version=task.version,
                                feature_set_id=task.feature_set_id, n_rows=job["n_rows"],
                                correlation_id=task.correlation_id, causation_id=task.msg_id)
            await conn.execute("INSERT INTO outbox (topic, msg_key, payload, dedup_key) VALUES ($1, $2, $3, $4)"
                               " ON CONFLICT (dedup_key) DO NOTHING", "scores.ready", task.model.encode(),
                               encode(ready), f"scoresready:{task.job_id}")
            self.log.info("batch scoring done", job=task.job_id, rows=job["n_rows"])
