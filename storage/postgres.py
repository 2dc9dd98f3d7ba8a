"""asyncpg adapters of the storage ports."""

from __future__ import annotations

import json
from typing import Any, Sequence

import asyncpg

from storage.base import (
    AuditLog, BatchEffects, Checkpoint, Claim, DeadLetter, Fenced, Outbox, OutboxItem, PartitionLedger,
)
from storage.signing import SignatureMismatch, sign, verify

#: Checkpoints kept per owner; older ones are pruned when a new one is written.
KEEP_CHECKPOINTS = 3


async def connect_pool(dsn: str, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """A connection pool; the caller closes it."""
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30)


class PostgresLedger(PartitionLedger):
    """Offsets fenced by epoch, effects and signed checkpoints in one transaction."""

    def __init__(self, pool: asyncpg.Pool, signing_key: bytes) -> None:
        self._pool = pool
        self._key = signing_key

    async def claim(self, consumer: str, topic: str, partition: int) -> Claim:
        row = await self._pool.fetchrow(
            "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset, epoch, generation)"
            " VALUES ($1, $2, $3, 0, 1, (SELECT COALESCE(max(generation), 0) FROM broker_generations))"
            " ON CONFLICT (consumer, topic, partition) DO UPDATE"
            " SET epoch = consumer_offsets.epoch + 1, updated_at = now(),"
            "     next_offset = CASE WHEN consumer_offsets.generation = EXCLUDED.generation"
            "                        THEN consumer_offsets.next_offset ELSE 0 END,"
            "     generation = EXCLUDED.generation"
            " RETURNING epoch, next_offset, generation",
            consumer, topic, partition,
        )
        return Claim(consumer, topic, partition, row["epoch"], row["next_offset"], row["generation"])

    async def commit(self, claim: Claim, next_offset: int, effects: BatchEffects) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            moved = await conn.fetchval(
                "UPDATE consumer_offsets SET next_offset = GREATEST(next_offset, $5), updated_at = now()"
                " WHERE consumer = $1 AND topic = $2 AND partition = $3 AND epoch = $4 RETURNING 1",
                claim.consumer, claim.topic, claim.partition, claim.epoch, next_offset,
            )
            if moved is None:
                raise Fenced(f"{claim.consumer} {claim.topic}[{claim.partition}] epoch {claim.epoch} superseded")
            await _write_effects(conn, claim, effects)
            for write in effects.writes:
                await write(conn)
            if effects.checkpoint_state is not None:
                await self._write_checkpoint(conn, claim, next_offset, effects.checkpoint_state)

    async def hold(self, conn: asyncpg.Connection, claim: Claim) -> None:
        held = await conn.fetchval(
            "SELECT 1 FROM consumer_offsets WHERE consumer = $1 AND topic = $2 AND partition = $3 AND epoch = $4"
            " FOR SHARE", claim.consumer, claim.topic, claim.partition, claim.epoch)
        if held is None:
            raise Fenced(f"{claim.consumer} {claim.topic}[{claim.partition}] epoch {claim.epoch} superseded")

    async def _write_checkpoint(self, conn: asyncpg.Connection, claim: Claim, offset: int, state: bytes) -> None:
        owner = checkpoint_owner(claim)
        version = await conn.fetchval(
            "INSERT INTO checkpoints (owner, version, source_offset, state, signature, generation)"
            " SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5 FROM checkpoints WHERE owner = $1"
            " RETURNING version",
            owner, offset, state, sign(self._key, _signed_bytes(owner, offset, state)), claim.generation,
        )
        await conn.execute("DELETE FROM checkpoints WHERE owner = $1 AND version <= $2", owner,
                           version - KEEP_CHECKPOINTS)

    async def latest_checkpoint(self, owner: str) -> Checkpoint | None:
        rows = await self._pool.fetch(
            "SELECT version, source_offset, state, signature, generation,"
            " extract(epoch FROM created_at) AS created"
            " FROM checkpoints WHERE owner = $1 ORDER BY version DESC", owner,
        )
        for row in rows:
            try:
                verify(self._key, _signed_bytes(owner, row["source_offset"], row["state"]), row["signature"])
            except SignatureMismatch:
                continue  # a tampered or foreign checkpoint is never restored
            return Checkpoint(owner, row["version"], row["source_offset"], bytes(row["state"]),
                              float(row["created"]), row["generation"])
        return None


def checkpoint_owner(claim: Claim) -> str:
    return f"{claim.consumer}/{claim.topic}/{claim.partition}"


def _signed_bytes(owner: str, offset: int, state: bytes) -> bytes:
    return f"{owner}\x00{offset}\x00".encode() + state


async def _write_effects(conn: asyncpg.Connection, claim: Claim, effects: BatchEffects) -> None:
    if effects.raw_events:
        rows = effects.raw_events
        await conn.execute(
            "INSERT INTO raw_events (msg_id, stream, entity_key, payload, event_time, topic, partition,"
            " source_offset) SELECT m, s, k, p::jsonb, t, $6, $7, o"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $8::bigint[])"
            " AS u(m, s, k, p, t, o) ON CONFLICT (msg_id) DO NOTHING",
            [r.msg_id for r in rows], [r.stream for r in rows], [r.entity_key for r in rows],
            [r.payload for r in rows], [r.event_time for r in rows], claim.topic, claim.partition,
            [r.source_offset for r in rows],
        )
    await add_dead_letters(conn, effects.dead_letters)
    await add_to_outbox(conn, effects.outbox)


async def add_dead_letters(conn: asyncpg.Connection, letters: list[DeadLetter]) -> None:
    """Dead letters in the caller's transaction (one per source record: a replay adds none)."""
    if letters:
        await conn.executemany(
            "INSERT INTO dead_letters (topic, partition, source_offset, msg_key, payload, error)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (topic, partition, source_offset) DO NOTHING",
            [(d.topic, d.partition, d.source_offset, d.key, d.payload, d.error) for d in letters],
        )


async def add_to_outbox(conn: asyncpg.Connection, items: list[tuple]) -> None:
    """Outbox rows ((topic, key, payload, dedup_key[, partition]), as in
    :attr:`BatchEffects.outbox`) in the caller's transaction; one whose dedup key is
    there already is not added again. For a stage write (:attr:`BatchEffects.writes`)
    whose message is known only once the write has run."""
    if items:
        await conn.executemany(
            "INSERT INTO outbox (topic, msg_key, payload, dedup_key, partition) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (dedup_key) DO NOTHING", [(*item, None)[:5] for item in items],
        )


async def new_broker_generation(pool_or_conn, bootstrap: str) -> int:
    """Record that the broker at ``bootstrap`` starts with empty logs (an embedded broker's start)."""
    return await pool_or_conn.fetchval(
        "INSERT INTO broker_generations (bootstrap) VALUES ($1) RETURNING generation", bootstrap)


class PostgresOutbox(Outbox):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def pending(self, limit: int) -> list[OutboxItem]:
        rows = await self._pool.fetch(
            "SELECT id, topic, msg_key, payload, partition FROM outbox WHERE published_at IS NULL"
            " ORDER BY id LIMIT $1", limit,
        )
        return [OutboxItem(r["id"], r["topic"], r["msg_key"], bytes(r["payload"]), r["partition"]) for r in rows]

    async def mark_published(self, ids: Sequence[int]) -> None:
        await self._pool.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", list(ids))


class PostgresAuditLog(AuditLog):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        await self._pool.execute(
            "INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)",
            actor, action, subject, json.dumps(detail, default=str),
        )
