"""The deployment manager (``root.serve``): deploys and rolls back model versions and
keeps the replicas of every live version running.

A deployment loads the new version before any traffic moves: the artifact's signature
is checked, the artifact and its feature set are copied to Redis (where any replica
loads them), the replicas are started and each answers a health prediction; only then
are the aliases moved (``production`` to the new version, ``previous`` to the old one)
in one transaction with an audit record and a ``model.deployed`` event, and the routes
that callers read are replaced. Requests in flight on the old version finish: its
replicas stay up as ``previous``; versions that are neither are retired after a grace.
A rollback moves production back along the chain of earlier production versions
(``storage.route_rules``), loading a retired one again before traffic moves.

Replicas are detached named actors (``serve.<model>.v<version>.r<i>``): they outlive a
restart of the manager, which finds them again by name; its reconcile loop restarts a
replica that died (DESIGN §8, Ray Serve's controller: each step in its own try).
"""

from __future__ import annotations

import asyncio

from actors.logs import current_chain
from actors.spare_replicas import SpareReplicas
from actors.worker import Worker
from messages.codec import encode
from messages.serving import ModelDeployed
from ml.errors import FieldError
from storage.settings import Settings

#: Seconds a retired version's replicas stay up for requests already in flight.
RETIRE_GRACE_S = 2.0
#: Health checks a live replica may fail in a row before it is restarted: no answer within 2 s,
#: or an answer without its version loaded (a load that failed is not tried again in place).
MAX_MISSED_CHECKS = 3


class DeployRefused(FieldError):
    """A deployment, rollback or canary refused; ``field`` names the culprit."""


def replica_name(model: str, version: int, index: int) -> str:
    return f"serve.{model}.v{version}.r{index}"


class DeploymentManager(Worker):
    requests = ("deploy", "rollback")

    def __init__(self, settings: Settings, name: str, replicas: int = 2, reconcile_s: float = 0.5) -> None:
        super().__init__(settings, name)
        self.replicas, self.reconcile_s = replicas, reconcile_s
        self.pool = self._redis = self.store = self.models = self.compute = None
        self._lock = asyncio.Lock()
        self.n_replica_restarts = 0
        self._live = 0
        self._missed: dict[str, int] = {}      # replica -> health checks missed in a row
        self._processes: dict[str, tuple] = {}  # replica -> (pid, node id) its last health check gave
        self._watches: dict[str, object] = {}   # replica -> the watch that wakes the loop when it exits
        self._wake = asyncio.Event()
        self._spares = SpareReplicas(self)

    async def setup(self) -> None:
        from actors.remote import Compute
        from actors.wiring import pool_for, signing_key_bytes
        from storage.model_store import PostgresModelStore
        from storage.redis_store import connect_redis
        from storage.serving_store import RedisServingStore

        self.pool = await pool_for(self.settings, max_size=2)
        self._redis = connect_redis(self.settings.redis_url)
        key = signing_key_bytes(self.settings)
        self.store = RedisServingStore(self._redis, self.settings.cluster_name, key)
        self.models = PostgresModelStore(self.pool, key)
        self.compute = Compute(self.settings.cluster_name)

    async def teardown(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        if self.pool is not None:
            await self.pool.close()

    def heartbeat(self) -> dict:
        beat = super().heartbeat()
        if self._live:
            beat["activity"] = f"{self._live} replicas live, {self.n_replica_restarts} restarted"
        return beat

    # --- the reconcile loop ---------------------------------------------------------------

    async def step(self) -> None:
        async with self._lock:
            live = 0
            for routes in await self.store.all_routes():
                for version, info in routes.versions.items():
                    for name in info.replicas:
                        live += 1
                        try:
                            await self._ensure_replica(routes.model, version, name)
                        except Exception as exc:
                            self.log.warning("replica not restored", replica=name, error=f"{exc}"[:300])
            self._live = live
        self._spares.keep(live)
        try:        # a check every interval, or at once when a replica's process exits
            await asyncio.wait_for(self._wake.wait(), self.reconcile_s)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    async def _ensure_replica(self, model: str, version: int, name: str) -> None:
        from actors.remote import ActorGone, RayRuntime

        runtime = RayRuntime(self.settings.cluster_name)
        known = self._processes.get(name)
        exited = known is not None and runtime.process_gone(*known)     # seen here, not asked of Ray
        handle = None if exited else await asyncio.to_thread(runtime.lookup, name)
        if handle is not None:
            try:
                stats = await asyncio.wait_for(handle.stats.remote(), timeout=2.0)
                serving: bool | None = bool(stats["loaded"])
                self._watch(runtime, name, stats.get("pid"), stats.get("node_id"))
            except ActorGone:
                serving = None           # gone: restarted now
            except Exception:            # busy or hung
                serving = False
            if serving:
                self._missed.pop(name, None)
                return
            # busy, hung, or alive without its version (its load failed, say while Redis was
            # down): restarted only after MAX_MISSED_CHECKS checks in a row
            if serving is False:
                self._missed[name] = self._missed.get(name, 0) + 1
                if self._missed[name] < MAX_MISSED_CHECKS:
                    return
            self._missed.pop(name, None)
            self.compute.kill(handle)
        self._forget(runtime, name)
        await self._start_replica(model, version, name, spare=True)
        self.n_replica_restarts += 1
        self.n_processed += 1
        self.log.info("replica restarted", replica=name)

    def _watch(self, runtime, name: str, pid: int | None, node_id: str | None) -> None:
        """Wake the reconcile loop the moment the replica's process exits."""
        if pid is None or self._processes.get(name) == (pid, node_id):
            return
        self._forget(runtime, name)
        self._processes[name] = (pid, node_id)
        self._watches[name] = runtime.watch_exit(pid, node_id, self._wake.set)

    def _forget(self, runtime, name: str) -> None:
        runtime.unwatch(self._watches.pop(name, None))
        self._processes.pop(name, None)

    async def _start_replica(self, model: str, version: int, name: str, spare: bool = False):
        """The replica ``name`` started and loaded: in a spare process when ``spare`` and one is
        free (the name then points at it), else in a new one."""
        from actors.remote import RayRuntime

        runtime = RayRuntime(self.settings.cluster_name)
        taken = await self._spares.take(model, version) if spare else None
        if taken is None:
            await asyncio.to_thread(runtime.clear_alias, name)
            handle = await self.compute.start(name, "actors.remote:ReplicaHost", "actors.serving:ModelReplica",
                                              self.settings, model, version, detached=True)
        else:       # the name points at it at once, as a new process holds it while it loads
            spare_name, handle = taken
            await asyncio.to_thread(runtime.set_alias, name, spare_name)
        await asyncio.wait_for(handle.load.remote(), timeout=60)
        return handle

    # --- requests --------------------------------------------------------------------------

    async def deploy(self, model: str, version: int | None = None, replicas: int | None = None,
                     canary_weight: float | None = None) -> dict:
        async with self._lock:
            return await self._deploy(model, version, replicas or await self._configured_replicas(model)
                                      or self.replicas, canary_weight)

    async def _deploy(self, model: str, version: int | None, n_replicas: int, canary_weight: float | None) -> dict:
        from storage.route_rules import promoted
        from storage.serving_store import Routes

        candidate = await self._candidate(model, version)
        version = candidate["version"]
        routes = await self.store.routes(model) or Routes(model=model, task=candidate["task"])
        if canary_weight is None and routes.production == version:
            raise DeployRefused("version", f"{model} v{version} is already in production")
        routes, names = await self._load(model, candidate, routes, n_replicas)
        previous = routes.production
        if canary_weight is not None:
            routes.canary, routes.canary_weight = version, float(canary_weight)
        else:
            routes = promoted(routes, version)
            if routes.canary == version:
                routes.canary, routes.canary_weight = None, 0.0
        routes.baseline = await self._baseline(candidate["feature_set_id"], routes.task)
        routes.n_features = len(candidate["summary"].get("feature_names") or [])
        routes.raw_columns = await self._raw_columns(candidate["feature_set_id"])
        event = ModelDeployed(model=model, version=version, candidate_id=candidate["candidate_id"],
                              previous_version=previous, alias="canary" if canary_weight is not None else "production",
                              replicas=n_replicas, canary_weight=canary_weight, **current_chain())
        await self._record(model, version, candidate["candidate_id"], n_replicas, canary_weight, routes, event)
        routes = await self.store.set_routes(routes)          # traffic moves
        asyncio.get_running_loop().create_task(self._retire_unused(model))
        self.log.info("model deployed", model=model, version=version, previous=previous, canary=canary_weight)
        return {"model": model, "version": version, "previous": previous, "replicas": names,
                "canary_weight": canary_weight, "revision": routes.revision}

    async def _load(self, model: str, candidate: dict, routes, n_replicas: int):
        """Make ``candidate``'s version live without traffic: its signed artifact and feature
        set copied to Redis, its replicas started and loaded; the routes with it, and its
        replica names. A version that does not load is taken out again (DeployRefused)."""
        from storage.serving_store import VersionInfo
        from storage.signing import SignatureMismatch

        version = candidate["version"]
        dataset = await self.pool.fetchval("SELECT dataset FROM feature_sets WHERE feature_set_id = $1",
                                           candidate["feature_set_id"])
        try:
            artifact = await self.models.artifact_bytes(candidate["candidate_id"])
        except SignatureMismatch:
            raise DeployRefused("version", f"{model} v{version}: the artifact's signature does not verify; "
                                "refusing to load it") from None
        await self.store.put_artifact(model, version, artifact)
        await self.store.put_feature_set(candidate["feature_set_id"], await self._fitted(candidate["feature_set_id"]))
        names = [replica_name(model, version, i) for i in range(n_replicas)]
        routes.versions[version] = VersionInfo(candidate_id=candidate["candidate_id"], replicas=names,
                                               feature_set_id=candidate["feature_set_id"], dataset=dataset)
        routes = await self.store.set_routes(routes)          # replicas find their version; no traffic yet
        try:
            await asyncio.gather(*(self._start_replica(model, version, n) for n in names))
        except Exception as exc:
            for n in names:
                self._kill(n)
            routes.versions.pop(version, None)
            await self.store.set_routes(routes)
            raise DeployRefused("version", f"{model} v{version} did not load: {type(exc).__name__}: {exc}") from None
        return routes, names

    async def rollback(self, model: str, reason: str | None = None, to: int | None = None) -> dict:
        """Production back along the chain of earlier production versions, to the newest one
        not rolled back from (reloaded first when it was retired); ``reason`` goes into the
        event and the audit record. ``to`` names the version instead (an operator's restore
        of a version rolled back from): it goes back to production and is no longer demoted."""
        from storage.route_rules import promoted, rollback_target, rolled_back

        async with self._lock:
            routes = await self.store.routes(model)
            if routes is None or routes.production is None:
                raise DeployRefused("model", f"{model!r} is not deployed")
            current = routes.production
            if to is None:
                back = rollback_target(routes)
                if back is None:
                    raise DeployRefused("model", f"{model!r} has no earlier version to roll back to"
                                        + (f" (rolled back from: {', '.join(f'v{v}' for v in routes.demoted)})"
                                           if routes.demoted else ""))
            else:
                if isinstance(to, bool) or not isinstance(to, int) or to < 1:
                    raise DeployRefused("version", f"a positive whole number; got {to!r}")
                if to == current:
                    raise DeployRefused("version", f"{model} v{to} is already in production")
                back = to
            if back not in routes.versions:        # retired since: live again before traffic moves
                replicas = await self.pool.fetchval("SELECT replicas FROM deployments WHERE model = $1 AND version = $2",
                                                    model, back)
                routes, _ = await self._load(model, await self._candidate(model, back), routes,
                                             replicas or self.replicas)
            routes = rolled_back(routes, back) if to is None else promoted(routes, back)
            info = routes.versions[back]
            event = ModelDeployed(model=model, version=back, candidate_id=info.candidate_id, previous_version=current,
                                  replicas=len(info.replicas), rollback=True,
                                  reason=None if reason is None else str(reason)[:1024], **current_chain())
            await self._record(model, back, info.candidate_id, len(info.replicas), None, routes, event)
            routes = await self.store.set_routes(routes)
            self.log.info("model rolled back", model=model, version=back, from_version=current, reason=reason)
        asyncio.get_running_loop().create_task(self._retire_unused(model))
        return {"model": model, "version": back, "previous": current, "revision": routes.revision, "reason": reason}

    async def _configured_replicas(self, model: str) -> int | None:
        """The replicas the model's serving configuration asks for, if any."""
        from ml.serving_config import ServingConfigError, parse_serving_config

        text = await self.pool.fetchval("SELECT config_toml FROM serving_configs WHERE model = $1", model)
        try:
            return None if text is None else parse_serving_config(text).replicas
        except ServingConfigError as exc:
            self.log.warning("serving configuration ignored", model=model, error=str(exc)[:200])
            return None

    # --- helpers ----------------------------------------------------------------------------

    async def _candidate(self, model: str, version: int | None) -> dict:
        row = await self.pool.fetchrow(
            "SELECT c.candidate_id, c.version, c.feature_set_id, c.summary, r.task FROM candidates c"
            " JOIN training_runs r USING (run_id) WHERE c.model = $1 AND ($2::int IS NULL AND c.deployable"
            " OR c.version = $2) ORDER BY c.version DESC LIMIT 1", model, version)
        if row is None:
            known = await self.pool.fetchval("SELECT count(*) FROM candidates WHERE model = $1", model)
            if not known:
                raise DeployRefused("model", f"no trained candidate of {model!r}")
            raise DeployRefused("version", f"{model} has no version {version}" if version is not None else
                                f"{model} has no deployable candidate; name a VERSION to deploy it anyway")
        import json

        out = dict(row)
        out["summary"] = json.loads(out["summary"]) if isinstance(out["summary"], str) else out["summary"]
        return out

    async def _fitted(self, feature_set_id: str) -> bytes:
        from storage.signing import verify

        row = await self.pool.fetchrow("SELECT fitted, signature FROM feature_sets WHERE feature_set_id = $1",
                                       feature_set_id)
        verify(self.models._key, bytes(row["fitted"]), bytes(row["signature"]))
        return bytes(row["fitted"])

    async def _raw_columns(self, feature_set_id: str) -> list[str]:
        from ml.joined_features import load_feature_set, request_columns

        return request_columns(await asyncio.to_thread(load_feature_set, await self._fitted(feature_set_id)))

    async def _baseline(self, feature_set_id: str, task: str):
        from actors.preparation import typed_value
        from storage.serving_store import Baseline

        rows = await self.pool.fetch("SELECT label, count(*) AS n FROM features WHERE feature_set_id = $1"
                                     " AND label IS NOT NULL GROUP BY label", feature_set_id)
        if not rows:
            return None
        if task == "classification":
            counts = sorted(((typed_value(r["label"]), r["n"]) for r in rows), key=lambda c: c[0])
            total = sum(n for _, n in counts)
            majority = max(counts, key=lambda c: c[1])
            share = counts[1][1] / total if len(counts) == 2 else majority[1] / total
            return Baseline(score=share, label=str(majority[0]))
        total = sum(r["n"] for r in rows)
        return Baseline(score=sum(float(typed_value(r["label"])) * r["n"] for r in rows) / total)

    async def _record(self, model, version, candidate_id, n_replicas, canary_weight, routes, event) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO deployments (model, version, candidate_id, replicas, canary_weight) VALUES"
                " ($1, $2, $3, $4, $5) ON CONFLICT (model, version) DO UPDATE SET state = 'live', retired_at = NULL,"
                " replicas = EXCLUDED.replicas, canary_weight = EXCLUDED.canary_weight", model, version, candidate_id,
                n_replicas, canary_weight)
            for alias, v in (("production", routes.production), ("previous", routes.previous),
                             ("canary", routes.canary)):
                if v is None:
                    await conn.execute("DELETE FROM model_aliases WHERE model = $1 AND alias = $2", model, alias)
                else:
                    await conn.execute(
                        "INSERT INTO model_aliases (model, alias, candidate_id) VALUES ($1, $2, $3) ON CONFLICT"
                        " (model, alias) DO UPDATE SET candidate_id = EXCLUDED.candidate_id, updated_at = now()",
                        model, alias, routes.versions[v].candidate_id)
            await conn.execute("INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)",
                               self.name, "model.rollback" if event.rollback else "model.deployed", model,
                               encode(event).decode())
            await conn.execute("INSERT INTO outbox (topic, msg_key, payload, dedup_key) VALUES ($1, $2, $3, $4)",
                               "models", model.encode(), encode(event), f"deployed:{event.msg_id}")

    async def _retire_unused(self, model: str) -> None:
        """Versions that are neither production, previous nor canary: out of the routes now,
        their replicas stopped after the grace (requests in flight finish)."""
        try:
            async with self._lock:
                routes = await self.store.routes(model)
                keep = {routes.production, routes.previous, routes.canary}
                retired = {v: i for v, i in routes.versions.items() if v not in keep}
                if not retired:
                    return
                for v in retired:
                    del routes.versions[v]
                await self.store.set_routes(routes)
                await self.pool.execute("UPDATE deployments SET state = 'retired', retired_at = now()"
                                        " WHERE model = $1 AND version = ANY($2::int[])", model, list(retired))
            await asyncio.sleep(RETIRE_GRACE_S)
            async with self._lock:
                routes = await self.store.routes(model)
                for version, info in retired.items():
                    if routes is not None and version in routes.versions:
                        continue           # live again meanwhile (a rollback to it): its new replicas stay
                    for name in info.replicas:
                        self._kill(name)
        except Exception as exc:
            self.log.warning("retiring versions failed", model=model, error=str(exc)[:300])

    def _kill(self, name: str) -> None:
        from actors.remote import RayRuntime

        runtime = RayRuntime(self.settings.cluster_name)
        handle = runtime.lookup(name)
        self._forget(runtime, name)
        if handle is not None:
            self.compute.kill(handle)
        runtime.clear_alias(name)
