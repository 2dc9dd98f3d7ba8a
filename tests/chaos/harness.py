"""Faults injected into a running cluster while it works, reproducibly from a seed, and
what they cost: records in vs. stored and learned (lost, duplicated), requests answered
in their deadline, and how long each killed or frozen actor took to run again.

Used by ``tests/chaos/`` (a short run on the session cluster) and by
``benchmarks/chaos.py`` (the long run whose table goes into RELIABILITY.md).

A service restart kills an embedded service (PostgreSQL, Redis or the broker, with every
process of it) under the running tree, leaves it down a while, then repairs the cluster
as a user would, with ``python run.py cluster start``.

A fault is a SIGKILL of an actor's process, or a SIGSTOP for ``freeze_s`` then SIGCONT
(a process frozen longer than the supervisor's missed-heartbeat allowance is killed and
restarted by it: three missed heartbeats, about 4.5 s with the default settings, since
each ping waits twice the 0.5 s interval; a shorter freeze is a stall the actor rides
out). Targets are actor ids of the supervision tree or serving replicas
(``serve.MODEL.vN.rK``), whose pids the cluster reports.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import statistics
import time
from dataclasses import dataclass, field

#: Actors the streaming path crosses; a plan draws its targets from these (those that exist).
STREAM_TARGETS = ("root.ingest.events-{p}", "root.learn.learner-{p}", "root.outbox", "root.scores", "root.monitor")


#: A thawed process still running as itself this long after SIGCONT was not declared hung.
SURVIVOR_S = 5.0


@dataclass(frozen=True)
class Fault:
    at_s: float          # seconds after the load started
    action: str          # "kill" or "freeze"
    target: str          # actor id or replica name
    freeze_s: float = 0.0


def plan_faults(seed: int, n_faults: int, duration_s: float, targets: list[str], freeze_share: float = 0.25,
                freeze_s: float = 2.5) -> list[Fault]:
    """``n_faults`` faults spread over ``duration_s`` (one per equal slot, at a seeded point
    in its middle half), each on a seeded target; the same seed gives the same plan.

    >>> [(f.action, f.target) for f in plan_faults(3, 3, 30.0, ["a", "b"])]
    [('freeze', 'b'), ('kill', 'a'), ('kill', 'b')]
    >>> plan_faults(3, 3, 30.0, ["a", "b"]) == plan_faults(3, 3, 30.0, ["a", "b"])
    True
    """
    rng = random.Random(seed)
    slot = duration_s / max(n_faults, 1)
    faults = []
    for i in range(n_faults):
        action = "freeze" if rng.random() < freeze_share else "kill"
        faults.append(Fault(at_s=round(slot * (i + 0.25 + 0.5 * rng.random()), 3), action=action,
                            target=rng.choice(sorted(targets)), freeze_s=freeze_s if action == "freeze" else 0.0))
    return faults


@dataclass
class FaultResult:
    fault: Fault
    pid: int | None = None
    recovered_s: float | None = None   # from the fault (a freeze's start) until it ran again
    restarted: bool = False            # a new process took over (a frozen one was killed by its supervisor)
    #: its supervisor's own count, from seeing the failure until the new process ran (``restart_s``
    #: of its status): the rest of ``recovered_s`` is detection, and this harness seeing it
    restart_s: float | None = None
    error: str = ""


async def tree_pid(conveyor, actor_id: str) -> tuple[int | None, str]:
    """(pid, state) of an actor of the tree, (None, "") when it is not there."""
    try:
        actor = (await conveyor.status()).actor(actor_id)
    except KeyError:
        return None, ""
    return actor.pid, actor.state


async def tree_restart_s(conveyor, actor_id: str) -> float | None:
    """Seconds the actor's supervisor took for its last restart, from seeing the failure until
    the new process ran; None when it is not known (not there, never restarted)."""
    try:
        return (await conveyor.status()).actor(actor_id).last_restart_s
    except KeyError:
        return None


async def spares_ready(conveyor, n: int, timeout_s: float = 180.0) -> int:
    """Wait until ``n`` spare processes are ready (a cluster up for a while has them: the
    root starts them ``spare_workers_after_s`` after the tree); how many are."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = sum(spare.state == "ready" for spare in (await conveyor.status()).spares)
        if ready >= n or time.monotonic() > deadline:
            return ready
        await asyncio.sleep(0.5)


async def replica_pid(runtime, name: str) -> tuple[int | None, str]:
    """(pid, "running") of a serving replica that answers, (None, "") otherwise."""
    handle = runtime.lookup(name)
    if handle is None:
        return None, ""
    try:
        pid = await runtime.call(handle, "pid", 2.0)
        loaded = (await runtime.call(handle, "stats", 2.0))["loaded"]
    except Exception:
        return None, ""
    return pid, "running" if loaded else "starting"


async def inject(fault: Fault, pid_of, started: float, recover_timeout_s: float = 60.0,
                 restart_s_of=None) -> FaultResult:
    """Wait for the fault's time, apply it, and wait until the target runs again: in a new
    process, or (a freeze the supervisor did not act on) the same one, thawed. Given
    ``restart_s_of`` (target -> its supervisor's restart seconds), a restart's own part is
    asked for once the new process runs."""
    await asyncio.sleep(max(0.0, started + fault.at_s - time.monotonic()))
    result = FaultResult(fault)
    pid, state = await pid_of(fault.target)
    if pid is None or state != "running":
        result.error = f"{fault.target} not running ({state or 'absent'}) at its fault time"
        return result
    result.pid = pid
    began = time.monotonic()
    thawed_s = None
    try:
        os.kill(pid, signal.SIGKILL if fault.action == "kill" else signal.SIGSTOP)
    except ProcessLookupError:
        result.error = f"{fault.target} pid {pid} was already gone"
        return result
    while time.monotonic() - began < recover_timeout_s:
        if fault.action == "freeze" and thawed_s is None and time.monotonic() - began >= fault.freeze_s:
            _thaw(pid)
            thawed_s = time.monotonic() - began
        now_pid, state = await pid_of(fault.target)
        if state == "running" and now_pid is not None and now_pid != pid:
            result.recovered_s, result.restarted = time.monotonic() - began, True
            if thawed_s is None:
                _thaw(pid)          # replaced while frozen: its supervisor killed it (never leave one stopped)
            if restart_s_of is not None:
                result.restart_s = await restart_s_of(fault.target)
            return result
        if thawed_s is not None and state == "running" and now_pid == pid and not _frozen(pid) \
                and time.monotonic() - began > thawed_s + SURVIVOR_S:     # thawed, and it was not replaced
            result.recovered_s = thawed_s
            return result
        await asyncio.sleep(0.05)
    if thawed_s is None:
        _thaw(pid)
    result.error = f"{fault.target} not running again {recover_timeout_s:.0f} s after the {fault.action}"
    return result


@dataclass
class ServiceRestart:
    service: str
    at_s: float                        # seconds after the load started
    down_s: float                      # how long it was left dead before the repair
    repaired_s: float | None = None    # from the kill until `cluster start` had the tree healthy again
    said: str = ""                     # the repair's last line, or what went wrong


async def restart_service(cli, record_file, name: str, at_s: float, down_s: float, started: float) -> ServiceRestart:
    """At ``at_s``, SIGKILL every process of the embedded service ``name`` (its pids from the
    cluster's record ``record_file``), wait ``down_s``, then run ``cluster start`` through
    ``cli`` (a blocking ``cli(*args) -> CompletedProcess``; run in a thread) to repair it."""
    import json

    from storage.processes import with_descendants

    await asyncio.sleep(max(0.0, started + at_s - time.monotonic()))
    result = ServiceRestart(name, at_s, down_s)
    pids = json.loads(record_file.read_text())["services"][name]["pids"]
    began = time.monotonic()
    for proc in with_descendants(pids):
        try:
            proc.kill()
        except Exception:
            pass
    await asyncio.sleep(down_s)
    done = await asyncio.to_thread(cli, "cluster", "start")
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    result.said = said[-1][:300] if said else f"exit {done.returncode}"
    if done.returncode == 0:
        result.repaired_s = time.monotonic() - began
    return result


def _thaw(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def _frozen(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


@dataclass
class ScoringTally:
    """Requests sent while faults happen: answered in the deadline, late, failed; by answerer."""
    deadline_ms: float
    latencies_ms: list[float] = field(default_factory=list)
    by: dict[str, int] = field(default_factory=dict)
    late_by: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def add(self, result) -> None:
        self.latencies_ms.append(result.latency_ms)
        self.by[result.answered_by] = self.by.get(result.answered_by, 0) + 1
        if result.latency_ms > self.deadline_ms:
            self.late_by[result.answered_by] = self.late_by.get(result.answered_by, 0) + 1

    def failures(self) -> dict[str, int]:
        """How often each failure was seen (its message up to the first digit: ids and times
        differ between requests)."""
        counts: dict[str, int] = {}
        for message in self.failed:
            kind = re.split(r"[0-9]", message, maxsplit=1)[0].rstrip(" v-.:") or message
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    @property
    def n(self) -> int:
        return len(self.latencies_ms) + len(self.failed)

    @property
    def in_deadline(self) -> int:
        return sum(1 for ms in self.latencies_ms if ms <= self.deadline_ms)

    def availability(self) -> float:
        """Share of requests answered within their deadline (a fallback's answer counts)."""
        return self.in_deadline / self.n if self.n else 0.0


async def keep_scoring(score, tally: ScoringTally, stop: asyncio.Event, pause_s: float = 0.01) -> None:
    """Call ``score(i)`` until ``stop`` is set, counting every outcome in ``tally``."""
    i = 0
    while not stop.is_set():
        try:
            tally.add(await score(i))
        except Exception as exc:      # every failure is counted, none ends the run
            tally.failed.append(f"{type(exc).__name__}: {exc}"[:200])
        i += 1
        await asyncio.sleep(pause_s)


async def loop_stalls(stop: asyncio.Event, period_s: float = 0.01) -> list[float]:
    """How late (ms) this process's event loop woke from each ``period_s`` sleep until
    ``stop``: every caller on the loop waits that long too, whatever the cluster does."""
    late: list[float] = []
    while not stop.is_set():
        began = time.perf_counter()
        await asyncio.sleep(period_s)
        late.append(max(0.0, (time.perf_counter() - began - period_s) * 1000.0))
    return late


async def send_at_rate(submit, items: list, rate: float, batch: int = 200) -> float:
    """Submit ``items`` in batches at about ``rate`` per second; the seconds it took."""
    began = time.monotonic()
    for at in range(0, len(items), batch):
        await asyncio.sleep(max(0.0, began + at / rate - time.monotonic()))
        await submit(items[at:at + batch])
    return time.monotonic() - began


def recovery_summary(results: list[FaultResult]) -> dict:
    """Recovery figures per action: count, recovered, p50 and max seconds; and of the restarts
    whose supervisor's own part is known (``restart_s``), its count, p50 and max.

    >>> kill = Fault(at_s=1.0, action="kill", target="root.outbox")
    >>> summary = recovery_summary([FaultResult(kill, recovered_s=3.0, restarted=True, restart_s=2.0),
    ...                             FaultResult(kill, recovered_s=5.0, restarted=True)])
    >>> summary["kill"]["p50_s"], summary["kill"]["restart"]
    (4.0, {'n': 1, 'p50_s': 2.0, 'max_s': 2.0})
    """
    out = {}
    for action in ("kill", "freeze"):
        times = [r.recovered_s for r in results if r.fault.action == action and r.recovered_s is not None]
        own = [r.restart_s for r in results if r.fault.action == action and r.restart_s is not None]
        total = sum(1 for r in results if r.fault.action == action)
        out[action] = {"n": total, "recovered": len(times),
                       "p50_s": statistics.median(times) if times else None, "max_s": max(times) if times else None,
                       "restart": {"n": len(own), "p50_s": statistics.median(own) if own else None,
                                   "max_s": max(own) if own else None}}
    return out


def agrawal_events(stream: str, n: int, n_entities: int = 50, seed: int = 11):
    """``n`` events of River's seeded Agrawal stream (labels in the events), spread over entities."""
    from river.datasets import synth

    from messages.stream import StreamEvent

    rows = list(synth.Agrawal(classification_function=2, seed=seed).take(n))
    return [StreamEvent(stream=stream, entity_key=f"e{i % n_entities}", values={**x, "label": bool(y)})
            for i, (x, y) in enumerate(rows)]


def reference_scores(events, n_partitions: int) -> dict[int, dict]:
    """River alone over each partition's events, in the order they were sent."""
    from river import evaluate, linear_model, metrics, preprocessing

    from client.learning import partition_of

    out = {}
    for p in range(n_partitions):
        mine = [({k: v for k, v in e.values.items() if k != "label"}, e.values["label"]) for e in events
                if partition_of(e.entity_key, n_partitions) == p]
        if not mine:
            continue
        accuracy = evaluate.progressive_val_score(
            mine, preprocessing.StandardScaler() | linear_model.LogisticRegression(), metrics.Accuracy()).get()
        auc = evaluate.progressive_val_score(
            mine, preprocessing.StandardScaler() | linear_model.LogisticRegression(), metrics.ROCAUC()).get()
        out[p] = {"n": len(mine), "scores": {"accuracy": accuracy, "roc_auc": auc}}
    return out
