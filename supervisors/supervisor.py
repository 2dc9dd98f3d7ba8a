"""The supervisor actor: starts its children, watches them (death and missed
heartbeats), restarts them by its strategy with backoff, and escalates when the
restart intensity is exceeded.

Watching is cheap where it can be: at every check (``heartbeat_interval_s``) the process
of each worker on this node is looked at (exited, stopped by a signal), but a settled
one is asked for a heartbeat only every ``n_checks_per_ping`` checks; a worker whose
loop fails tells its supervisor at once (``child_failed``), and a frozen process is
pinged at once. Supervisors, late children and those on other nodes are pinged at every
check.

It is a detached named actor that Ray restarts (``max_restarts=-1``); on every
start it re-adopts the children that are still alive by name, so there is never
a duplicate worker. What must survive its own restart (restart counts and the
intensity window) is kept in Redis. Every step of its loop runs in its own try:
the loop never dies.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from actors.worker import AnswersStarted
from messages.base import Message
from messages.codec import encode
from messages.lifecycle import ActorCrashed, ActorHung, ActorRestarted, RestartIntensityExceeded
from storage.settings import Settings
from supervisors.children import ChildRecord
from supervisors.intensity import backoff_delay, record_restart
from supervisors.spares import Spares
from supervisors.spec import ChildSpec, HostSpec, Strategy, SupervisorSpec
from supervisors.strategy import should_restart, to_restart

HEALTHY = "running"
#: How long a supervisor child may be unreachable (Ray restarting it) before it counts as hung.
SUPERVISOR_GRACE_S = 10.0
ESCALATED = "escalated"
#: Restarts this soon after PostgreSQL or Redis was last seen down do not count against the
#: restart intensity: children that failed because a service they all share was down did
#: not fail on their own, and a few seconds' outage must not escalate to the root.
OUTAGE_GRACE_S = 15.0
#: The root looks whether a spare is missing this often (one may have died), besides at
#: once when a supervisor took one.
SPARES_CHECK_S = 10.0


class Supervisor(AnswersStarted):
    def __init__(self, spec: SupervisorSpec, settings: Settings, name: str, runtime=None) -> None:
        from actors.logs import configure_logging
        from actors.remote import RayRuntime

        configure_logging(settings.log_level)
        self.spec, self.settings, self.name = spec, settings, name
        self.runtime = runtime or RayRuntime(namespace=settings.cluster_name)
        self.flags = spec.flags
        self.state = "starting"
        self.restart_times: list[float] = []
        self.children = {c.id: ChildRecord(c, f"{name}.{c.id}") for c in spec.children}
        self.order = [c.id for c in spec.children]
        self.log = structlog.get_logger("conveyor.supervisor").bind(supervisor=name)
        self._redis = self._pool = self._memory = None
        self._outage_seen = -OUTAGE_GRACE_S - 1.0   # monotonic time a shared service was last seen down
        self._waiting_for: list[str] = []
        self._wake = asyncio.Event()
        self.spares = Spares(self.runtime, settings, settings.spare_workers, self.log)
        self._task = asyncio.get_running_loop().create_task(self._main())

    # --- the loop ----------------------------------------------------------------------

    async def _main(self) -> None:
        await self._retry_forever("connect", self._connect)
        await self._retry_forever("start children", self._start_children)
        self.state = HEALTHY if self.state != ESCALATED else self.state
        if "." not in self.name:     # the root starts the cluster's spares, once the tree's start is over
            self._spares_from = time.monotonic() + self.settings.spare_workers_after_s
        while True:
            try:    # a check every interval, or at once when a child reports a failure
                await asyncio.wait_for(self._wake.wait(), self.flags.heartbeat_interval_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if self.state == ESCALATED:
                continue
            try:
                await self._check_children()
            except Exception as exc:
                self.log.error("check failed", error=repr(exc))
            self._keep_spares()

    def _keep_spares(self, at_once: bool = False) -> None:
        """The root alone starts the cluster's spares (one filler: supervisors refilling at
        once each started a full set after a mass restart, a burst of imports on the cores
        the restarts needed): after the tree's start, every ``SPARES_CHECK_S``, and at once
        when a supervisor took one."""
        starts = getattr(self, "_spares_from", None)
        now = time.monotonic()
        if starts is None or now < starts or (not at_once and now - getattr(self, "_spares_checked", -1e9)
                                              < SPARES_CHECK_S):
            return
        self._spares_checked = now
        self.spares.refill()

    async def _retry_forever(self, what: str, step) -> None:
        while True:
            try:
                return await step()
            except Exception as exc:
                self.log.error(f"{what} failed; retrying", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _connect(self) -> None:
        from storage.postgres import connect_pool
        from storage.redis_store import SupervisionMemory, connect_redis

        self._redis = connect_redis(self.settings.redis_url)
        self._memory = SupervisionMemory(self._redis, self.settings.cluster_name, self.name)
        self._pool = await connect_pool(self.settings.postgres_dsn, max_size=2)
        remembered = await self._memory.load()
        self.restart_times = remembered.pop("__window__", {}).get("restart_times", [])
        for child_id, memo in remembered.items():
            if child_id in self.children:
                self.children[child_id].n_restarts = memo["n_restarts"]

    async def _start_children(self) -> None:
        """Adopt or start every child: in order where the strategy depends on the order,
        all at once for one_for_one (independent children start in parallel)."""
        if self.flags.strategy == Strategy.ONE_FOR_ONE:
            await asyncio.gather(*(self._adopt_or_start(self.children[c]) for c in self.order))
        else:
            for child_id in self.order:
                await self._adopt_or_start(self.children[child_id])

    async def _adopt_or_start(self, child: ChildRecord) -> None:
        if child.handle is None:
            child.handle = self.runtime.lookup(child.name)
            if child.handle is not None and not await self._answers(child):
                self._kill(child)
                child.handle = None
            if child.handle is not None:
                self.log.info("re-adopted child", child=child.name)
                return
        await self._start(child)  # a child that fails to start is restarted by the checks

    # --- watching ----------------------------------------------------------------------

    async def _check_children(self) -> None:
        # Exited processes first, acted on at once: the round of pings below waits for the
        # slowest answer (up to two heartbeat intervals from a busy child).
        await self._act_on_exits(self._watched())
        children = self._watched()
        handles = [child.handle for child in children]
        outcomes = await asyncio.gather(*(self._probe(c) for c in children))
        async with self._restarts():
            # a child restarted meanwhile (its exit was seen during the round) is not failed twice
            failed = [(child, failure, reason) for child, handle, (failure, reason) in zip(children, handles, outcomes)
                      if failure and self.state != ESCALATED and child.handle is handle and not child.restarting]
            if failed:
                await self._act_on(failed)

    def _restarts(self) -> asyncio.Lock:
        """Held while failures are acted on: an exit seen between checks and the checks' own
        findings restart one at a time."""
        if getattr(self, "_restart_lock", None) is None:
            self._restart_lock = asyncio.Lock()
        return self._restart_lock

    async def _act_on_exits(self, children: list[ChildRecord]) -> None:
        async with self._restarts():
            gone = [(child, "crashed", reason) for child in children
                    if not child.restarting and (reason := self._gone(child))]
            if gone and self.state != ESCALATED:
                await self._act_on(gone)

    def _exited(self, child: ChildRecord) -> None:
        """A watched child's process exited: restart it now, not after the next check's
        round of pings (a busy child's ping can hold a round up to two heartbeat intervals)."""
        self._wake.set()
        self._in_background(self._act_on_exits([child]))

    def _in_background(self, coroutine) -> None:
        """Run ``coroutine`` beside the checks, holding its task until it ends (a task only
        weakly referenced can vanish)."""
        if not hasattr(self, "_background"):
            self._background: set[asyncio.Task] = set()
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _watched(self) -> list[ChildRecord]:
        return [self.children[c] for c in self.order if c in self.children and not self.children[c].restarting]

    def _gone(self, child: ChildRecord) -> str:
        """Why the child's process is known gone without asking it ("" when it is not)."""
        pid, node_id = child.last_beat.get("pid"), child.last_beat.get("node_id")
        if not pid or child.handle is None or child.is_supervisor or not self.runtime.process_gone(pid, node_id):
            return ""
        return f"its process {pid} exited"

    def _watch_exit(self, child: ChildRecord) -> None:
        """Wake the checks the moment the child's process exits, not at the next interval."""
        pid = child.last_beat.get("pid")
        if child.is_supervisor or pid == child.watched_pid:
            return
        self.runtime.unwatch(child.watch)
        child.watch = self.runtime.watch_exit(pid, child.last_beat.get("node_id"), lambda: self._exited(child))
        child.watched_pid = pid

    async def _act_on(self, failed: list[tuple[ChildRecord, str, str]]) -> None:
        """Restart the failed children, unless a shared service is down (then wait for it)."""
        down = await self._services_down()
        if down:      # restarting now would fail again: wait for the service, count nothing
            self._outage_seen = time.monotonic()
            if down != self._waiting_for:
                self.log.warning("waiting for shared services before restarting", services=down,
                                 failed=[child.name for child, _, _ in failed])
            self._waiting_for = down
            return
        if self._waiting_for:
            self.log.info("shared services back", services=self._waiting_for)
            self._waiting_for = []
        for child, failure, reason in failed:
            await self._on_failure(child, failure, reason)

    async def _services_down(self) -> list[str]:
        """The shared services (PostgreSQL, Redis) that do not answer within a second."""
        down = []
        for name, check in (("postgres", lambda: self._pool.fetchval("SELECT 1")), ("redis", self._redis.ping)):
            try:
                await asyncio.wait_for(check(), 1.0)
            except Exception:
                down.append(name)
        return down

    async def _probe(self, child: ChildRecord) -> tuple[str | None, str]:
        """(None, "") if healthy, else (kind of failure, reason)."""
        from actors.remote import ActorGone, ActorUnavailable

        if child.handle is None:
            return "crashed", child.error or "not running"
        pid, node_id = child.last_beat.get("pid"), child.last_beat.get("node_id")
        # A worker's exited process is seen at once (a ping would hang ~1 s first); a
        # supervisor child is restarted in place by Ray, and re-adopts its children.
        local = not child.is_supervisor and node_id is not None and node_id == self.runtime.node_id()
        if reason := self._gone(child):
            return "crashed", reason
        frozen = local and self.runtime.process_stopped(pid, node_id)     # the ping below confirms it
        period_s = self.flags.heartbeat_interval_s * self.flags.n_checks_per_ping
        if not frozen and not child.ping_due(time.time(), period_s, local):
            return None, ""
        child.reported = False
        try:
            beat = await self.runtime.call(child.handle, "ping", self.flags.heartbeat_interval_s * 2)
        except (asyncio.TimeoutError, ActorUnavailable):
            # Ray restarts supervisors itself: give it time before calling one hung.
            child.missed_heartbeats += 1
            if local and self.runtime.process_stopped(pid, node_id):
                return "hung", f"missed a heartbeat; its process {pid} is stopped by a signal"
            allowed = self.flags.max_missed_heartbeats
            if child.is_supervisor:
                allowed = max(allowed, int(SUPERVISOR_GRACE_S / self.flags.heartbeat_interval_s))
            if child.missed_heartbeats >= allowed:
                return "hung", f"missed {child.missed_heartbeats} heartbeats"
            return None, ""
        except ActorGone as exc:
            return "crashed", f"actor died: {type(exc).__name__}"
        except Exception as exc:
            return "crashed", repr(exc)
        child.missed_heartbeats = 0
        child.last_beat, child.last_beat_at = beat, time.time()
        child.state = beat.get("state", "running")
        self._watch_exit(child)
        if child.state == HEALTHY:
            child.error = ""
        if child.state in ("failed", ESCALATED):
            return child.state, beat.get("error") or f"child reports {child.state}"
        return None, ""

    async def _answers(self, child: ChildRecord) -> bool:
        failure, _ = await self._probe(child)
        return failure is None and child.missed_heartbeats == 0

    # --- restarting --------------------------------------------------------------------

    async def _on_failure(self, child: ChildRecord, failure: str, reason: str) -> None:
        detected = time.monotonic()
        self.log.warning("child failed", child=child.name, failure=failure, reason=reason)
        if failure == "hung":
            await self._signal(ActorHung(supervisor=self.name, child_id=child.name,
                                         missed_heartbeats=child.missed_heartbeats))
        else:
            await self._signal(ActorCrashed(supervisor=self.name, child_id=child.name, reason=reason[:8000]))
        self._kill(child)
        if not should_restart(child.spec.restart, abnormal=True):
            self.children.pop(child.spec.id)
            self.order.remove(child.spec.id)
            return
        if time.monotonic() - self._outage_seen > OUTAGE_GRACE_S:
            self.restart_times, exceeded = record_restart(self.restart_times, time.time(),
                                                          self.flags.intensity, self.flags.period_s)
            await self._memory.save("__window__", 0, self.restart_times)
            if exceeded:
                await self._escalate()
                return
        else:
            self.log.info("restart not counted: a shared service was down moments ago", child=child.name)
        targets = [self.children[c] for c in to_restart(self.flags.strategy, self.order, child.spec.id)]
        for other in reversed(targets):
            other.restarting = True
            if other is not child:
                self._kill(other)
        await asyncio.sleep(backoff_delay(len(self.restart_times) - 1, self.flags.backoff_base_s,
                                          self.flags.backoff_max_s))
        for target in targets:
            started = await self._start(target, fresh_supervisor=True, spare=True)
            target.n_restarts += 1
            target.restarting = False
            await self._memory.save(target.spec.id, target.n_restarts, [])
            if started:
                target.last_restart_s = round(time.monotonic() - detected, 3)
                self.log.info("child restarted", child=target.name, restart_s=target.last_restart_s,
                              spawned_s=target.spawned_s)
                await self._signal(ActorRestarted(supervisor=self.name, child_id=target.name,
                                                  n_restarts=target.n_restarts, restart_s=target.last_restart_s))

    async def _escalate(self) -> None:
        self.state = ESCALATED
        self.log.error("restart intensity exceeded; escalating", n_restarts=len(self.restart_times))
        await self._signal(RestartIntensityExceeded(supervisor=self.name, n_restarts=len(self.restart_times),
                                                    period_s=self.flags.period_s))
        for child in self.children.values():
            self._kill(child)
            child.state = "stopped"

    def _kill(self, child: ChildRecord) -> None:
        """Kill a child for good; a supervisor child takes its subtree with it."""
        if child.handle is not None and child.is_supervisor:
            self._kill_subtree(child.name)
        self.runtime.unwatch(child.watch)      # its exit is ours: no need to wake for it
        child.watch = child.watched_pid = None
        if child.handle is not None:
            self.runtime.kill(child.handle, child.last_beat.get("pid"), child.last_beat.get("node_id"))
        child.handle = None
        child.missed_heartbeats = 0

    def _kill_subtree(self, name: str) -> None:
        """Kill every actor named below ``name`` (a supervisor's descendants)."""
        for below, handle in self.runtime.named_below(name):
            self.runtime.kill(handle)

    async def _start(self, child: ChildRecord, fresh_supervisor: bool = False, spare: bool = False) -> bool:
        """Create the child's actor and wait until it reports running; a restarted worker
        takes a spare process (``spare``) when one is free. On failure the child is killed and
        left without a handle: the next check restarts it, and the restart counts against
        the intensity window."""
        spec = child.spec
        child.state, child.last_beat = "starting", {}
        try:
            began = time.monotonic()
            if isinstance(spec, ChildSpec):
                if spare and spec.num_cpus == 0:
                    child.handle = await self.spares.take(child.name, spec.factory, dict(spec.args))
                    if child.handle is not None:
                        self._tell_root_a_spare_was_taken()
                if child.handle is None:
                    await asyncio.to_thread(self.runtime.clear_alias, child.name)   # its own name again
                    child.handle = await self.runtime.spawn_worker(child.name, spec.factory, self.settings,
                                                                   dict(spec.args), spec.num_cpus)
            elif isinstance(spec, HostSpec):   # its workers keep their names beside the host's
                workers = [(w.id, name, w.factory, dict(w.args)) for w, name in child.hosted()]
                child.handle = await self.runtime.spawn_host(child.name, self.settings, workers, spec.num_cpus)
            else:
                if fresh_supervisor:  # a restart by its parent starts with a clean window
                    from storage.redis_store import SupervisionMemory
                    await SupervisionMemory(self._redis, self.settings.cluster_name, child.name).forget()
                child.handle = await self.runtime.spawn_supervisor(
                    self.runtime.actor_class(Supervisor), child.name, spec, self.settings, child.name)
            child.spawned_s = round(time.monotonic() - began, 3)    # until Ray took the actor's name
            deadline = time.monotonic() + self.flags.start_timeout_s
            beat: dict = {}
            while beat.get("state") not in (HEALTHY, "failed", ESCALATED) and (left := deadline - time.monotonic()) > 0:
                if beat:
                    await asyncio.sleep(0.02)
                # one call that returns once the child has left "starting" (not a ping every 20 ms)
                beat = await self.runtime.call(child.handle, "started", left + 5.0, left)
            child.last_beat, child.last_beat_at, child.state = beat, time.time(), beat.get("state", "?")
            if child.state == HEALTHY:
                self._watch_exit(child)
                return True
            child.error = beat.get("error") or f"not running after {self.flags.start_timeout_s} s"
        except Exception as exc:
            child.error = f"start failed: {exc!r}"
        self.log.error("child did not start", child=child.name, error=child.error)
        self._kill(child)
        child.state = "failed"
        return False

    async def _signal(self, message: Message) -> None:
        """Record a lifecycle signal in the outbox (published to `lifecycle` by the relay)."""
        try:
            await self._pool.execute("INSERT INTO outbox (topic, msg_key, payload) VALUES ($1, $2, $3)",
                                     "lifecycle", self.name.encode(), encode(message))
        except Exception as exc:
            self.log.error("lifecycle signal not recorded", error=repr(exc), signal=type(message).__name__)

    # --- the actor's API ---------------------------------------------------------------

    async def ping(self) -> dict[str, Any]:
        import os

        return {"state": self.state, "pid": os.getpid(), "error": "",
                "node_id": self.runtime.node_id()}

    async def child_failed(self, name: str) -> None:
        """Told by a child's host that its worker failed: the child is checked at once,
        without waiting for its next ping."""
        child = self.children.get(name.removeprefix(f"{self.name}."))
        if child is not None and child.name == name:
            child.reported = True
            self._wake.set()

    async def spare_taken(self) -> None:
        """A supervisor below took a spare (the root starts a replacement)."""
        self._keep_spares(at_once=True)

    def _tell_root_a_spare_was_taken(self) -> None:
        if "." not in self.name:
            self._keep_spares(at_once=True)
            return

        async def tell_root() -> None:
            try:
                root = await asyncio.to_thread(self.runtime.lookup, self.name.split(".")[0])
                await self.runtime.call(root, "spare_taken", 5.0)
            except Exception as exc:     # the root's next periodic look starts it
                self.log.warning("root not told of a spare taken", error=f"{type(exc).__name__}: {exc}"[:200])

        self._in_background(tell_root())

    async def status(self) -> dict[str, Any]:
        """This supervisor and its whole subtree (the supervisor children asked at once: a
        status is as slow as the slowest subtree, not their sum)."""
        async def entry_of(child: ChildRecord) -> dict[str, Any]:
            entry = child.status()
            if child.is_supervisor and child.handle is not None and not child.restarting:
                try:
                    sub = await self.runtime.call(child.handle, "status", 5.0)
                    entry.update({k: v for k, v in sub.items() if k not in ("id", "n_restarts")})
                except Exception as exc:
                    entry["error"] = repr(exc)
            return entry

        children = list(await asyncio.gather(*(entry_of(self.children[c]) for c in self.order)))
        return {"id": self.name, "kind": "supervisor", "state": self.state, "strategy": self.flags.strategy.value,
                "intensity": f"{len(self.restart_times)}/{self.flags.intensity} in {self.flags.period_s:g} s",
                "children": children}

    async def shutdown(self) -> None:
        """Stop every child (subtrees first), then this supervisor's loop."""
        self._task.cancel()
        for child_id in reversed(self.order):
            child = self.children[child_id]
            if child.is_supervisor and child.handle is not None:
                try:
                    await self.runtime.call(child.handle, "shutdown", 10.0)
                except Exception:
                    pass
            self._kill(child)
        self.spares.close()
        if "." not in self.name:      # the root: the spares no child took go with the tree
            await self.spares.stop_all()
        if self._pool is not None:
            await self._pool.close()
        if self._redis is not None:
            await self._redis.aclose()
