"""Unit tests of client.actor_lookup.ActorFinder: a caller's event loop is never held up by
looking an actor up, each caller waits only as long as it may, and a name found not running
is not asked for on every request."""

from __future__ import annotations

import asyncio
import doctest
import threading
import time

import client.actor_lookup
from client.actor_lookup import ActorFinder


class SlowLookup:
    """A lookup that blocks (like Ray's GCS call on a busy cluster) until released."""

    def __init__(self, answer) -> None:
        self.answer, self.calls, self.release = answer, [], threading.Event()

    def __call__(self, name: str):
        self.calls.append(name)
        self.release.wait(5)
        return self.answer


async def test_a_slow_lookup_holds_up_neither_the_loop_nor_the_caller_past_its_time():
    lookup = SlowLookup("handle")
    finder = ActorFinder(lookup)
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    began = time.perf_counter()
    assert await finder.find("serve.m.v1.r0", 0.1) is None          # not found in the time it had
    waited = time.perf_counter() - began
    ticker.cancel()
    assert 0.09 <= waited < 1.0 and ticks >= 5                       # the loop ran meanwhile
    lookup.release.set()
    assert await finder.find("serve.m.v1.r0", 2.0) == "handle"       # the same lookup, finished
    assert lookup.calls == ["serve.m.v1.r0"]
    assert await finder.find("serve.m.v1.r0", 0.0) == "handle"       # cached: no time needed


async def test_callers_at_once_share_one_lookup():
    lookup = SlowLookup("handle")
    finder = ActorFinder(lookup)
    waiting = [asyncio.ensure_future(finder.find("root.fallback", 2.0)) for _ in range(5)]
    await asyncio.sleep(0.05)
    lookup.release.set()
    assert await asyncio.gather(*waiting) == ["handle"] * 5
    assert lookup.calls == ["root.fallback"]


async def test_a_name_found_not_running_is_looked_up_again_only_after_a_while():
    calls = []
    running = {}
    finder = ActorFinder(lambda name: calls.append(name) or running.get(name), missing_recheck_s=0.2)
    assert await finder.find("root.learn.learner-0", 1.0) is None
    running["root.learn.learner-0"] = "new"
    assert await finder.find("root.learn.learner-0", 1.0) is None     # skipped: found missing just now
    assert len(calls) == 1
    await asyncio.sleep(0.25)
    assert await finder.find("root.learn.learner-0", 1.0) == "new"
    assert len(calls) == 2


async def test_a_failing_lookup_counts_as_not_running_and_a_forgotten_handle_is_looked_up_again():
    answers = iter([RuntimeError("GCS unavailable"), "old", "new"])

    def lookup(name):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    finder = ActorFinder(lookup, missing_recheck_s=0.0)
    assert await finder.find("serve.m.v1.r1", 1.0) is None
    assert await finder.find("serve.m.v1.r1", 1.0) == "old"
    finder.forget("serve.m.v1.r1")
    assert await finder.find("serve.m.v1.r1", 1.0) == "new"
    finder.forget_below("serve.m.v")
    assert finder.cached("serve.m.v1.r1") is None


def test_module_doctests_pass():
    assert doctest.testmod(client.actor_lookup).failed == 0
