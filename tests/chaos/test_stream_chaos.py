"""Chaos on the session cluster: while events stream in and a live learner is asked for
answers, seeded faults kill and freeze the actors on the streaming path. Afterwards every
event is stored once, every partition learned exactly what River alone learns from the
same events in the same order, every request got an answer, and every actor runs again.

The long run with its figures is ``python benchmarks/chaos.py`` (RELIABILITY.md)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.chaos.harness import (
    STREAM_TARGETS, ScoringTally, agrawal_events, inject, keep_scoring, plan_faults, recovery_summary,
    reference_scores, send_at_rate, tree_pid,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SEED = 11
N_EVENTS = 4000
N_FAULTS = 6
DURATION_S = 20.0


async def test_kills_and_freezes_while_streaming_lose_and_duplicate_nothing(conveyor, db):
    suffix = uuid.uuid4().hex[:8]
    name, stream = f"chaos-{suffix}", f"chaosstream-{suffix}"
    await conveyor.create_learner(f'name = "{name}"\nstream = "{stream}"\nlabel = "label"\n'
                                  '[model]\nalgorithm = "river.logistic_regression"\n', timeout_s=60)
    n_partitions = await conveyor.learner_partitions()
    events = agrawal_events(stream, N_EVENTS, seed=SEED)
    features = [{k: v for k, v in e.values.items() if k != "label"} for e in events]
    status = await conveyor.status()
    present = {a.id for a in status.actors()}
    targets = [t.format(p=p) for t in STREAM_TARGETS for p in range(n_partitions) if t.format(p=p) in present]
    faults = plan_faults(SEED, N_FAULTS, DURATION_S, sorted(set(targets)))

    # A late request is answered by a baseline, which a partition publishes once it has learned
    # something (before that, "no baseline yet" is the answer): learn a first slice, then ask.
    await conveyor.submit_many(events[:400])
    await conveyor.wait_learned(name, 400, timeout_s=120)
    await eventually(lambda: _has_baseline(conveyor, name, n_partitions), timeout_s=30, what="a baseline")
    await eventually(lambda: _answers(conveyor, name, features[0]), timeout_s=60, what="a first answer")
    tally = ScoringTally(deadline_ms=200.0)
    stop = asyncio.Event()
    scorer = asyncio.ensure_future(keep_scoring(
        lambda i: conveyor.score_online(name, features[i % len(features)], deadline_ms=tally.deadline_ms),
        tally, stop))
    started = time.monotonic()
    sender = asyncio.ensure_future(send_at_rate(conveyor.submit_many, events[400:], (N_EVENTS - 400) / DURATION_S))
    results = []
    try:
        for fault in faults:
            results.append(await inject(fault, lambda target: tree_pid(conveyor, target), started))
        await sender
        reports = await conveyor.wait_learned(name, N_EVENTS, timeout_s=180)
    finally:
        stop.set()
        await scorer
        sender.cancel()
    print(f"faults: {[(r.fault.action, r.fault.target, r.recovered_s, r.restarted) for r in results]}")
    print(f"recovery: {recovery_summary(results)}")
    print(f"scoring: {tally.n} requests, {tally.in_deadline} in {tally.deadline_ms:.0f} ms, by {tally.by}")

    assert [r.error for r in results if r.error] == []
    assert all(r.restarted for r in results if r.fault.action == "kill")
    # the raw store is its own consumer of `events`: a restarted ingestion worker may still be
    # catching up when the learner is done
    async def all_stored():
        got = await db.fetchrow("SELECT count(*) AS n, count(DISTINCT (partition, source_offset)) AS offsets"
                                " FROM raw_events WHERE stream = $1", stream)
        return got if got["n"] >= N_EVENTS else None

    stored = await eventually(all_stored, timeout_s=120, what="every event in the raw store")
    assert (stored["n"], stored["offsets"]) == (N_EVENTS, N_EVENTS)           # none lost, none twice
    reference = reference_scores(events, n_partitions)
    for p, expected in reference.items():
        part = reports[p]
        assert (part["n_predicted"], part["n_learned"]) == (expected["n"], expected["n"]), p
        assert part["scores"] == expected["scores"], p                        # as if nothing had happened
    assert tally.failed == [] and tally.n > 50                                 # every request answered
    healthy = await eventually(lambda: _all_running(conveyor), timeout_s=60, what="every actor running")
    assert healthy


async def _answers(conveyor, name: str, features: dict) -> bool:
    try:
        await conveyor.score_online(name, features, deadline_ms=1000)
        return True
    except Exception:
        return False


async def _has_baseline(conveyor, name: str, n_partitions: int) -> bool:
    """Whether a late request would find a baseline: read as the router reads it."""
    from client.online_scoring import _baseline

    return await _baseline(await conveyor._router(), name, 0, n_partitions, within_s=5.0) is not None


async def _all_running(conveyor) -> bool:
    status = await conveyor.status()
    return all(a.state == "running" for a in status.actors())


def test_the_harness_doctests_pass():
    import doctest

    import tests.chaos.harness

    assert doctest.testmod(tests.chaos.harness).failed == 0
