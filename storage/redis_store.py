"""redis.asyncio adapter: the connection factory and the supervision state kept in Redis."""

from __future__ import annotations

import json

import redis.asyncio as aioredis


def connect_redis(url: str) -> aioredis.Redis:
    """A client for ``url`` (``unix:///path`` or ``redis://host:port/db``); the caller closes it."""
    return aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


async def send_packed(client: aioredis.Redis, commands: list[tuple]) -> list:
    """Send many (possibly huge) commands on one connection of ``client``'s pool, packed by
    hiredis in C (redis-py's asyncio packer is Python: ~2x slower for 50,000 fields), and
    their replies; an error reply raises. A connection left mid-reply is dropped."""
    import hiredis
    from redis.exceptions import ResponseError

    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(b"".join(hiredis.pack_command(c) for c in commands))
        replies = [await connection.read_response() for _ in commands]
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


class SupervisionMemory:
    """What a supervisor must remember across its own restarts: per child, the restart
    count and the restart times inside the intensity window."""

    def __init__(self, client: aioredis.Redis, cluster: str, supervisor: str) -> None:
        self._client = client
        self._key = f"conveyor:{cluster}:supervision:{supervisor}"

    async def load(self) -> dict[str, dict]:
        raw = await self._client.hgetall(self._key)
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    async def save(self, child_id: str, n_restarts: int, restart_times: list[float]) -> None:
        await self._client.hset(self._key, child_id, json.dumps({"n_restarts": n_restarts,
                                                                  "restart_times": restart_times}))

    async def forget(self) -> None:
        await self._client.delete(self._key)
