"""The outbox relay against real PostgreSQL and the broker, on a scratch database of the
session cluster's PostgreSQL (the live relay does not see these rows): a committed outbox
row notifies `conveyor_outbox` (an uncommitted one does not), the relay publishes rows
and marks them, and it keeps publishing after its listening connection is cut."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from actors.outbox_relay import CHANNEL, OutboxRelay
from storage.kafka import ensure_topics, reader_for

pytestmark = pytest.mark.integration


async def _add(conn, topic: str, payload: bytes) -> None:
    await conn.execute("INSERT INTO outbox (topic, msg_key, payload) VALUES ($1, $2, $3)", topic, b"k", payload)


async def test_a_committed_outbox_row_notifies_the_relay_and_an_uncommitted_one_does_not(scratch):
    settings, conn = scratch
    heard: asyncio.Queue = asyncio.Queue()
    listener = await asyncpg.connect(settings.postgres_dsn)
    await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args))
    try:
        transaction = conn.transaction()
        await transaction.start()
        for i in range(3):
            await _add(conn, "t", b"%d" % i)
        await asyncio.sleep(0.3)
        assert heard.empty()                                   # not before the commit
        await transaction.commit()
        await asyncio.wait_for(heard.get(), 5)                 # at the commit: once for the transaction
        await asyncio.sleep(0.3)
        assert heard.empty()
    finally:
        await listener.close()


async def test_the_relay_publishes_and_keeps_publishing_after_its_listening_connection_is_cut(scratch):
    settings, conn = scratch
    topic = f"outbox-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap, {topic: 1})
    relay = OutboxRelay(settings, "test.outbox")
    running = asyncio.ensure_future(relay.run())
    reader = reader_for(settings, topic, 0)
    await reader.start(0)
    try:
        await _add(conn, topic, b"first")
        got = await _read(reader, 1)
        listening = await conn.fetchval("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                        " AND query LIKE 'LISTEN%'")
        assert listening is not None
        await conn.execute("SELECT pg_terminate_backend($1)", listening)
        await _add(conn, topic, b"second")
        got += await _read(reader, 1)
        assert got == [b"first", b"second"]
        # the relay marks a row published after the broker acknowledged it: the reader may see it first
        assert await _unpublished_after(conn, 10) == 0
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await reader.stop()


async def _read(reader, n: int, timeout_s: float = 20) -> list[bytes]:
    got: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(got) < n and loop.time() < deadline:
        got += [r.value for r in await reader.read(timeout_ms=100, max_records=10)]
    return got


async def _unpublished_after(conn, timeout_s: float) -> int:
    """The count of unpublished outbox rows once it reaches 0, or when `timeout_s` ran out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (left := await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return left
