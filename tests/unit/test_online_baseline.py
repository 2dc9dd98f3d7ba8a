"""Unit tests of the live learner's baseline answer in the caller (client.online_scoring):
read from Redis within the time the request has left, and while Redis does not answer (down,
being repaired) the baseline this process read last, so the caller is still answered."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

from redis.exceptions import ConnectionError as RedisDown

from actors.learner import baseline_key
from client.online_scoring import _baseline


class FakeRedis:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.down = False
        self.stall_s = 0.0

    async def mget(self, keys):
        if self.down:
            raise RedisDown("Error 2 connecting to unix socket: No such file or directory.")
        await asyncio.sleep(self.stall_s)
        return [self.values.get(k) for k in keys]


def router_with(redis: FakeRedis):
    return SimpleNamespace(_redis=redis, settings=SimpleNamespace(cluster_name="c"))


async def test_the_last_baseline_read_answers_while_redis_is_down_or_stalls():
    redis = FakeRedis()
    router = router_with(redis)
    assert await _baseline(router, "churn", 0, 2, 0.1) is None                  # none published yet
    redis.values[baseline_key("c", "churn", 1)] = json.dumps({"score": 0.3, "label": "no"}).encode()
    first = await _baseline(router, "churn", 0, 2, 0.1)                        # partition 1's, as 0 has none
    assert first == {"score": 0.3, "label": "no", "answered_by": "baseline"}
    redis.down = True
    assert await _baseline(router, "churn", 0, 2, 0.1) == first
    redis.down, redis.stall_s = False, 5.0
    began = time.perf_counter()
    assert await _baseline(router, "churn", 1, 2, 0.05) == first
    assert time.perf_counter() - began < 1.0                                   # within the time it had


async def test_with_redis_down_and_nothing_read_before_there_is_no_baseline():
    redis = FakeRedis()
    redis.down = True
    assert await _baseline(router_with(redis), "churn", 0, 2, 0.1) is None


class Partition:
    """A learner partition's handle: ``request.remote(...)`` answers or raises like the actor."""

    def __init__(self, outcome) -> None:
        self.request = SimpleNamespace(remote=lambda *args: self._answer())
        self.outcome = outcome

    async def _answer(self):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return dict(self.outcome)


def router_of(partitions: dict[str, Partition], redis: FakeRedis):
    from client.scoring import Router

    async def find_actor(name, within_s):
        return partitions.get(name)

    return SimpleNamespace(_redis=redis, settings=SimpleNamespace(cluster_name="c"), _check=Router._check,
                           _record=lambda *args: None, find_actor=find_actor, forget_actor=lambda name: None,
                           was_late=lambda name: None, punctual_first=lambda names: list(names))


async def test_a_partition_still_restoring_is_not_taken_for_a_missing_learner():
    """A restarted partition answers nothing until it has restored its learners: the caller
    asks the next partition, else answers with the baseline; never 'no such learner'."""
    from actors.learner import LearnerNotReady
    from client.online_scoring import score_online

    redis = FakeRedis()
    redis.values[baseline_key("c", "churn", 0)] = json.dumps({"score": 0.3, "label": "no"}).encode()
    restoring = Partition(LearnerNotReady("partition 0 is starting, not answering yet"))
    answering = Partition({"score": 0.9, "label": "yes"})
    router = router_of({"root.learn.learner-0": restoring, "root.learn.learner-1": answering}, redis)
    result = await score_online(router, "churn", {"x": 1.0}, None, 500, 2)
    assert (result.answered_by, result.score) == ("online", 0.9)
    router = router_of({"root.learn.learner-0": restoring}, redis)
    result = await score_online(router, "churn", {"x": 1.0}, None, 500, 1)
    assert (result.answered_by, result.score, result.fallback) == ("baseline", 0.3, True)
    assert "starting" in result.reason


def test_a_learner_partition_refuses_to_predict_until_it_runs():
    from actors.learner import LearnerNotReady, LearnerWorker
    from actors.worker import WorkerState
    from storage.settings import Settings

    worker = LearnerWorker(Settings(), "root.learn.learner-0", partition=0)
    assert worker.state is WorkerState.STARTING
    try:
        worker.predict("churn", {"x": 1.0})
    except LearnerNotReady as exc:
        assert "starting" in str(exc)
    else:
        raise AssertionError("a starting partition answered")
