"""The soak benchmark's figures: which processes were busiest, and a learner that stops
learning ends the run with its figures instead of hanging it."""

from __future__ import annotations

import asyncio
import doctest
from types import SimpleNamespace

import pytest

from benchmarks import soak
from benchmarks.soak import actors_by_pid, busiest, table, wait_caught_up
from tests.chaos.harness import ScoringTally
from tests.support.arguments import refused


def _node(id, kind, pid=None, children=()):
    return SimpleNamespace(id=id, kind=kind, pid=pid, children=list(children))


def test_workers_sharing_a_process_are_named_together_and_supervisors_are_left_out():
    tree = _node("root", "supervisor", 1, [
        _node("root.light", "host", 10, [_node("root.join", "worker", 10), _node("root.train", "worker", 10)]),
        _node("root.learn", "supervisor", 20, [_node("root.learn.learner-0", "worker", 21)]),
        _node("root.gone", "worker", None)])
    assert actors_by_pid(SimpleNamespace(tree=tree)) == {10: "join,train", 21: "learn.learner-0"}
    assert actors_by_pid(SimpleNamespace(tree=None)) == {}


def test_busiest_ranks_the_cpu_used_between_two_samples_in_cores():
    before = {1: ("postgres", 10.0, 5.0), 2: ("ray::WorkerHost", 100.0, 1.0), 3: ("broker", 30.0, 2.0)}
    after = {1: ("postgres", 10.0, 6.0), 2: ("ray::WorkerHost", 100.0, 9.0), 3: ("broker", 30.0, 4.0),
             4: ("new process", 5.0, 50.0)}     # not in the first sample: its CPU is not of this interval
    ranked = busiest(before, after, seconds=10.0, names={2: "learn.learner-0"}, n=2)
    assert ranked == [("learn.learner-0", 0.8), ("broker", 0.2)]


def test_a_learner_that_stops_learning_ends_the_wait_as_stalled():
    counts = iter([100, 150, 150, 150, 150, 150])
    seconds = iter(range(100))      # a clock that moves one second per reading

    async def learned():
        return next(counts)

    out = asyncio.run(wait_caught_up(learned, 1000, stall_s=2.5, poll_s=0.0, clock=lambda: next(seconds)))
    assert out == {"learned": 150, "seconds": 5, "stalled": True}    # no progress from 2 s to 5 s


def test_a_learner_trickling_on_far_behind_ends_the_wait_too():
    counts = iter(range(0, 10_000, 10))      # progress at every reading, never near the target
    seconds = iter(range(1000))

    async def learned():
        return next(counts)

    out = asyncio.run(wait_caught_up(learned, 1_000_000, stall_s=5.0, poll_s=0.0, clock=lambda: next(seconds)))
    assert out["stalled"] and out["seconds"] == 51


def test_a_learner_that_catches_up_is_not_stalled():
    counts = iter([100, 500, 1000])

    async def learned():
        return next(counts)

    out = asyncio.run(wait_caught_up(learned, 1000, stall_s=60.0, poll_s=0.0))
    assert out == {"learned": 1000, "seconds": out["seconds"], "stalled": False}


def _result(stalled: bool) -> dict:
    tally = ScoringTally(100)
    sample = {"t": 30.0, "memory": {1: ("broker", 50.0, 1.0)}, "model": [], "learner": [], "sent": 15000,
              "learned": 14000 if stalled else 15000, "busiest": [("broker", 0.3)]}
    return {"samples": [sample], "model": tally, "learner": tally, "events": 16000, "broker_pids": [1],
            "args": {"minutes": 0.5, "rate": 500.0, "callers": ["model"], "stall_s": 120.0},
            "catch_up": {"learned": 15000 if stalled else 16000, "seconds": 130.0, "stalled": stalled}}


def test_the_table_says_when_the_learner_stalled_and_shows_learned_beside_sent():
    text = table(_result(stalled=True))
    assert "| 15,000 | 14,000 | broker 0.30 |" in text
    assert ("learned 15,000 of 16,000 events 130 s later: STALLED (it learned nothing for 120 s, or had not caught up"
            " after 1200 s).") in text
    assert "STALLED" not in table(_result(stalled=False))


def test_the_module_examples_run():
    assert doctest.testmod(soak).failed == 0


@pytest.mark.parametrize("argv, says", [
    (["--callers", "model,everyone"], "--callers: a comma-separated list of model, learner"),
    (["--minutes", "0"], "--minutes in (0, 600]"),
    (["--rate", "-1"], "--rate in (0, 1,000,000]"),
    (["--rate", "nan"], "--rate in (0, 1,000,000]"),
    (["--stall-s", "0"], "--stall-s in (0, 3600]"),
    (["--stall-s", "nan"], "--stall-s in (0, 3600]"),
])
def test_bad_arguments_are_refused_before_any_cluster_starts(argv, says, capsys):
    assert says in refused(soak.main, argv, capsys)
