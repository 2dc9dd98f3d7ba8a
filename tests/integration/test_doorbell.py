"""The doorbell against the real broker and Redis: a reader deep in its idle pause gets a
record as soon as it is published (not at the end of the pause); without a ring, or with
a ring for another partition or topic, it waits the pause out and still misses nothing;
a garbled ring is ignored. A worker reading two topics in turn is woken by either."""

from __future__ import annotations

import asyncio
import time
import uuid

from storage.doorbell import Doorbell, DoorbellRinger, channel
from storage.kafka import KafkaPublisher, PartitionReader, ensure_topics
from tests.support.waiting import eventually

PAUSE_S = 3.0      # the reader's idle pause: a record seen well before it was woken


async def _idle_reader(settings, doorbell: Doorbell | None = None) -> tuple[str, Doorbell, PartitionReader]:
    """A fresh one-partition topic, a doorbell (``doorbell``, when given), and a reader of it
    that has read nothing once (idle: its next read pauses)."""
    topic = f"bell-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap, {topic: 1})
    doorbell = doorbell or Doorbell(settings.redis_url, settings.cluster_name)
    reader = PartitionReader(settings.kafka_bootstrap, topic, 0, settings.kafka_fetch_max_wait_ms, PAUSE_S, PAUSE_S,
                             doorbell)
    await reader.start(0)
    assert await reader.read(timeout_ms=30, max_records=10) == []
    return topic, doorbell, reader


async def _publisher(settings, redis, ring: bool) -> KafkaPublisher:
    publisher = KafkaPublisher(settings.kafka_bootstrap,
                               ringer=DoorbellRinger(redis, settings.cluster_name) if ring else None)
    await publisher.start()
    return publisher


async def _first_read_s(reader: PartitionReader, publish) -> tuple[float, list[bytes]]:
    reading = asyncio.ensure_future(reader.read(timeout_ms=50, max_records=10))
    await asyncio.sleep(0.3)                  # the reader is in its pause now
    began = time.monotonic()
    await publish()
    got = [r.value for r in await reading]
    return time.monotonic() - began, got


async def _read_now_s(reader: PartitionReader) -> tuple[float, list[bytes]]:
    """(seconds, values) of one read started now."""
    began = time.monotonic()
    got = [r.value for r in await reader.read(timeout_ms=50, max_records=10)]
    return time.monotonic() - began, got


async def test_a_ring_ends_an_idle_pause_at_once_and_no_ring_waits_it_out(settings, redis):
    topic, doorbell, reader = await _idle_reader(settings)
    ringing, silent = await _publisher(settings, redis, True), await _publisher(settings, redis, False)
    try:
        woken_s, got = await _first_read_s(reader, lambda: ringing.publish_raw(topic, b"rung", b"k"))
        assert got == [b"rung"] and woken_s < PAUSE_S / 3
        assert await reader.read(timeout_ms=30, max_records=10) == []   # idle again
        waited_s, got = await _first_read_s(reader, lambda: silent.publish_raw(topic, b"quiet", b"k"))
        assert got == [b"quiet"] and waited_s > PAUSE_S / 2                # nothing lost, only later
    finally:
        await ringing.stop()
        await silent.stop()
        await reader.stop()
        await doorbell.close()


async def test_rings_of_other_partitions_topics_and_garbage_do_not_wake_a_reader(settings, redis):
    topic, doorbell, reader = await _idle_reader(settings)
    try:
        async def noise() -> None:
            for payload in (b"1,2", b"", b"'; DROP TABLE x; --", "\u00e9".encode("latin-1"), b"0" * 100_000):
                await redis.publish(channel(settings.cluster_name, topic), payload)
            await DoorbellRinger(redis, settings.cluster_name).ring(f"{topic}-other", [0])

        waited_s, got = await _first_read_s(reader, noise)
        assert got == [] and waited_s > PAUSE_S / 2
        assert doorbell.rings(topic, 0) == 0
    finally:
        await reader.stop()
        await doorbell.close()


async def test_a_ring_before_the_pause_began_is_not_missed(settings, redis):
    """Records published after the reader's empty fetch but rung before it paused: the
    pause does not begin at all."""
    topic, doorbell, reader = await _idle_reader(settings)
    ringing = await _publisher(settings, redis, True)
    try:
        await ringing.publish_raw(topic, b"early", b"k")
        await eventually(lambda: doorbell.rings(topic, 0), timeout_s=1, interval_s=0.01, what="the ring heard")
        read_s, got = await _read_now_s(reader)
        assert got == [b"early"] and read_s < PAUSE_S / 3
    finally:
        await ringing.stop()
        await reader.stop()
        await doorbell.close()


async def test_a_ring_whose_records_the_next_fetch_missed_is_not_paid_for_with_a_whole_pause(settings, redis):
    """Woken by a ring, the reader's fetch came back empty (on a busy machine a fetch can take
    longer than the short window after a pause; here the ring simply comes first): its next
    read does not pause, so the records are read as soon as they are there."""
    topic, doorbell, reader = await _idle_reader(settings)
    silent = await _publisher(settings, redis, False)
    try:
        ringer = DoorbellRinger(redis, settings.cluster_name)
        woken_s, got = await _first_read_s(reader, lambda: ringer.ring(topic, [0]))
        assert got == [] and woken_s < PAUSE_S / 3             # woken at once, nothing yet
        await silent.publish_raw(topic, b"late", b"k")
        read_s, got = await _read_now_s(reader)
        assert got == [b"late"] and read_s < PAUSE_S / 3
    finally:
        await silent.stop()
        await reader.stop()
        await doorbell.close()


async def test_a_reader_reading_two_topics_in_turn_is_woken_by_either(settings, redis):
    """A learner reads ``events`` and ``observations`` in turn: records on the one must not
    wait out the other's idle pause (which they did, up to the longest pause, when they came
    while the learner paused on the other)."""
    topic_a, doorbell, reader_a = await _idle_reader(settings)
    topic_b, _, reader_b = await _idle_reader(settings, doorbell)
    ringing = await _publisher(settings, redis, True)
    try:
        reading = asyncio.ensure_future(reader_a.read(timeout_ms=50, max_records=10, wake_with=(reader_b,)))
        await asyncio.sleep(0.3)                              # reader A is in its pause
        began = time.monotonic()
        await ringing.publish_raw(topic_b, b"for b", b"k")
        assert await reading == []                            # A's pause ended at once, A has nothing
        got = [r.value for r in await reader_b.read(timeout_ms=50, max_records=10, wake_with=(reader_a,))]
        assert got == [b"for b"] and time.monotonic() - began < PAUSE_S / 3
        # while B's ring is not read yet, A does not pause at all
        await ringing.publish_raw(topic_b, b"more for b", b"k")
        await eventually(lambda: doorbell.rings(topic_b, 0) == 2, timeout_s=1, interval_s=0.01, what="the ring heard")
        began = time.monotonic()
        assert await reader_a.read(timeout_ms=50, max_records=10, wake_with=(reader_b,)) == []
        assert time.monotonic() - began < PAUSE_S / 3
        assert [r.value for r in await reader_b.read(timeout_ms=50, max_records=10)] == [b"more for b"]
    finally:
        await ringing.stop()
        await reader_a.stop()
        await reader_b.stop()
        await doorbell.close()
