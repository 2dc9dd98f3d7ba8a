"""Unit tests of the scoring router's reads from Redis (client.scoring.Router): once a
model's routes were read, a request never waits past its share of the deadline for them, nor
for the prediction cache, while Redis is slow or down."""

from __future__ import annotations

import asyncio
import time

from redis.exceptions import ConnectionError as RedisDown

from client.actor_lookup import ActorFinder
from client.scoring import Router
from storage.serving_store import Routes


class SlowStore:
    """The serving store's reads: answering, stalling, or refusing like a Redis being repaired."""

    def __init__(self) -> None:
        self.calls, self.stall_s, self.down = 0, 0.0, False

    async def _answer(self, value):
        self.calls += 1
        if self.down:
            raise RedisDown("Error 111 connecting to unix socket")
        await asyncio.sleep(self.stall_s)
        return value

    async def routes(self, model):
        return await self._answer(Routes(model=model, task="classification", production=1))

    async def prediction(self, model, version, entity_key):
        return await self._answer([0.7, "yes"])


def router_on(store: SlowStore) -> Router:
    router = Router.__new__(Router)      # no cluster: only what routing by the routes needs
    router._store, router._routes, router.routes_ttl_s = store, {}, 0.05
    router._actors, router._pending = ActorFinder(lambda name: None), set()
    return router


async def test_a_stalled_redis_costs_a_request_at_most_its_share_then_nothing_until_a_ttl_later():
    store = SlowStore()
    router = router_on(store)
    first = await router.routes("m", within_s=0.01)
    await asyncio.sleep(0.06)                       # the routes are due to be read again
    store.stall_s = 5.0
    began = time.perf_counter()
    assert await router.routes("m", within_s=0.02) == first
    assert time.perf_counter() - began < 1.0
    calls = store.calls
    assert await router.routes("m", within_s=0.02) == first     # not asked again at once
    assert store.calls == calls
    store.down, store.stall_s = True, 0.0
    await asyncio.sleep(0.06)
    assert await router.routes("m", within_s=0.02) == first     # refused: what was read last
    assert store.calls == calls + 1


async def test_the_prediction_cache_is_skipped_when_redis_stalls_or_is_down():
    store = SlowStore()
    router = router_on(store)
    assert (await router._cached("m", 1, "e1", 0.1))["score"] == 0.7
    store.stall_s = 5.0
    began = time.perf_counter()
    assert await router._cached("m", 1, "e1", 0.02) is None
    assert time.perf_counter() - began < 1.0
    store.down, store.stall_s = True, 0.0
    assert await router._cached("m", 1, "e1", 0.02) is None


async def test_within_returns_at_its_time_while_what_it_waited_for_winds_down_slowly():
    from client.deadlines import within

    wound_down = asyncio.Event()

    async def slow_to_cancel():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)        # like a client closing its connection
            wound_down.set()
            raise

    began = time.perf_counter()
    try:
        await within(slow_to_cancel(), 0.05)
    except asyncio.TimeoutError:
        pass
    else:
        raise AssertionError("no timeout")
    assert time.perf_counter() - began < 0.4 and not wound_down.is_set()
    await asyncio.wait_for(wound_down.wait(), 2)        # it still wound down, on its own


class BaselineRedis:
    """Redis's MGET of learner baselines: answering, or refusing like a Redis being repaired."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values, self.down, self.calls = values, False, 0

    async def mget(self, keys):
        self.calls += 1
        if self.down:
            raise RedisDown("Error 111 connecting to unix socket")
        return [self.values.get(k) for k in keys]


async def test_a_learners_baselines_are_read_ahead_so_a_redis_outage_still_has_one_to_answer_with():
    import json
    from types import SimpleNamespace

    from actors.learner import baseline_key
    from client.online_scoring import _baseline, keep_baselines

    router = Router.__new__(Router)
    router.settings = SimpleNamespace(cluster_name="c")
    router._redis = BaselineRedis({baseline_key("c", "l", 1): json.dumps({"label": "yes"}).encode()})
    keep_baselines(router, "l", n_partitions=2)
    await asyncio.gather(*router._baseline_reads)
    keep_baselines(router, "l", n_partitions=2)             # read moments ago: not again
    assert router._redis.calls == 1 and not router._baseline_reads
    router._redis.down = True                                # the first request that needs it comes now
    assert await _baseline(router, "l", 0, 2, within_s=0.05) == {"label": "yes", "answered_by": "baseline"}
