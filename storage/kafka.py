"""aiokafka adapters: topic creation, a publisher, and a partition reader with
explicit assignment (no consumer group: a rejoin costs ~5 s, DESIGN §9)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from messages.base import Message
from messages.codec import encode

#: Topics: name -> the setting that gives its partition count (None: one partition).
TOPICS = {
    "events": "topic_partitions",          # keyed by entity; one stream-ingest worker each
    "dead_letters": None,
    "lifecycle": None,
    "ingest": None,                        # IngestBatch / SourceAvailable, in order
    "ingest.tasks": "ingest_workers",      # LoadPartition; one loader each
    "raw.ingested": None,
    "features.generated": None,
    "features.joined": None,
    "train": None,                         # TrainModels, in order
    "models": None,                        # model.trained / model.evaluated / model.deployed
    "scores": None,                        # score.recorded: every online answer
    "score.jobs": None,                    # ScoreBatch, in order
    "score.tasks": "batch_score_workers",  # ScorePartition; one batch scorer each
    "scores.ready": None,                  # a batch scoring job is done
    "observations": "topic_partitions",    # stream.observation: labels, keyed by the event's entity
    "learning": None,                      # drift.detected / learner.promoted
    "alerts": None,                        # alert.raised: monitoring thresholds crossed
}
_TOPIC_EXISTS = 36


class TopicError(RuntimeError):
    """A topic could not be created; names the topic and the broker's reason."""


async def ensure_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    """Create each topic with its partition count unless it exists already."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(t, n, 1) for t, n in partitions.items()])
        for topic, code, message in (e[:3] for e in response.topic_errors):
            if code not in (0, _TOPIC_EXISTS):
                raise TopicError(f"topic {topic!r}: {message} (error {code})")
    finally:
        await admin.close()


def topic_partitions(settings) -> dict[str, int]:
    """Every topic with its partition count from ``settings``."""
    return {t: (getattr(settings, setting) if setting else 1) for t, setting in TOPICS.items()}


class KafkaPublisher:
    """Publishes messages (acks=all). ``start`` before use, ``stop`` after.

    ``linger_ms`` is 0: a publish is sent at once, and what is published while a request is
    in flight goes out together in the next one. Lingering 5 ms made every awaited publish
    wait out the 5 ms (embedded broker, one caller: a single publish p50 7.5-8.3 ms with it,
    0.9-1.2 ms without; 200 events at a time 17,000-19,000 events/s with it, 44,000-66,000
    without; 300 publishes at once took as long either way)."""

    def __init__(self, bootstrap: str, linger_ms: int = 0, ringer=None) -> None:
        # batches of up to 256 KiB: publish_many fills them itself
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms,
                                          max_request_size=2 << 20, max_batch_size=256 << 10)
        #: a :class:`storage.doorbell.DoorbellRinger`: idle readers of a topic woken once
        #: its records are acknowledged
        self._ringer = ringer

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has (the broker's metadata, as the producer's partitioner sees it)."""
        return len(await self._producer.partitions_for(topic))

    async def publish(self, topic: str, message: Message, key: str | None = None) -> None:
        await self.publish_raw(topic, encode(message), key.encode() if key else None)

    async def publish_many(self, topic: str, items: list[tuple[bytes, bytes | None]]) -> None:
        """(payload, key) pairs, in order per partition (chosen as the producer's default
        partitioner does: by key, a keyless one at random), sent as record batches built here
        and awaited together: one future per batch, where a send per record cost the caller
        more than encoding the record."""
        partitions = sorted(await self._producer.partitions_for(topic))
        choose = DefaultPartitioner()
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for payload, key in items:
            by_partition.setdefault(choose(key, partitions, partitions), []).append((payload, key))
        sent = []
        for partition, group in by_partition.items():
            batch = self._producer.create_batch()
            for payload, key in group:
                if batch.append(key=key, value=payload, timestamp=None) is not None:
                    continue
                if batch.record_count():
                    sent.append(await self._producer.send_batch(batch, topic, partition=partition))
                batch = self._producer.create_batch()
                if batch.append(key=key, value=payload, timestamp=None) is None:   # larger than a batch:
                    sent.append(await self._producer.send(topic, payload, key=key, partition=partition))
                    batch = self._producer.create_batch()                         # sent alone, in order
            if batch.record_count():
                sent.append(await self._producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
        if self._ringer is not None and by_partition:
            await self._ringer.ring(topic, set(by_partition))

    async def publish_raw(self, topic: str, payload: bytes, key: bytes | None = None,
                          partition: int | None = None) -> None:
        meta = await self._producer.send_and_wait(topic, payload, key=key, partition=partition)
        if self._ringer is not None:
            await self._ringer.ring(topic, [meta.partition])


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes


def idle_pause_s(empty_reads: int, first_s: float, most_s: float) -> float:
    """How long a reader pauses before its next read after ``empty_reads`` empty reads in a
    row: nothing after records, then ``first_s`` doubling per empty read up to ``most_s``.

    >>> [idle_pause_s(n, 0.1, 0.5) for n in range(5)]
    [0.0, 0.1, 0.2, 0.4, 0.5]
    """
    if not empty_reads:
        return 0.0
    return min(most_s, first_s * 2 ** min(empty_reads - 1, 16))


def reader_for(settings, topic: str, partition: int, fetch_max_wait_ms: int | None = None,
               doorbell=None) -> PartitionReader:
    """A `PartitionReader` with the settings' fetch wait and idle back-off (cut short by
    ``doorbell``, a :class:`storage.doorbell.Doorbell`, when given)."""
    return PartitionReader(settings.kafka_bootstrap, topic, partition,
                           fetch_max_wait_ms or settings.kafka_fetch_max_wait_ms,
                           settings.consumer_idle_backoff_s, settings.consumer_idle_backoff_max_s, doorbell)


class PartitionReader:
    """Reads one topic partition from a given offset, in batches."""

    def __init__(self, bootstrap: str, topic: str, partition: int, fetch_max_wait_ms: int,
                 idle_backoff_s: float = 0.0, idle_backoff_max_s: float | None = None, doorbell=None) -> None:
        self._tp = TopicPartition(topic, partition)
        self._doorbell = doorbell
        self._rings_seen = 0    # the partition's rings before the last fetch was sent
        self._idle_backoff_s = idle_backoff_s
        self._idle_backoff_max_s = max(idle_backoff_s, idle_backoff_max_s or 0.0)
        self._idle = 0          # empty reads in a row
        self._paused = False
        #: After an idle pause, fetch only this long before pausing again: a getmany that waits
        #: its whole timeout on an empty partition sends a fetch every fetch_max_wait_ms.
        self._idle_window_ms = max(10, 3 * fetch_max_wait_ms)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
            fetch_max_wait_ms=fetch_max_wait_ms, auto_offset_reset="earliest",
        )

    async def start(self, offset: int) -> None:
        if self._doorbell is not None:
            await self._doorbell.listen(self._tp.topic)
        await self._consumer.start()
        self._consumer.assign([self._tp])
        self._consumer.seek(self._tp, offset)

    async def read(self, timeout_ms: int, max_records: int, idle_backoff: bool = True,
                   then_pause: bool = False, wake_with: tuple[PartitionReader, ...] = ()) -> list[Record]:
        """The next records, waiting up to ``timeout_ms``. After an empty read the partition
        is paused first, for ``idle_backoff_s``, doubled after every further empty read up to
        ``idle_backoff_max_s``: the fetcher long-polls every few ms while a partition is
        assigned (fetch_max_wait_ms), which keeps idle clusters busy. The first record after
        a quiet spell therefore waits up to ``idle_backoff_max_s`` (unless the doorbell
        rings: the pause then ends at once); a busy partition never pauses. A worker busy
        with other work between reads passes ``idle_backoff=False``, and ``then_pause=True``
        to keep the partition paused until its next read. A worker reading several partitions
        in turn names the others in ``wake_with``: a pause also ends when one of them rings
        (else records arriving there would wait out this partition's pause)."""
        if self._paused:      # nothing was fetched meanwhile: give one fetch time to answer
            self._consumer.resume(self._tp)
            self._paused = False
            timeout_ms = max(timeout_ms, self._idle_window_ms)
        rang = False
        if self._idle and self._idle_backoff_s > 0 and idle_backoff:
            # no pause while one of the others has records waiting: one short fetch here instead
            if not any(r.may_have_records() for r in wake_with):
                self._consumer.pause(self._tp)
                try:
                    if self._doorbell is None:
                        await asyncio.sleep(self.idle_pause_s())
                    else:
                        rang = await self._doorbell.wait(
                            self._tp.topic, self._tp.partition, self._rings_seen, self.idle_pause_s(),
                            also=[(r._tp.topic, r._tp.partition, r._rings_seen) for r in wake_with])
                finally:
                    self._consumer.resume(self._tp)
            timeout_ms = min(timeout_ms, self._idle_window_ms)
        if self._doorbell is not None:
            self._rings_seen = self._doorbell.rings(self._tp.topic, self._tp.partition)
        batch = {}
        try:
            batch = await self._consumer.getmany(self._tp, timeout_ms=timeout_ms, max_records=max_records)
        finally:
            # Paused until the next read when asked, and after an empty read: an idle
            # partition left assigned is fetched every few ms in the background (a worker
            # reading two topics in turn would poll one while it waits on the other).
            if then_pause or not batch.get(self._tp):
                self._consumer.pause(self._tp)
                self._paused = True
        records = [Record(m.offset, m.key, m.value) for m in batch.get(self._tp, [])]
        # Woken by a ring but nothing came (the fetch took longer than the short window on a
        # busy machine): the records are on their way, so the next read does not pause. Counted
        # as idle, it would wait for a further ring, and sit out a whole pause without one.
        self._idle = 0 if records or rang else self._idle + 1
        return records

    def idle_pause_s(self) -> float:
        return idle_pause_s(self._idle, self._idle_backoff_s, self._idle_backoff_max_s)

    def may_have_records(self) -> bool:
        """False when the last read came back empty (the partition is paused since) and no
        doorbell rang for the partition since: a read now would most likely wait its whole
        fetch window for nothing. Without a doorbell a paused partition counts as empty still
        (a caller skipping it reads it now and then all the same)."""
        if not self._paused:
            return True
        return self._doorbell is not None and self._doorbell.rings(self._tp.topic, self._tp.partition) != self._rings_seen

    def seek(self, offset: int) -> None:
        self._consumer.seek(self._tp, offset)

    async def stop(self) -> None:
        await self._consumer.stop()
