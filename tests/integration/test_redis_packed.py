"""Commands packed by hiredis and sent on one pooled connection (storage.redis_store.send_packed),
against the session cluster's Redis: replies in order, an error reply raised, a huge command
whole, and the client usable afterwards."""

from __future__ import annotations

import uuid

import pytest
from redis.exceptions import ResponseError

from storage.redis_store import send_packed

pytestmark = pytest.mark.integration


async def test_replies_come_in_order_and_a_huge_command_lands_whole(redis):
    key = f"test:packed:{uuid.uuid4().hex}"
    fields = [x for i in range(200_000) for x in (f"f{i}", b"\x00'\n" + str(i).encode())]
    try:
        replies = await send_packed(redis, [("HSET", key, *fields), ("HLEN", key), ("EXPIRE", key, 60)])
        assert replies == [200_000, 200_000, 1]
        assert await redis.hget(key, "f123456") == b"\x00'\n123456"
    finally:
        await redis.delete(key)


async def test_an_error_reply_is_raised_and_the_client_still_works(redis):
    key = f"test:packed:{uuid.uuid4().hex}"
    await redis.set(key, "a string")
    try:
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await send_packed(redis, [("HSET", key, "f", "v"), ("GET", key)])
        assert await redis.get(key) == b"a string"
        assert await send_packed(redis, [("GET", key)]) == [b"a string"]
    finally:
        await redis.delete(key)
