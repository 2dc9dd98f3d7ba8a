"""redis.asyncio adapter: the connection factory and the supervision state kept in Redis."""

from __future__ import annotations

import json

import redis.asyncio as aioredis


def connect_redis(url: str) -> aioredis.Redis:
    """A client for ``url`` (``unix:///path`` or ``redis://host:port/db``); the caller closes it."""
    return aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


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
