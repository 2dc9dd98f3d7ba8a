"""A worker that owns one topic partition: claims it (fencing older incarnations),
restores its newest checkpoint, reads from the checkpoint's offset, and commits the
effects of each batch with the offset in one transaction.

Subclasses implement :meth:`handle` (records -> effects, pure or nearly) and may
override :meth:`snapshot` / :meth:`restore` for state that must survive a restart.
"""

from __future__ import annotations

import time

from actors.logs import bind_message, unbind_message
from actors.worker import Worker
from messages.codec import DecodeFailed, decode, printable
from storage.base import BatchEffects, Checkpoint, Claim, DeadLetter, PartitionLedger
from storage.kafka import PartitionReader, Record, reader_for
from storage.settings import Settings


def resume_offset(claim: Claim, checkpoint: Checkpoint | None, stateful: bool) -> int:
    """Where a new incarnation of a partition worker reads from.

    A stateless worker goes on from the committed offset. A stateful one replays from its
    checkpoint's offset on top of the checkpoint's state (effects are idempotent); from the
    log's start when that checkpoint belongs to an older generation of the broker's log (it
    is gone), and when there is no checkpoint yet: its state starts empty, and the committed
    offset would skip what an incarnation killed before its first checkpoint had committed.

    >>> claim = Claim("stream-ingest", "events", 0, epoch=3, next_offset=700, generation=2)
    >>> resume_offset(claim, None, stateful=False), resume_offset(claim, None, stateful=True)
    (700, 0)
    >>> resume_offset(claim, Checkpoint("o", 1, 500, b"", 0.0, generation=2), stateful=True)
    500
    >>> resume_offset(claim, Checkpoint("o", 1, 500, b"", 0.0, generation=1), stateful=True)
    0
    """
    if not stateful:
        return claim.next_offset
    if checkpoint is None or checkpoint.generation != claim.generation:
        return 0
    return checkpoint.source_offset


class PartitionWorker(Worker):
    consumer = "partition-worker"
    #: Keep the partition paused from a read until the next one, for a worker whose
    #: batches take seconds of CPU: otherwise the fetcher long-polls the broker every
    #: ``fetch_max_wait_ms`` meanwhile, waking the event loop to take the GIL each time.
    pause_between_reads = False
    #: The broker's wait for a fetch (None: the ``kafka_fetch_max_wait_ms`` setting); a worker
    #: that need not see a record within a few ms waits longer and wakes the broker less.
    fetch_max_wait_ms: int | None = None
    #: Woken at once by a publisher's ring on the topic's doorbell; a worker for which a
    #: record may wait (bookkeeping off every user's path) reads at its own pace instead, in
    #: bigger batches, and leaves the cores to the work someone waits for.
    woken_by_doorbell = True
    #: Records per ``handle`` at most (None: the ``kafka_max_batch`` setting); a worker
    #: whose records are large batches of work handles fewer at a time.
    max_records_per_handle: int | None = None

    def __init__(self, settings: Settings, name: str, topic: str, partition: int = 0,
                 checkpoint_every_n: int = 1000, checkpoint_every_s: float = 5.0) -> None:
        super().__init__(settings, name)
        self.topic, self.partition = topic, partition
        self.checkpoint_every_n, self.checkpoint_every_s = checkpoint_every_n, checkpoint_every_s
        self._since_checkpoint = 0
        self.pool = None
        self._reader: PartitionReader | None = None
        self.doorbell = None
        self.ledger: PartitionLedger | None = None
        self.claim: Claim | None = None
        self.offset = 0

    # --- what a subclass provides --------------------------------------------------------

    async def handle(self, records: list[Record]) -> BatchEffects:
        raise NotImplementedError

    def snapshot(self) -> bytes | None:
        """State to checkpoint; ``None`` for a stateless worker (offsets alone suffice)."""
        return None

    def restore(self, state: bytes) -> None:
        """Adopt the state of a checkpoint."""

    def checkpoint_writes(self) -> list:
        """Stage writes to run with each checkpoint, in its transaction (see
        :attr:`BatchEffects.writes`): for a copy of the state that the store needs only as of
        the latest checkpoint, which a restart replays on top of."""
        return []

    def checkpoint_pending(self) -> bool:
        """Whether a checkpoint is wanted though no record came since the last one: a
        copy that :meth:`checkpoint_writes` put off. Without it, a stream that stops right
        after such a checkpoint would leave the copy unwritten until its next record."""
        return False

    @property
    def stateful(self) -> bool:
        """Whether this worker checkpoints state (it overrides :meth:`snapshot`); asked every
        step, so it does not take a snapshot to find out."""
        return type(self).snapshot is not PartitionWorker.snapshot

    async def open(self) -> None:
        """Open what ``handle`` needs beyond the pool (called once the partition is claimed)."""

    def expect(self, record: Record, effects: BatchEffects, *types: type):
        """The record's message if it decodes to one of ``types``; otherwise it is
        dead-lettered (with the reason) in ``effects`` and ``None`` is returned."""
        try:
            message = decode(record.value)
            if not isinstance(message, types):
                raise DecodeFailed(f"a {type(message).__name__} does not belong on topic {self.topic!r}")
            bind_message(message)      # what is logged while handling it carries its chain
            return message
        except DecodeFailed as exc:
            effects.dead_letters.append(DeadLetter(self.topic, self.partition, record.offset, record.key,
                                                   record.value, printable(exc.reason)))
            return None

    # --- the loop ---------------------------------------------------------------------------

    @property
    def checkpoint_owner(self) -> str:
        return f"{self.consumer}/{self.topic}/{self.partition}"

    async def setup(self) -> None:
        from actors.wiring import doorbell_for, ledger_for, pool_for

        self.pool = await pool_for(self.settings)
        self.ledger = ledger_for(self.settings, self.pool)
        self.claim = await self.ledger.claim(self.consumer, self.topic, self.partition)
        checkpoint = await self.ledger.latest_checkpoint(self.checkpoint_owner) if self.stateful else None
        if checkpoint is not None:
            self.restore(checkpoint.state)
            self.last_checkpoint_offset, self.last_checkpoint_at = checkpoint.source_offset, checkpoint.created_at
        self.offset = resume_offset(self.claim, checkpoint, self.stateful)
        await self.open()
        self.doorbell = doorbell_for(self.settings) if self.woken_by_doorbell else None
        self._reader = reader_for(self.settings, self.topic, self.partition, self.fetch_max_wait_ms, self.doorbell)
        await self._reader.start(self.offset)
        self.log.info("partition claimed", epoch=self.claim.epoch, offset=self.offset)

    async def step(self) -> None:
        most = self.max_records_per_handle or self.settings.kafka_max_batch
        records = await self._reader.read(timeout_ms=200, max_records=most,
                                          then_pause=self.pause_between_reads)
        self._since_checkpoint += len(records)
        stateful = self.stateful
        due = stateful and (self._since_checkpoint > 0 or self.checkpoint_pending()) and (
            self._since_checkpoint >= self.checkpoint_every_n
            or time.time() - (self.last_checkpoint_at or self.started_at) >= self.checkpoint_every_s)
        if not records and not due:
            return
        unbind_message()
        effects = await self.handle(records) if records else BatchEffects()
        next_offset = records[-1].offset + 1 if records else self.offset
        if due:
            effects.checkpoint_state = self.snapshot()
            effects.writes.extend(self.checkpoint_writes())
        await self.ledger.commit(self.claim, next_offset, effects)
        self.offset = next_offset
        self.n_processed += len(records)
        if due:
            self._since_checkpoint = 0
            self.last_checkpoint_offset, self.last_checkpoint_at = next_offset, time.time()
        elif not stateful:
            self.last_checkpoint_offset, self.last_checkpoint_at = next_offset, time.time()

    async def teardown(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
        if self.doorbell is not None:
            await self.doorbell.close()
        if self.pool is not None:
            await self.pool.close()

    def heartbeat(self) -> dict:
        beat = super().heartbeat()
        beat.update(offset=self.offset, topic=self.topic, partition=self.partition)
        return beat
