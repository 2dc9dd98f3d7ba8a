"""The whole supervision tree of a cluster, and starting, finding and stopping it."""

from __future__ import annotations

import asyncio
import time

from storage.settings import Settings
from supervisors.spec import ChildSpec, HostSpec, Strategy, SupervisorFlags, SupervisorSpec
from supervisors.supervisor import ESCALATED

ROOT = "root"


def flags_from(settings: Settings, strategy: Strategy = Strategy.ONE_FOR_ONE) -> SupervisorFlags:
    return SupervisorFlags(
        strategy=strategy, intensity=settings.restart_intensity, period_s=settings.restart_period_s,
        backoff_base_s=settings.backoff_base_s, backoff_max_s=settings.backoff_max_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        max_missed_heartbeats=settings.max_missed_heartbeats, n_checks_per_ping=settings.n_checks_per_ping,
        start_timeout_s=settings.start_timeout_s,
    )


def cluster_tree(settings: Settings) -> SupervisorSpec:
    """root ─┬─ outbox                             (publishes what transactions emitted)
             ├─ light ─┬─ join          (features.generated -> joins whose sources all arrived)
             │         ├─ scheduler     (publishes scheduled commands when due)
             │         ├─ train         (train.models -> candidates, each in its own actor; verdict)
             │         ├─ train-trigger (features.generated -> train.models where configured)
             │         └─ scores        (score.recorded -> the score store)
             ├─ ingest ─┬─ events-0 … events-N-1   (one worker per partition of `events`)
             ├─ batch ──┬─ coordinator             (IngestBatch / SourceAvailable -> batch + tasks)
             │          └─ loader-0 … loader-M-1   (one per partition of `ingest.tasks`)
             ├─ prepare                            (raw.ingested -> features, offline and online)
             ├─ serve                              (deploy / rollback; keeps every live version's replicas up)
             ├─ fallback                           (answers with the previous version or the baseline)
             ├─ monitor                            (score.recorded, observations -> figures, drift, alerts)
             ├─ learn ─┬─ learner-0 … learner-N-1  (River learners of each partition of `events`)
             └─ score-batch ─┬─ coordinator        (score.batch -> a job + partition tasks)
                             └─ scorer-0 … scorer-K-1  (one per partition of `score.tasks`)

    The workers under ``light`` mostly wait, and share one process (a `HostSpec`: one
    failing restarts them all); their ids stay ``root.join`` and so on. The ones that work
    per event or per row, or answer requests, keep a process each, and so does the outbox
    relay: every event between stages passes through it, so it restarts alone and fast."""
    flags = flags_from(settings)
    ingest = SupervisorSpec(id="ingest", flags=flags, children=tuple(
        ChildSpec(id=f"events-{p}", factory="actors.stream_ingest:StreamIngestWorker",
                  args={"topic": "events", "partition": p})
        for p in range(settings.topic_partitions)))
    batch = SupervisorSpec(id="batch", flags=flags, children=(
        ChildSpec(id="coordinator", factory="actors.batch_ingest:IngestCoordinator"),
        *(ChildSpec(id=f"loader-{p}", factory="actors.batch_ingest:BatchLoader", args={"partition": p})
          for p in range(settings.ingest_workers))))
    outbox = ChildSpec(id="outbox", factory="actors.outbox_relay:OutboxRelay")
    prepare = ChildSpec(id="prepare", factory="actors.preparation:PreparationWorker")
    join = ChildSpec(id="join", factory="actors.joiner:Joiner")
    scheduler = ChildSpec(id="scheduler", factory="actors.scheduler:Scheduler")
    train = ChildSpec(id="train", factory="actors.training:TrainingCoordinator")
    trigger = ChildSpec(id="train-trigger", factory="actors.training_trigger:TrainingTrigger")
    serve = ChildSpec(id="serve", factory="actors.deployment:DeploymentManager")
    fallback = ChildSpec(id="fallback", factory="actors.serving:FallbackScorer")
    scores = ChildSpec(id="scores", factory="actors.score_recorder:ScoreRecorder")
    monitor = ChildSpec(id="monitor", factory="actors.monitoring:Monitor")
    score_batch = SupervisorSpec(id="score-batch", flags=flags, children=(
        ChildSpec(id="coordinator", factory="actors.batch_scoring:BatchScoreCoordinator"),
        *(ChildSpec(id=f"scorer-{p}", factory="actors.batch_scoring:BatchScorer", args={"partition": p})
          for p in range(settings.batch_score_workers))))
    learn = SupervisorSpec(id="learn", flags=flags, children=tuple(
        ChildSpec(id=f"learner-{p}", factory="actors.learner:LearnerWorker", args={"partition": p})
        for p in range(settings.topic_partitions)))
    light = HostSpec(id="light", children=(join, scheduler, train, trigger, scores))
    return SupervisorSpec(id=ROOT, flags=flags, children=(outbox, light, ingest, batch, prepare, serve, fallback,
                                                          monitor, score_batch, learn))


class TreeStartTimeout(TimeoutError):
    """The supervision tree stopped coming up: no actor started for the start timeout."""


async def start_tree(spec: SupervisorSpec, settings: Settings, timeout_s: float, progress=lambda s: None):
    """Start (or re-adopt) the named root supervisor of ``spec`` and wait until its
    whole tree reports running; returns the handle.

    A start that keeps progressing is given time: it fails (``TreeStartTimeout``) only when
    no further actor came up for ``timeout_s``, or after three times ``timeout_s`` in all.
    On a loaded machine each actor's process start can take several times its usual second."""
    from actors.remote import RayRuntime
    from supervisors.supervisor import Supervisor

    runtime = RayRuntime(settings.cluster_name)
    handle = runtime.lookup(spec.id)
    if handle is not None and await _gave_up(runtime, handle):
        handle = await _start_again(runtime, handle, spec, settings, progress)
    handle = handle or await runtime.spawn_supervisor(runtime.actor_class(Supervisor), spec.id, spec, settings,
                                                      spec.id)
    began = time.monotonic()
    deadline, most_running, fresh_starts = began + timeout_s, -1, 2
    last, status = "", None
    while time.monotonic() < deadline:
        try:
            status = await runtime.call(handle, "status", 5.0)
        except asyncio.TimeoutError:
            continue
        summary = summarize(status)
        if summary != last:
            progress(summary)
            last = summary
        if tree_healthy(status):
            return handle
        if status["state"] == ESCALATED and fresh_starts:   # gave up while coming up (a service was down)
            fresh_starts -= 1
            handle, most_running = await _start_again(runtime, handle, spec, settings, progress), -1
            continue
        running = sum(1 for node in walk(status) if node["state"] == "running")
        if running > most_running:
            most_running = running
            deadline = min(time.monotonic() + timeout_s, began + 3 * timeout_s)
        await asyncio.sleep(0.1)
    waiting = "; ".join(not_running(status)) if status else "the root supervisor never answered"
    raise TreeStartTimeout(f"supervision tree not healthy after {time.monotonic() - began:.0f} s "
                           f"(no progress for {timeout_s:g} s, or 3 times that in all): "
                           f"{last + '; ' if last else ''}not running: {waiting}")


async def _gave_up(runtime, handle) -> bool:
    """Whether a running root supervisor has escalated (its restart intensity exceeded,
    every child stopped): with no parent to restart it, only a new start brings it back."""
    try:
        return (await runtime.call(handle, "status", 10.0))["state"] == ESCALATED
    except Exception:          # not answering: left to Ray, which restarts a dead supervisor
        return False


async def _start_again(runtime, handle, spec: SupervisorSpec, settings: Settings, progress):
    """A new root supervisor in place of one that gave up, every restart window emptied."""
    from supervisors.supervisor import Supervisor

    progress(f"{spec.id} gave up after too many restarts of its children: starting it again")
    runtime.kill(handle)
    await forget_restarts(spec, settings)
    return await runtime.spawn_supervisor(runtime.actor_class(Supervisor), spec.id, spec, settings, spec.id)


async def forget_restarts(spec: SupervisorSpec, settings: Settings) -> None:
    """Every supervisor of the tree starts again with an empty restart window."""
    from storage.redis_store import SupervisionMemory, connect_redis

    def names(node: SupervisorSpec, name: str):
        yield name
        for child in node.children:
            if isinstance(child, SupervisorSpec):
                yield from names(child, f"{name}.{child.id}")

    client = connect_redis(settings.redis_url)
    try:
        for name in names(spec, spec.id):
            await SupervisionMemory(client, settings.cluster_name, name).forget()
    finally:
        await client.aclose()


def walk(status: dict):
    yield status
    for child in status.get("children", []):
        yield from walk(child)


def not_running(status: dict) -> list[str]:
    """``name (state: error)`` of each actor that is not running.

    >>> not_running({"id": "root", "state": "running", "children": [
    ...     {"id": "root.serve", "state": "starting", "error": ""}, {"id": "root.monitor", "state": "running"}]})
    ['root.serve (starting)']
    """
    return [f"{n['id']} ({n['state']}{': ' + n['error'][:200] if n.get('error') else ''})"
            for n in walk(status) if n["state"] != "running"]


def tree_healthy(status: dict) -> bool:
    return all(node["state"] == "running" for node in walk(status))


def summarize(status: dict) -> str:
    nodes = list(walk(status))
    running = sum(1 for n in nodes if n["state"] == "running")
    return f"{running}/{len(nodes)} actors running"


async def stop_tree(root_name: str, settings: Settings) -> bool:
    """Shut the tree down from its root; False if there was no root to stop."""
    from actors.remote import RayRuntime

    runtime = RayRuntime(settings.cluster_name)
    handle = runtime.lookup(root_name)
    if handle is None:
        return False
    try:
        await runtime.call(handle, "shutdown", 30.0)
    except Exception:
        pass
    runtime.kill(handle)
    return True
