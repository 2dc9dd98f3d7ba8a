"""The partition reader against the real broker: an idle partition backs off and is not
fetched in the background, and nothing sent meanwhile is missed."""

from __future__ import annotations

import uuid

from storage.kafka import KafkaPublisher, PartitionReader, ensure_topics, reader_for


async def _topic(settings) -> str:
    topic = f"reader-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap, {topic: 1})
    return topic


async def _send(settings, topic: str, values: list[bytes]) -> None:
    publisher = KafkaPublisher(settings.kafka_bootstrap)
    await publisher.start()
    try:
        await publisher.publish_many(topic, [(value, b"k") for value in values])
    finally:
        await publisher.stop()


async def test_an_idle_reader_backs_off_doubling_and_still_gets_what_comes_after(settings):
    topic = await _topic(settings)
    reader = PartitionReader(settings.kafka_bootstrap, topic, 0, settings.kafka_fetch_max_wait_ms, 0.02, 0.08)
    await reader.start(0)
    try:
        pauses = []
        for _ in range(5):
            assert await reader.read(timeout_ms=50, max_records=10) == []
            pauses.append(reader.idle_pause_s())
        assert pauses == [0.02, 0.04, 0.08, 0.08, 0.08]
        await _send(settings, topic, [b"a", b"b"])
        got = []
        for _ in range(40):
            got += [r.value for r in await reader.read(timeout_ms=50, max_records=10)]
            if len(got) == 2:
                break
        assert got == [b"a", b"b"]
        assert reader.idle_pause_s() == 0.0          # records reset the back-off
    finally:
        await reader.stop()


async def test_a_partition_paused_between_reads_is_still_read_by_a_read_that_does_not_wait(settings):
    """A worker reading two topics in turn reads one with timeout 0 while the other is busy:
    the paused partition is still fetched by that read."""
    topic = await _topic(settings)
    reader = reader_for(settings, topic, 0)
    await reader.start(0)
    try:
        assert await reader.read(timeout_ms=0, max_records=10, idle_backoff=False) == []
        await _send(settings, topic, [b"late"])
        got = []
        for _ in range(40):
            got += [r.value for r in await reader.read(timeout_ms=0, max_records=10, idle_backoff=False)]
            if got:
                break
        assert got == [b"late"]
    finally:
        await reader.stop()


async def test_a_reader_started_past_the_end_reads_nothing_until_it_seeks_back(settings):
    topic = await _topic(settings)
    await _send(settings, topic, [b"x"])
    reader = reader_for(settings, topic, 0)
    await reader.start(1)           # past the only record: nothing, and no error
    try:
        assert await reader.read(timeout_ms=100, max_records=10) == []
        reader.seek(0)
        got = []
        for _ in range(40):
            got += [r.value for r in await reader.read(timeout_ms=50, max_records=10)]
            if got:
                break
        assert got == [b"x"]
    finally:
        await reader.stop()


async def test_many_published_together_land_in_order_on_the_partition_of_their_key(settings):
    """publish_many builds the record batches itself: every record is on the partition the
    producer's default partitioner (and ``client.learning.partition_of``) names for its key,
    in the order given, a record larger than a batch among them."""
    from client.learning import partition_of

    topic = f"reader-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap, {topic: 2})
    items = [(f"{i}:".encode() + b"v" * (i % 50), f"entity-{i % 37}".encode()) for i in range(6000)]
    items.insert(2500, (b"big:" + b"x" * (300 << 10), b"entity-3"))
    publisher = KafkaPublisher(settings.kafka_bootstrap)
    await publisher.start()
    try:
        await publisher.publish_many(topic, items)
    finally:
        await publisher.stop()
    for partition in (0, 1):
        expected = [value for value, key in items if partition_of(key.decode(), 2) == partition]
        reader = reader_for(settings, topic, partition)
        await reader.start(0)
        try:
            got = []
            for _ in range(200):
                got += [r.value for r in await reader.read(timeout_ms=100, max_records=1000, idle_backoff=False)]
                if len(got) >= len(expected):
                    break
        finally:
            await reader.stop()
        assert got == expected, partition
