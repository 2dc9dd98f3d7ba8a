"""Publishes the outbox to the broker, in order, at least once; marks rows published."""

from __future__ import annotations

import asyncio

from actors.worker import Worker
from storage.kafka import KafkaPublisher
from storage.settings import Settings


class OutboxRelay(Worker):
    def __init__(self, settings: Settings, name: str, poll_s: float = 0.05, batch: int = 500) -> None:
        super().__init__(settings, name)
        self.poll_s, self.batch = poll_s, batch
        self._pool = None
        self._outbox = None
        self._publisher: KafkaPublisher | None = None
        self._redis = None

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
        items = await self._outbox.pending(self.batch)
        if not items:
            await asyncio.sleep(self.poll_s)
            return
        await asyncio.gather(*(self._publisher.publish_raw(i.topic, i.payload, i.key, i.partition)
                               for i in items))
        await self._outbox.mark_published([i.id for i in items])
        self.n_processed += len(items)

    async def teardown(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()
        if self._redis is not None:
            await self._redis.aclose()
        if self._pool is not None:
            await self._pool.close()
