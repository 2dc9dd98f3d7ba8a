"""The prediction cache against the cluster's real Redis: batch answers are read back by
entity key while fresh, never once stale, and the version's hash goes away on its own."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from storage.serving_store import RedisServingStore

pytestmark = pytest.mark.integration

KEYS = ["e1", "é:ü/ключ", "a b", "with:colons:", "x" * 300, "0", ""]


def store(redis) -> RedisServingStore:
    return RedisServingStore(redis, f"test-{uuid.uuid4().hex[:8]}", b"k" * 32)


async def test_answers_are_read_back_by_entity_across_chunks_and_versions(redis):
    cache = store(redis)
    answers = [(key, (i / 10, f"label-{i}")) for i, key in enumerate(KEYS)]
    await cache.put_predictions("m", 1, answers, ttl_s=60, chunk=3)
    await cache.put_predictions("m", 2, [("e1", (0.99, None))], ttl_s=60)
    for key, (score, label) in answers:
        assert await cache.prediction("m", 1, key) == [score, label]
    assert await cache.prediction("m", 2, "e1") == [0.99, None]
    assert await cache.prediction("m", 2, "a b") is None          # another version's answer is not this one's
    assert await cache.prediction("other", 1, "e1") is None
    assert 0 < await redis.ttl(cache.predictions_key("m", 1)) <= 60

    await cache.put_predictions("m", 1, [("e1", (0.5, "new"))], ttl_s=60)     # a later job's answer wins
    assert await cache.prediction("m", 1, "e1") == [0.5, "new"]


async def test_a_stale_answer_is_never_served_and_the_hash_expires(redis):
    cache = store(redis)
    await cache.put_predictions("m", 1, [("old", (0.1, "a"))], ttl_s=2)
    await asyncio.sleep(1.2)
    await cache.put_predictions("m", 1, [("new", (0.2, "b"))], ttl_s=2)      # refreshes the hash, not "old"
    await asyncio.sleep(1.0)
    assert await cache.prediction("m", 1, "old") is None
    assert await cache.prediction("m", 1, "new") == [0.2, "b"]
    await asyncio.sleep(2.0)
    assert not await redis.exists(cache.predictions_key("m", 1))
