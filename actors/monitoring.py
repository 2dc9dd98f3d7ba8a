"""The monitor (``root.monitor``): reads every online answer from ``scores`` (and observed
outcomes from ``observations``, joined to answers by request id = event id), and keeps
per model version: serve, fallback and error counts, latency min/mean/max/p50/p99 over a
window, feature drift (PSI and KS per feature) and prediction drift against the training
reference, and accuracy (or MAE) against outcomes.

Every ``monitor_interval_s`` it stores the figures in ``monitor_versions``, sets the Ray
metrics gauges (Prometheus), and raises an ``alert.raised`` on ``alerts`` (through the
outbox, recorded in ``alerts``) when a threshold is first crossed. It is off the scoring
path: the router only publishes the score records it published before.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np

from actors.monitor_context import VersionContext, load_context, vectors_of_rows
from actors.monitor_state import MonitorState
from actors.partition_worker import PartitionWorker
from messages.codec import decode, encode
from messages.monitoring import AlertRaised
from messages.serving import ScoreRecorded
from ml.drift import feature_drift
from storage.base import BatchEffects
from storage.kafka import Record
from storage.settings import Settings

GAUGES = {
    "served": "answers to requests routed to the version", "fallbacks": "answers given by a fallback",
    "errors": "requests whose primary failed", "latency_p50_ms": "p50 latency over the window",
    "latency_p99_ms": "p99 latency over the window", "latency_mean_ms": "mean latency over the window",
    "latency_max_ms": "max latency over the window", "feature_psi_max": "largest PSI of any feature",
    "prediction_psi": "PSI of the predictions", "accuracy": "accuracy against observed outcomes",
}


def alert_id(model: str, version: int, kind: str, episode: int) -> str:
    """The same alert (the ``episode``-th of its kind for the version) always gets the same id."""
    return hashlib.sha256(f"{model}\0{version}\0{kind}\0{episode}".encode()).hexdigest()[:32]


class Monitor(PartitionWorker):
    consumer = "monitor"
    #: Figures are stored every few seconds: a record need not be seen within a few ms.
    fetch_max_wait_ms = 100
    woken_by_doorbell = False
    requests = ("pause", "restored")
    #: Alerts that move production back to the previous version (``auto_rollback``).
    ROLLBACK_KINDS = ("latency", "fallbacks", "accuracy")

    def __init__(self, settings: Settings, name: str, topic: str = "scores", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition, checkpoint_every_n=5000, checkpoint_every_s=10.0)
        self.tracker = MonitorState(settings.monitor_window_s, max_vectors=settings.monitor_drift_sample)
        self.contexts: dict[tuple[str, int], VersionContext | None] = {}
        self._dirty: set[tuple[str, int]] = set()
        #: Inputs of answers taken but not measured yet: key -> (raw feature rows, entity keys).
        self._inputs: dict[tuple[str, int], tuple[list[dict], list[str]]] = {}
        self._evaluated_at = 0.0
        self._paused_until = 0.0
        self._observers: dict[int, object] = {}
        self._online = None
        self._gauges = None
        #: Each model's settings with its serving configuration's objectives applied.
        self.objectives: dict[str, Settings] = {}
        self._objectives_stamp: tuple | None = None    # (rows, newest change) when last read

    # --- checkpoints ---------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return self.tracker.snapshot()

    def restore(self, state: bytes) -> None:
        self.tracker.restore(state)

    async def open(self) -> None:
        from storage.feature_store import RedisOnlineStore
        from storage.kafka import reader_for, topic_partitions
        from storage.redis_store import connect_redis

        self._redis = connect_redis(self.settings.redis_url)
        self._online = RedisOnlineStore(self._redis, self.settings.cluster_name, self.settings.online_ttl_s)
        from actors.wiring import signing_key_bytes
        from storage.serving_store import RedisServingStore

        self._serving = RedisServingStore(self._redis, self.settings.cluster_name, signing_key_bytes(self.settings))
        checkpoint = await self.ledger.latest_checkpoint(self.checkpoint_owner)
        if checkpoint is not None and checkpoint.generation != self.claim.generation:
            self.tracker.extra["observations"] = {}        # the broker's logs started again
        offsets = self.tracker.extra.setdefault("observations", {})
        for p in range(topic_partitions(self.settings).get("observations", 0)):
            reader = reader_for(self.settings, "observations", p, self.fetch_max_wait_ms, self.doorbell)
            await reader.start(int(offsets.get(str(p), 0)))
            self._observers[p] = reader

    async def teardown(self) -> None:
        for reader in self._observers.values():
            await reader.stop()
        if getattr(self, "_redis", None) is not None:
            await self._redis.aclose()
        await super().teardown()

    def pause(self, seconds: float) -> float:
        """Stop reading for ``seconds`` (at most 600): the input waits in the broker, then is
        caught up. Returns when reading resumes (epoch seconds)."""
        self._paused_until = time.time() + min(max(float(seconds), 0.0), 600.0)
        return self._paused_until

    def restored(self, model: str, version: int) -> None:
        """An operator put ``version`` back in production after an automatic rollback: its
        latency window and outcomes are measured afresh, and it may be rolled back again."""
        demoted = self.tracker.extra.setdefault("demoted", [])
        if [model, version] in demoted:
            demoted.remove([model, version])
        self.tracker.extra.setdefault("rolled_back_at", {}).pop(model, None)
        stats = self.tracker.versions.get((model, version))
        if stats is not None:
            stats.window.clear()
            stats.n_observed = stats.n_correct = stats.n_valued = 0
            stats.abs_error = 0.0
        self.tracker.active_alerts = {a for a in self.tracker.active_alerts if a[:2] != (model, version)}

    # --- the loop --------------------------------------------------------------------------------

    async def step(self) -> None:
        """Take what arrived into the state; every ``monitor_interval_s`` measure the inputs taken
        and store the figures, and every few seconds checkpoint. The consumed offset is committed
        only with a checkpoint (a restart replays from there), not with every batch."""
        import asyncio

        if time.time() < self._paused_until:
            await asyncio.sleep(min(0.1, self._paused_until - time.time()))
            return
        await self._read_observations()
        records = await self._reader.read(timeout_ms=200, max_records=self.settings.kafka_max_batch)
        effects = self.handle_now(records)
        if records:
            self.offset = records[-1].offset + 1
            self.n_processed += len(records)
            self._since_checkpoint += len(records)
        now = time.time()
        checkpoint = self._since_checkpoint > 0 and (
            self._since_checkpoint >= self.checkpoint_every_n
            or now - (self.last_checkpoint_at or self.started_at) >= self.checkpoint_every_s)
        evaluate = bool(self._dirty) and now - self._evaluated_at >= self.settings.monitor_interval_s
        if not (checkpoint or evaluate or effects.dead_letters):
            return
        await self._measure_inputs()
        if evaluate:
            await self._evaluate(effects)
        if checkpoint:
            effects.checkpoint_state = self.snapshot()
        await self.ledger.commit(self.claim, self.offset if checkpoint else self.last_checkpoint_offset or 0, effects)
        if checkpoint:
            self._since_checkpoint = 0
            self.last_checkpoint_offset, self.last_checkpoint_at = self.offset, now

    async def _read_observations(self) -> None:
        from messages.stream import Observation

        offsets = self.tracker.extra["observations"]
        for p, reader in self._observers.items():
            records = await reader.read(timeout_ms=0, max_records=self.settings.kafka_max_batch, idle_backoff=False,
                                        then_pause=True)      # not fetched in the background between steps
            for record in records:
                try:
                    message = decode(record.value)
                except Exception:
                    continue          # the learners dead-letter what does not decode on their topic
                if isinstance(message, Observation):
                    joined = self.tracker.add_observation(message.event_id, message.label, message.produced_at)
                    if joined is not None:
                        self._dirty.add(joined)
            if records:
                offsets[str(p)] = records[-1].offset + 1
                self._since_checkpoint += len(records)

    def handle_now(self, records: list[Record]) -> BatchEffects:
        """Answers into the state; their inputs wait in ``_inputs`` to be measured together."""
        effects = BatchEffects()
        for record in records:
            event = self.expect(record, effects, ScoreRecorded)
            if event is None:
                continue
            routed = event.routed_version or event.version
            if routed is None:
                continue              # an old record of a baseline answer: no version to charge it to
            key = (event.model, routed)
            self.tracker.add_score(event.request_id, event.model, routed, event.version, event.answered_by,
                                 event.latency_ms, event.score, event.label, event.reason, event.produced_at)
            self._dirty.add(key)
            if event.version is not None and event.version != routed:
                self._dirty.add((event.model, event.version))   # an outcome may have joined its answer
            if event.features is not None:
                self._inputs.setdefault(key, ([], []))[0].append(event.features)
            elif event.entity_key is not None:
                self._inputs.setdefault(key, ([], []))[1].append(event.entity_key)
        return effects

    async def _measure_inputs(self) -> None:
        inputs, self._inputs = self._inputs, {}
        for key, (rows, entity_keys) in inputs.items():
            await self._add_inputs(key, rows, entity_keys)

    async def _context(self, key: tuple[str, int]) -> VersionContext | None:
        if key not in self.contexts:
            from actors.wiring import signing_key_bytes

            try:
                self.contexts[key] = await load_context(self.pool, signing_key_bytes(self.settings),
                                                        self.settings.plugins, *key, log=self.log)
            except Exception as exc:     # figures without drift rather than no figures
                self.log.warning("no training reference", model=key[0], version=key[1],
                                 error=f"{type(exc).__name__}: {exc}"[:300])
                self.contexts[key] = None
        return self.contexts[key]

    async def _add_inputs(self, key, rows: list[dict], entity_keys: list[str]) -> None:
        context = await self._context(key)
        if context is None:
            return
        now = self.tracker.versions[key].last_at
        if rows:
            try:
                self.tracker.add_vectors(key, now, vectors_of_rows(context, rows))
            except Exception as exc:
                self.log.warning("inputs not measured", model=key[0], version=key[1], error=str(exc)[:200])
        if entity_keys:
            found = await self._online.get_many(context.dataset, entity_keys)
            vectors = [v.vector for v in found if v is not None and v.feature_set_id == context.feature_set_id]
            if vectors:
                self.tracker.add_vectors(key, now, np.asarray(vectors, dtype=float))

    # --- figures, metrics, alerts -------------------------------------------------------------------

    async def _read_objectives(self) -> None:
        """Every model's serving configuration (the configuration service's current versions),
        parsed again only when one changed."""
        from ml.serving_config import ServingConfigError, applied, parse_serving_config

        stamp = tuple(await self.pool.fetchrow("SELECT count(*), max(updated_at) FROM serving_configs"))
        if stamp == self._objectives_stamp:
            return
        objectives = {}
        for row in await self.pool.fetch("SELECT model, config_toml FROM serving_configs"):
            try:
                objectives[row["model"]] = applied(self.settings, parse_serving_config(row["config_toml"]))
            except ServingConfigError as exc:     # written around the client's checks: the cluster's settings
                self.log.warning("serving configuration ignored", model=row["model"], error=str(exc)[:200])
        self.objectives, self._objectives_stamp = objectives, stamp

    async def _evaluate(self, effects: BatchEffects) -> None:
        self._evaluated_at = time.time()
        rows, alerts, routes = [], [], {}
        if self._dirty:
            try:
                await self._read_objectives()
            except Exception as exc:              # the objectives last read stay in force
                self.log.warning("serving configurations not read", error=str(exc)[:200])
        for key in sorted(self._dirty):
            figures = self.tracker.figures(key)
            figures.update(self._drift(key))
            rows.append((key, figures))
            if key[0] not in routes:
                try:
                    routes[key[0]] = await self._serving.routes(key[0])
                except Exception as exc:
                    self.log.warning("routes not read", model=key[0], error=str(exc)[:200])
                    routes[key[0]] = None
            alerts.extend(await self._alerts(key, figures, routes[key[0]]))
            self._export(key, figures)
        self._dirty.clear()

        async def write(conn, rows=rows, alerts=alerts) -> None:
            await conn.executemany(UPSERT, [(
                m, v, f["n_served"], f["n_fallback"], f["n_errors"], f["n_late"], f["window_s"], f["n_window"],
                f["latency_min_ms"], f["latency_mean_ms"], f["latency_max_ms"], f["latency_p50_ms"],
                f["latency_p99_ms"], f["n_observed"], f["accuracy"], f["mae"], f["n_drift_sample"],
                json.dumps(f["feature_drift"]), None if f["prediction_drift"] is None else
                json.dumps(f["prediction_drift"]), self.tracker.versions[(m, v)].first_at,
                self.tracker.versions[(m, v)].last_at) for (m, v), f in rows])
            if alerts:
                await conn.executemany(
                    "INSERT INTO alerts (alert_id, model, version, kind, severity, value, threshold, summary, details,"
                    " rolled_back_to, evidence) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)"
                    " ON CONFLICT (alert_id) DO NOTHING",
                    [(a.msg_id, a.model, a.version, a.kind, a.severity, a.value, a.threshold, a.summary,
                      json.dumps(a.details), a.rolled_back_to, a.evidence) for a in alerts])

        effects.writes.append(write)
        for alert in alerts:
            effects.outbox.append(("alerts", alert.model.encode(), encode(alert), f"alert:{alert.msg_id}"))
            self.log.warning("alert raised", model=alert.model, version=alert.version, kind=alert.kind,
                             summary=alert.summary, correlation_id=alert.msg_id, evidence=alert.evidence)

    def _drift(self, key) -> dict:
        context = self.contexts.get(key)
        X = self.tracker.window_vectors(key)
        features, prediction = {}, None
        if context is not None and X is not None and len(X) >= self.settings.monitor_min_samples:
            found = feature_drift(context.features, X)
            features = {n: {"psi": d.psi, "ks": d.ks, "p_value": d.p_value} for n, d in found.items()}
        scores = self.tracker.window_scores(key)
        if context is not None and context.predictions is not None and len(scores) >= self.settings.monitor_min_samples:
            d = feature_drift(context.predictions, scores)["score"]
            prediction = {"psi": d.psi, "ks": d.ks, "p_value": d.p_value, "n": int(len(scores))}
        return {"feature_drift": features, "prediction_drift": prediction, "n_drift_sample": 0 if X is None else len(X)}

    async def _alerts(self, key, f: dict, routes) -> list[AlertRaised]:
        s, model, version = self.objectives.get(key[0], self.settings), key[0], key[1]
        previous = self._previous_figures(routes, key)
        n = f["n_window"]
        enough = n >= s.monitor_min_samples
        window = self.tracker.window_counts(key)
        psi_features = {k: v["psi"] for k, v in f["feature_drift"].items() if v["psi"] > s.drift_psi_alert}
        checks = [
            ("latency", "critical", enough and f["latency_p99_ms"] > s.latency_objective_ms,
             f["latency_p99_ms"], s.latency_objective_ms,
             lambda: f"p99 latency {f['latency_p99_ms']:.1f} ms over {s.monitor_window_s:g} s exceeds the "
                     f"objective of {s.latency_objective_ms:g} ms", {}),
            ("fallbacks", "warning", enough and window["fallback"] / n > s.fallback_rate_alert,
             window["fallback"] / max(n, 1), s.fallback_rate_alert,
             lambda: f"{window['fallback']} of the last {n} answers came from a fallback", {}),
            ("errors", "critical", enough and window["error"] / n > s.error_rate_alert,
             window["error"] / max(n, 1), s.error_rate_alert,
             lambda: f"the primary failed on {window['error']} of the last {n} requests", {}),
            ("feature_drift", "warning", bool(psi_features), max(psi_features.values(), default=0.0),
             s.drift_psi_alert, lambda: f"{len(psi_features)} feature(s) drifted from the training data (PSI > "
                                        f"{s.drift_psi_alert:g}): {', '.join(sorted(psi_features)[:5])}",
             dict(sorted(psi_features.items(), key=lambda kv: -kv[1])[:50])),
            ("prediction_drift", "warning", f["prediction_drift"] is not None
             and f["prediction_drift"]["psi"] > s.drift_psi_alert,
             (f["prediction_drift"] or {}).get("psi", 0.0), s.drift_psi_alert,
             lambda: f"predictions drifted from those on the training data (PSI "
                     f"{f['prediction_drift']['psi']:.2f})", {}),
            ("accuracy", "critical", previous is not None and f["accuracy"] is not None
             and f["n_observed"] >= s.monitor_min_samples and f["accuracy"] < previous[1] - s.accuracy_drop_margin,
             f["accuracy"] or 0.0, (previous or (0, 0.0))[1] - s.accuracy_drop_margin,
             lambda: f"accuracy {f['accuracy']:.3f} on {f['n_observed']} outcomes is below v{previous[0]}'s "
                     f"{previous[1]:.3f} by more than {s.accuracy_drop_margin:g}", {}),
        ]
        raised = []
        episodes = self.tracker.extra.setdefault("episodes", {})
        for kind, severity, firing, value, threshold, summary, details in checks:
            mark = (model, version, kind)
            if not firing:
                self.tracker.active_alerts.discard(mark)
                continue
            if mark in self.tracker.active_alerts:
                continue
            self.tracker.active_alerts.add(mark)
            episode = episodes[f"{model}\0{version}\0{kind}"] = episodes.get(f"{model}\0{version}\0{kind}", 0) + 1
            text, msg_id = summary(), alert_id(model, version, kind, episode)
            back = await self._roll_back(routes, key, text, msg_id) if kind in self.ROLLBACK_KINDS else None
            if back is not None:
                text = f"{text}; production rolled back to v{back}"
            raised.append(AlertRaised(msg_id=msg_id, model=model, version=version,
                                      kind=kind, severity=severity, value=float(value), threshold=float(threshold),
                                      summary=text, details=details, rolled_back_to=back,
                                      evidence=self.tracker.evidence(key, kind)))     # ids checked on decode
        return raised

    async def request_rollback(self, model: str, reason: str, alert: str) -> dict:
        """Ask the deployment manager (``root.serve``) to roll ``model`` back, on behalf of the
        alert with id ``alert`` (the rollback's log lines and event carry it as their
        correlation id): the one Ray call the monitor makes (tests replace it)."""
        import asyncio

        from actors.remote import RayRuntime

        handle = RayRuntime(self.settings.cluster_name).lookup("root.serve")
        if handle is None:
            raise LookupError("root.serve is not running")
        return await asyncio.wait_for(handle.request.remote("rollback", model, reason, correlation_id=alert),
                                      timeout=30)

    def _previous_figures(self, routes, key) -> tuple[int, float] | None:
        """(version, accuracy) of the version a rollback would move to, when ``key`` is
        production and both have enough joined outcomes to compare."""
        from storage.route_rules import rollback_target

        back = rollback_target(routes) if routes is not None and routes.production == key[1] else None
        if back is None:
            return None
        stats = self.tracker.versions.get((key[0], back))
        if stats is None or stats.n_observed < self.settings.monitor_min_samples:
            return None
        accuracy = self.tracker.figures((key[0], back))["accuracy"]
        return None if accuracy is None else (back, accuracy)

    async def _roll_back(self, routes, key, why: str, alert: str) -> int | None:
        """Production back along the chain when ``key`` is production, there is an earlier
        version not rolled back from (by the monitor or by an operator), and the model was not
        rolled back within the window; the version production moved to, else None."""
        from storage.route_rules import rollback_target

        model, version = key
        demoted = self.tracker.extra.setdefault("demoted", [])
        last = self.tracker.extra.setdefault("rolled_back_at", {})
        back = rollback_target(routes) if routes is not None else None
        if (not self.objectives.get(model, self.settings).auto_rollback or routes is None
                or routes.production != version
                or back is None or [model, back] in demoted
                or time.time() - last.get(model, 0.0) < self.settings.monitor_window_s):
            return None
        try:
            done = await self.request_rollback(model, f"automatic: v{version}: {why}", alert)
        except Exception as exc:
            self.log.warning("automatic rollback failed", model=model, version=version, error=str(exc)[:300])
            return None
        demoted.append([model, version])
        last[model] = time.time()
        self.log.warning("production rolled back", model=model, version=version, to=done["version"], reason=why)
        return done["version"]

    def _export(self, key, f: dict) -> None:
        try:
            if self._gauges is None:
                from actors.remote import gauge

                self._gauges = {name: gauge(f"conveyor_model_{name}", text, ("model", "version"))
                                for name, text in GAUGES.items()}
            tags = {"model": key[0], "version": str(key[1])}
            values = {"served": f["n_served"], "fallbacks": f["n_fallback"], "errors": f["n_errors"],
                      "latency_p50_ms": f["latency_p50_ms"], "latency_p99_ms": f["latency_p99_ms"],
                      "latency_mean_ms": f["latency_mean_ms"], "latency_max_ms": f["latency_max_ms"],
                      "feature_psi_max": max((d["psi"] for d in f["feature_drift"].values()), default=None),
                      "prediction_psi": (f["prediction_drift"] or {}).get("psi"), "accuracy": f["accuracy"]}
            for name, value in values.items():
                if value is not None:
                    self._gauges[name].set(float(value), tags=tags)
        except Exception as exc:      # metrics are a view; the figures are stored regardless
            self.log.warning("metrics not exported", error=f"{type(exc).__name__}: {exc}"[:200])


UPSERT = (
    "INSERT INTO monitor_versions (model, version, n_served, n_fallback, n_errors, n_late, window_s, n_window,"
    " latency_min_ms, latency_mean_ms, latency_max_ms, latency_p50_ms, latency_p99_ms, n_observed, accuracy, mae,"
    " n_drift_sample, feature_drift, prediction_drift, first_seen_at, last_seen_at, updated_at) VALUES ($1, $2, $3,"
    " $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::jsonb, $19::jsonb, to_timestamp($20),"
    " to_timestamp($21), now()) ON CONFLICT (model, version) DO UPDATE SET n_served = EXCLUDED.n_served,"
    " n_fallback = EXCLUDED.n_fallback, n_errors = EXCLUDED.n_errors, n_late = EXCLUDED.n_late,"
    " window_s = EXCLUDED.window_s, n_window = EXCLUDED.n_window, latency_min_ms = EXCLUDED.latency_min_ms,"
    " latency_mean_ms = EXCLUDED.latency_mean_ms, latency_max_ms = EXCLUDED.latency_max_ms,"
    " latency_p50_ms = EXCLUDED.latency_p50_ms, latency_p99_ms = EXCLUDED.latency_p99_ms,"
    " n_observed = EXCLUDED.n_observed, accuracy = EXCLUDED.accuracy, mae = EXCLUDED.mae,"
    " n_drift_sample = EXCLUDED.n_drift_sample, feature_drift = EXCLUDED.feature_drift,"
    " prediction_drift = EXCLUDED.prediction_drift, first_seen_at = EXCLUDED.first_seen_at,"
    " last_seen_at = EXCLUDED.last_seen_at, updated_at = now()")
