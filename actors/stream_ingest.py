"""Online ingestion: a partition worker that stores every event of the ``events``
topic in the raw store, exactly once, and dead-letters what does not decode.

Effects (raw rows, dead letters, outbox rows) and the consumed offset are written
in one transaction; the worker's state (counts per stream) is checkpointed every
N events or T seconds in that same transaction. A restarted worker restores the
latest checkpoint and replays from its offset; replay is idempotent (raw rows are
keyed by ``msg_id``, dead letters by source offset), so its state afterwards is
the same as if it had never crashed.
"""

from __future__ import annotations

import time

import msgspec

from actors.worker import Worker
from messages.codec import DecodeFailed, decode, printable
from messages.stream import StreamEvent
from storage.base import BatchEffects, Claim, DeadLetter, PartitionLedger, RawEventRow
from storage.kafka import PartitionReader, Record
from storage.settings import Settings

_json = msgspec.json.Encoder()


class DeadLettered(msgspec.Struct, frozen=True):
    """What is published on the ``dead_letters`` topic for a refused record."""

    topic: str
    partition: int
    offset: int
    error: str
    payload: str


class IngestState(msgspec.Struct):
    """Counts per stream; the checkpointed state of a stream-ingestion partition."""

    accepted: dict[str, int] = {}
    n_dead: int = 0


def ingest_batch(state: IngestState, records: list[Record], topic: str, partition: int) -> BatchEffects:
    """Pure: decode ``records``, update ``state``, and return the effects to write."""
    effects = BatchEffects()
    for record in records:
        try:
            message = decode(record.value)
            if not isinstance(message, StreamEvent):
                raise DecodeFailed(f"a {type(message).__name__} does not belong on topic {topic!r}")
        except DecodeFailed as exc:
            state.n_dead += 1
            effects.dead_letters.append(DeadLetter(topic, partition, record.offset, record.key, record.value,
                                                   printable(exc.reason)))
            note = DeadLettered(topic, partition, record.offset, exc.reason,
                                record.value[:1024].decode("utf-8", "replace"))
            effects.outbox.append(("dead_letters", record.key, _json.encode(note),
                                   f"dead-letter:{topic}:{partition}:{record.offset}"))
            continue
        state.accepted[message.stream] = state.accepted.get(message.stream, 0) + 1
        effects.raw_events.append(RawEventRow(message.msg_id, message.stream, message.entity_key,
                                              _json.encode(message.values).decode(), message.event_time,
                                              record.offset))
    return effects


class StreamIngestWorker(Worker):
    """One partition of the ``events`` topic into the raw store."""

    consumer = "stream-ingest"

    def __init__(self, settings: Settings, name: str, topic: str = "events", partition: int = 0,
                 checkpoint_every_n: int = 1000, checkpoint_every_s: float = 5.0) -> None:
        super().__init__(settings, name)
        self.topic, self.partition = topic, partition
        self.checkpoint_every_n, self.checkpoint_every_s = checkpoint_every_n, checkpoint_every_s
        self.ingest_state = IngestState()
        self._since_checkpoint = 0
        self._pool = None
        self._reader: PartitionReader | None = None
        self._ledger: PartitionLedger | None = None
        self._claim: Claim | None = None
        self._offset = 0

    async def setup(self) -> None:
        from actors.wiring import ledger_for, pool_for

        self._pool = await pool_for(self.settings)
        self._ledger = ledger_for(self.settings, self._pool)
        self._claim = await self._ledger.claim(self.consumer, self.topic, self.partition)
        checkpoint = await self._ledger.latest_checkpoint(f"{self.consumer}/{self.topic}/{self.partition}")
        if checkpoint is not None:
            self.ingest_state = msgspec.msgpack.decode(checkpoint.state, type=IngestState)
            self._offset = checkpoint.source_offset
            self.last_checkpoint_offset, self.last_checkpoint_at = checkpoint.source_offset, checkpoint.created_at
        self._reader = PartitionReader(self.settings.kafka_bootstrap, self.topic, self.partition,
                                       self.settings.kafka_fetch_max_wait_ms)
        await self._reader.start(self._offset)
        self.log.info("partition claimed", epoch=self._claim.epoch, offset=self._offset)

    async def step(self) -> None:
        records = await self._reader.read(timeout_ms=200, max_records=self.settings.kafka_max_batch)
        self._since_checkpoint += len(records)
        due = self._since_checkpoint > 0 and (
            self._since_checkpoint >= self.checkpoint_every_n
            or time.time() - (self.last_checkpoint_at or self.started_at) >= self.checkpoint_every_s)
        if not records and not due:
            return
        effects = ingest_batch(self.ingest_state, records, self.topic, self.partition)
        next_offset = records[-1].offset + 1 if records else self._offset
        if due:
            effects.checkpoint_state = msgspec.msgpack.encode(self.ingest_state)
        await self._ledger.commit(self._claim, next_offset, effects)
        self._offset = next_offset
        self.n_processed += len(records)
        if due:
            self._since_checkpoint = 0
            self.last_checkpoint_offset, self.last_checkpoint_at = next_offset, time.time()

    async def teardown(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
        if self._pool is not None:
            await self._pool.close()

    def heartbeat(self) -> dict:
        beat = super().heartbeat()
        beat.update(offset=self._offset, topic=self.topic, partition=self.partition,
                    accepted=dict(self.ingest_state.accepted), n_dead=self.ingest_state.n_dead)
        return beat


__all__ = ["StreamIngestWorker", "ingest_batch", "IngestState"]
