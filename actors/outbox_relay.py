"""Publishes the outbox to the broker, in order, at least once; marks rows published.

Woken by the ``conveyor_outbox`` notification that every transaction adding outbox rows
sends when it commits (schema 0025); it still looks every ``poll_s`` when none comes (its
listening connection lost, PostgreSQL restarting)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from actors.worker import Worker
from storage.kafka import KafkaPublisher
from storage.settings import Settings

CHANNEL = "conveyor_outbox"


class OutboxRelay(Worker):
    def __init__(self, settings: Settings, name: str, poll_s: float = 0.5, batch: int = 500) -> None:
        super().__init__(settings, name)
        self.poll_s, self.batch = poll_s, batch
        self._pool = None
        self._outbox = None
        self._publisher: KafkaPublisher | None = None
        self._redis = None
        self._listener = None                   # the connection that LISTENs
        self._listen_tried_at = 0.0
        self._woken = asyncio.Event()

    async def setup(self) -> None:
        from actors.wiring import pool_for, ringer_for
        from storage.postgres import PostgresOutbox
        from storage.redis_store import connect_redis

        self._pool = await pool_for(self.settings)
        self._outbox = PostgresOutbox(self._pool)
        self._redis = connect_redis(self.settings.redis_url)
        self._publisher = KafkaPublisher(self.settings.kafka_bootstrap, ringer=ringer_for(self.settings, self._redis))
        await self._publisher.start()

    async def step(self) -> None:
        await self._listen()
        self._woken.clear()                     # rows committed from here on wake the wait below
        items = await self._outbox.pending(self.batch)
        if not items:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.poll_s if self._listening() else 0.05)
            return
        await asyncio.gather(*(self._publisher.publish_raw(i.topic, i.payload, i.key, i.partition)
                               for i in items))
        await self._outbox.mark_published([i.id for i in items])
        self.n_processed += len(items)

    def _listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def _listen(self) -> None:
        """LISTEN on a connection of its own; again after it was lost (at most once a second)."""
        import asyncpg

        if self._listening() or time.monotonic() - self._listen_tried_at < 1.0:
            return
        self._listen_tried_at = time.monotonic()
        try:
            self._listener = await asyncpg.connect(self.settings.postgres_dsn, timeout=5)
            await self._listener.add_listener(CHANNEL, lambda *_: self._woken.set())
        except Exception as exc:        # polled meanwhile
            self.log.warning("outbox relay cannot listen; polling", error=f"{type(exc).__name__}: {exc}"[:300])
            self._listener = None

    async def teardown(self) -> None:
        if self._listening():
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        if self._publisher is not None:
            await self._publisher.stop()
        if self._redis is not None:
            await self._redis.aclose()
        if self._pool is not None:
            await self._pool.close()
