"""Per-process composition for workers: connections built from the settings a
worker was started with (each Ray actor is its own process)."""

from __future__ import annotations

import asyncpg

from storage.postgres import PostgresLedger, connect_pool
from storage.settings import Settings


async def pool_for(settings: Settings, max_size: int = 4) -> asyncpg.Pool:
    return await connect_pool(settings.postgres_dsn, max_size=max_size)


def ledger_for(settings: Settings, pool: asyncpg.Pool) -> PostgresLedger:
    return PostgresLedger(pool, signing_key_bytes(settings))


def doorbell_for(settings: Settings):
    """The process's :class:`storage.doorbell.Doorbell` (its readers wake when a topic rings)."""
    from storage.doorbell import Doorbell

    return Doorbell(settings.redis_url, settings.cluster_name)


def ringer_for(settings: Settings, redis_client):
    """A :class:`storage.doorbell.DoorbellRinger` over ``redis_client`` for this cluster."""
    from storage.doorbell import DoorbellRinger

    return DoorbellRinger(redis_client, settings.cluster_name)


class WritesOnlineStore:
    """For a worker that writes the online feature store: its ``open`` calls
    :meth:`open_online_store`; ``teardown`` closes the Redis client under it. Listed before
    the worker's base class, so that its ``teardown`` runs first and then the base's."""

    online = _redis = None

    def open_online_store(self) -> None:
        from storage.feature_store import RedisOnlineStore
        from storage.redis_store import connect_redis

        self._redis = connect_redis(self.settings.redis_url)
        self.online = RedisOnlineStore(self._redis, self.settings.cluster_name, self.settings.online_ttl_s)

    async def teardown(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        await super().teardown()


def import_plugins(plugins: str) -> None:
    """Import the configured plugin modules (they register algorithms, metrics, strategies);
    an import that fails names the module."""
    import importlib

    for module in filter(None, plugins.split(",")):
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ImportError(f"plugins: cannot import {module!r}: {type(exc).__name__}: {exc}") from exc


def signing_key_bytes(settings: Settings) -> bytes:
    if not settings.signing_key:
        raise ValueError("signing_key: not set; `cluster start` provides one")
    return settings.signing_key.encode()
