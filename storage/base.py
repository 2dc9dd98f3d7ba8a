"""Ports: what the stages need from storage, independent of the adapters.

Adapters (``postgres.py``, ``redis_store.py``, ``kafka.py``) implement these; unit
tests may subclass them with in-memory fakes. Product code paths use the adapters.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence


class Fenced(RuntimeError):
    """A newer incarnation of this partition worker has claimed the partition."""


@dataclass(frozen=True)
class Claim:
    """A partition claimed by one incarnation of a worker."""

    consumer: str
    topic: str
    partition: int
    epoch: int
    next_offset: int
    generation: int = 0          # of the broker's log the offset belongs to


@dataclass(frozen=True)
class Checkpoint:
    """A stateful worker's state at a source offset, verified on load."""

    owner: str
    version: int
    source_offset: int
    state: bytes
    created_at: float
    generation: int = 0


@dataclass(frozen=True)
class RawEventRow:
    msg_id: str
    stream: str
    entity_key: str
    payload: str  # JSON text of the values
    event_time: float | None
    source_offset: int


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    source_offset: int
    key: bytes | None
    payload: bytes
    error: str


@dataclass(frozen=True)
class OutboxItem:
    id: int
    topic: str
    key: bytes | None
    payload: bytes
    partition: int | None = None


@dataclass
class BatchEffects:
    """Everything one consumed batch changes, written with its offset in one transaction."""

    raw_events: list[RawEventRow] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: (topic, key, payload, dedup_key[, partition]): a replayed batch does not publish twice.
    outbox: list[tuple] = field(default_factory=list)
    checkpoint_state: bytes | None = None
    #: Stage-specific writes, run inside the same transaction (receive the connection).
    writes: list[Callable[[Any], Awaitable[None]]] = field(default_factory=list, compare=False)


class PartitionLedger(abc.ABC):
    """Offsets, effects and checkpoints of partition workers (exactly-once on top of at-least-once)."""

    @abc.abstractmethod
    async def claim(self, consumer: str, topic: str, partition: int) -> Claim:
        """Take the partition: bump its epoch so any older incarnation is fenced."""

    @abc.abstractmethod
    async def commit(self, claim: Claim, next_offset: int, effects: BatchEffects) -> None:
        """Write ``effects`` and advance the offset atomically; :class:`Fenced` if superseded."""

    @abc.abstractmethod
    async def latest_checkpoint(self, owner: str) -> Checkpoint | None:
        """The newest checkpoint whose signature verifies, or ``None``."""

    async def hold(self, conn: Any, claim: Claim) -> None:
        """Fence a write the worker makes before it commits its offset: inside the caller's
        transaction on ``conn``, :class:`Fenced` if ``claim`` is superseded, else keep it
        current until the transaction ends (a newer claim waits for it)."""
        raise NotImplementedError(f"{type(self).__name__} cannot fence writes outside commit()")


class Outbox(abc.ABC):
    @abc.abstractmethod
    async def pending(self, limit: int) -> list[OutboxItem]: ...

    @abc.abstractmethod
    async def mark_published(self, ids: Sequence[int]) -> None: ...


class AuditLog(abc.ABC):
    @abc.abstractmethod
    async def record(self, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None: ...
