"""The units of work of a training run, each hosted by its own actor (``actors.remote.TaskHost``):

- :class:`CandidateTrainer`, one per candidate, all in parallel: runs the candidate's
  hyper-parameter search as tasks spread over the cluster, fits the chosen parameters
  (itself, over data-parallel partitions, or over coefficient blocks), and evaluates
  the model on the test side.
- :class:`PartitionLearner`: one copy of an incremental learner on its share of the
  rows, checkpointed every ``checkpoint_every`` rows; a new one resumes from the newest
  checkpoint, so a killed partition ends with the same model as an uninterrupted one.
- :class:`BlockWorker`: a block of a linear model's coefficients (``ml.blocks``).

Ray-free: the one Ray seam is ``actors.remote.Compute``.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import random
import time
from typing import Any

import msgspec
import numpy as np

from storage.settings import Settings


def backoff_s(attempt: int, base_s: float = 0.2, max_s: float = 5.0) -> float:
    """Capped exponential backoff with full jitter before retry ``attempt`` (1-based).

    >>> 0 <= backoff_s(1) <= 0.2 and 0 <= backoff_s(10) <= 5.0
    True
    """
    return random.uniform(0, min(max_s, base_s * 2 ** (attempt - 1)))


async def with_retries(attempts: int, work, retry_on: tuple[type[BaseException], ...], log=None, what: str = ""):
    """``await work(attempt)`` up to ``attempts`` times while it raises ``retry_on``, with backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return await work(attempt)
        except retry_on as exc:
            if attempt == attempts:
                raise
            if log is not None:
                log.warning("retrying", what=what, attempt=attempt, error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(backoff_s(attempt))


def score_trial(plugins: str, *args):
    """``ml.training.score_trial`` in a task process that has imported the plugins first."""
    from actors.wiring import import_plugins
    from ml.training import score_trial as score

    import_plugins(plugins)
    return score(*args)


class Warm:
    """What a warm candidate actor hosts until it takes a candidate: the libraries a
    candidate needs are imported once, while nobody waits."""

    def __init__(self, plugins: str = "") -> None:
        from actors.wiring import import_plugins

        import_plugins(plugins)
        import sklearn.ensemble  # noqa: F401   (River is imported by the candidates that use it)
        import sklearn.linear_model  # noqa: F401
        import sklearn.tree  # noqa: F401

        import ml.evaluators  # noqa: F401
        import ml.training  # noqa: F401

    def ready(self) -> bool:
        return True


class WarmPool:
    """Candidate actors started ahead of time; ``take`` hands one over (or starts one when
    none is ready). ``fill`` starts replacements: the coordinator calls it between runs, so
    a run's fits do not share the CPU with the imports of the next run's actors.

    The pool keeps ``size`` actors, or as many as the largest run seen needs (``expect``),
    up to ``limit``: a configuration trained again (by schedule, by trigger) finds an actor
    ready for each of its candidates.

    An actor whose candidate finished comes back (``give_back``) and serves a later one,
    up to ``max_uses`` candidates: a new process costs ~2 s of CPU here (the interpreter,
    Ray, scikit-learn), which a run after another would otherwise pay again per candidate.

    >>> pool = WarmPool(compute=None, size=2, limit=6)
    >>> pool.expect(4); pool.target
    4
    >>> pool.expect(10); pool.target
    6
    """

    def __init__(self, compute, size: int, plugins: str = "", log=None, limit: int | None = None,
                 max_uses: int = 20) -> None:
        self.compute, self.size, self.plugins, self.log = compute, size, plugins, log
        self.limit = max(size, size if limit is None else limit)
        self.target, self.max_uses = size, max_uses
        self._ready: list = []
        self._starting: set[asyncio.Task] = set()
        self._uses: dict[Any, int] = {}     # candidates each actor taken so far has served

    def expect(self, n_candidates: int) -> None:
        """A run of ``n_candidates`` came: keep that many ready from now on (up to ``limit``)."""
        self.target = max(self.target, min(n_candidates, self.limit))

    def fill(self) -> None:
        while len(self._ready) + len(self._starting) < self.target:
            task = asyncio.get_running_loop().create_task(self._start_one())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_one(self) -> None:
        try:
            handle = await self.compute.host(f"train.warm.{os.urandom(4).hex()}", "actors.training_tasks:Warm",
                                             self.plugins)
            await self.compute.call(handle, "ready")
            self._ready.append(handle)
        except Exception as exc:   # the pool is an optimisation: a failure only costs the next run a start
            if self.log is not None:
                self.log.warning("warm actor failed to start", error=f"{type(exc).__name__}: {exc}"[:300])

    async def take(self, factory: str, *args):
        """A warm actor hosting ``factory(*args)``: a ready one, else one still starting (its
        imports are under way: a new one would pay them again, beside the run's fits), else
        a new one."""
        while not self._ready:
            starting = {task for task in self._starting if not task.done()}
            if not starting:
                break
            await asyncio.wait(starting, return_when=asyncio.FIRST_COMPLETED)
        handle = self._ready.pop() if self._ready else await self.compute.host(
            f"train.cold.{os.urandom(4).hex()}", "actors.training_tasks:Warm", self.plugins)
        self._uses[handle] = self._uses.get(handle, 0) + 1
        await self.compute.adopt(handle, factory, *args)
        return handle

    async def give_back(self, handle) -> None:
        """``handle``'s candidate finished: the actor drops it and waits for the next one, or
        is stopped when the pool is full or the actor has served ``max_uses`` candidates.
        An actor whose candidate failed is not given back: the caller stops it."""
        uses = self._uses.pop(handle, self.max_uses)
        if uses >= self.max_uses or len(self._ready) + len(self._starting) >= self.target:
            self.compute.kill(handle)
            return
        try:
            await self.compute.adopt(handle, "actors.training_tasks:Warm", self.plugins)
        except Exception:          # gone meanwhile: the pool starts another when it is filled
            self.compute.kill(handle)
            return
        self._uses[handle] = uses
        self._ready.append(handle)

    def discard(self, handle) -> None:
        """Stop a taken actor that is not given back (its candidate failed, or it died)."""
        self._uses.pop(handle, None)
        self.compute.kill(handle)

    def close(self) -> None:
        for task in list(self._starting):
            task.cancel()
        for handle in self._ready:
            self.compute.kill(handle)
        self._ready.clear()
        self._uses.clear()


class CandidateTrainer:
    def __init__(self, settings: Settings, run_id: str, candidate, task: str, metric: str, seed: int,
                 validation_ratio: float, checkpoint_every: int, max_attempts: int) -> None:
        self.settings, self.run_id, self.candidate = settings, run_id, candidate
        self.task, self.metric, self.seed = task, metric, seed
        self.validation_ratio, self.checkpoint_every, self.max_attempts = validation_ratio, checkpoint_every, max_attempts
        from actors.wiring import import_plugins
        from ml.algorithms import build

        import_plugins(settings.plugins)
        build(candidate.algorithm, candidate.trials[0])   # imports the estimator's library while the actor starts

    def describe(self) -> str:
        return f"candidate {self.run_id}/{self.candidate.name}"

    async def run(self, X_train: np.ndarray, y_train, X_test: np.ndarray, y_test, feature_names: list[str]) -> dict:
        from actors.remote import Compute
        from ml.training import evaluate_model

        from ml.algorithms import get_algorithm

        compute = Compute(self.settings.cluster_name)
        started = time.time()
        params, search = await self._search(compute, X_train, y_train, feature_names)
        params = get_algorithm(self.candidate.algorithm).resolve_params(params)   # defaults shown, seed included
        fit_started = time.time()
        if self.candidate.partitions > 1:
            model = await self._fit_partitions(compute, params, X_train, y_train, feature_names)
        elif self.candidate.blocks > 1:
            model = await self._fit_blocks(compute, params, X_train, y_train, feature_names)
        else:
            from ml.training import fit_model

            model = await asyncio.to_thread(fit_model, self.candidate.algorithm, params, X_train, y_train,
                                            feature_names)
        finished = time.time()
        evaluation = await asyncio.to_thread(evaluate_model, model, self.task, X_test, y_test)
        return {
            "params": params, "search": search, "summary": model.summary(), "metrics": evaluation.metrics,
            "curves": msgspec.msgpack.encode(evaluation.curves) if evaluation.curves else None,
            "artifact": pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL),
            "started_at": started, "finished_at": finished, "fit_s": finished - fit_started,
        }

    async def _search(self, compute, X, y, feature_names) -> tuple[dict, list]:
        """The parameters to fit: the only trial, or the best of a search scored on a validation
        part of the training side (the trials run as tasks over the cluster)."""
        from ml.training import best_of, search_split

        trials = list(self.candidate.trials)
        if len(trials) == 1:
            return dict(trials[0]), []
        fit_rows, val_rows = search_split(len(X), y if self.task == "classification" else None, self.task,
                                          self.validation_ratio, self.seed)
        refs = [compute.put(a) for a in (X[fit_rows], None if y is None else y[fit_rows], X[val_rows],
                                         None if y is None else y[val_rows])]
        scores = await compute.map("actors.training_tasks:score_trial", [
            (self.settings.plugins, self.candidate.algorithm, trial, *refs, self.task, self.metric, feature_names) for trial in trials])
        best = best_of({str(i): s for i, s in enumerate(scores)}, self.metric)
        chosen = trials[int(best)] if best is not None else trials[0]
        return dict(chosen), [{"params": t, "score": s} for t, s in zip(trials, scores)]

    async def _fit_partitions(self, compute, params, X, y, feature_names):
        from actors.remote import ActorGone
        from ml.ensemble import PartitionEnsemble
        from ml.training import partition_rows

        classes = sorted(set(np.asarray(y).tolist())) if self.task == "classification" else None

        async def one(p: int, rows: np.ndarray):
            owner = f"{self.run_id}/{self.candidate.name}/{p}"
            X_part = compute.put(X[rows])
            y_part = compute.put(None if y is None else y[rows])

            async def attempt(n: int):
                handle = await compute.host(f"train.{self.run_id[:12]}.{self.candidate.name}.p{p}",
                                            "actors.training_tasks:PartitionLearner", self.settings, owner,
                                            self.candidate.algorithm, params, classes, feature_names,
                                            self.checkpoint_every)
                try:
                    return await compute.call(handle, "learn", X_part, y_part)
                finally:
                    compute.kill(handle)

            return await with_retries(self.max_attempts, attempt, (ActorGone,), what=owner)

        members = await asyncio.gather(*(one(p, rows) for p, rows in
                                         enumerate(partition_rows(len(X), self.candidate.partitions))))
        return PartitionEnsemble(members)

    async def _fit_blocks(self, compute, params, X, y, feature_names):
        from ml.algorithms import get_algorithm
        from ml.blocks import assemble, block_columns, residual, targets

        y01, classes = targets(self.task, y)
        X_ref = compute.put(X)
        handles = [await compute.host(f"train.{self.run_id[:12]}.{self.candidate.name}.b{b}",
                                      "ml.blocks:LinearBlock", X_ref, cols.tolist())
                   for b, cols in enumerate(block_columns(X.shape[1], self.candidate.blocks))]
        try:
            l2 = 1.0 / (float(params.get("C", 1.0)) * len(X)) if self.task == "classification" else 0.0
            n_iter = max(int(params.get("max_iter", 100)), 100) if self.task == "classification" else 300
            intercept = 0.0 if self.task == "classification" else float(np.mean(y01))
            lr, tol = 0.5, float(params.get("tol", 1e-4))
            for _ in range(n_iter):
                margins = await asyncio.gather(*(compute.call(h, "margin") for h in handles))
                r = residual(self.task, np.sum(margins, axis=0) + intercept, y01)
                intercept -= lr * float(np.mean(r))
                largest = max(await asyncio.gather(*(compute.call(h, "step", r, lr, l2) for h in handles)))
                if largest < tol and abs(float(np.mean(r))) < tol:
                    break
            parts = await asyncio.gather(*(compute.call(h, "raw_coefficients") for h in handles))
        finally:
            for h in handles:
                compute.kill(h)
        return assemble(get_algorithm(self.candidate.algorithm), params, self.task, parts, intercept, X.shape[1],
                        classes, feature_names, len(handles))


class PartitionLearner:
    def __init__(self, settings: Settings, owner: str, algorithm: str, params: dict, classes, feature_names,
                 checkpoint_every: int) -> None:
        self.settings, self.owner, self.algorithm, self.params = settings, owner, algorithm, params
        self.classes, self.feature_names, self.checkpoint_every = classes, feature_names, checkpoint_every

    async def learn(self, X: np.ndarray, y) -> Any:
        """Learn the rows from the newest checkpoint on, checkpointing as it goes; the model."""
        from actors.wiring import import_plugins, pool_for, signing_key_bytes
        from ml.algorithms import build
        from storage.model_store import PostgresModelStore

        import_plugins(self.settings.plugins)
        pool = await pool_for(self.settings, max_size=1)
        try:
            store = PostgresModelStore(pool, signing_key_bytes(self.settings))
            found = await store.latest_checkpoint(self.owner)
            done, model = found if found is not None else (0, build(self.algorithm, self.params))
            for start in range(done, len(X), self.checkpoint_every):
                end = min(start + self.checkpoint_every, len(X))
                await asyncio.to_thread(model.learn_batch, X[start:end], None if y is None else y[start:end],
                                        classes=self.classes, feature_names=self.feature_names)
                await store.save_checkpoint(self.owner, end, model)
            return model
        finally:
            await pool.close()

    def pid(self) -> int:
        return os.getpid()
