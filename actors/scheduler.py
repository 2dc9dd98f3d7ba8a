"""The scheduler: publishes every scheduled command when its cron expression is due.

Each run is a copy of the stored command with a fresh message id, written to the
outbox in the same transaction that moves the schedule to its next time, so a run is
neither lost nor doubled by a crash.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import msgspec

from actors.worker import Worker
from messages.base import new_id
from messages.codec import decode, encode
from storage.settings import Settings


def next_run(cron: str, after: dt.datetime) -> dt.datetime:
    """The first time after ``after`` that ``cron`` names (5 fields, or 6 with seconds last).

    >>> next_run("*/5 * * * *", dt.datetime(2026, 1, 1, 10, 2, tzinfo=dt.timezone.utc)).isoformat()
    '2026-01-01T10:05:00+00:00'
    """
    from croniter import croniter

    return croniter(cron, after).get_next(dt.datetime)


def check_cron(cron: str) -> str:
    """``cron`` if it is a valid expression, else ValueError naming the field."""
    from croniter import croniter

    if not isinstance(cron, str) or len(cron) > 200 or not croniter.is_valid(cron):
        raise ValueError(f"every: {cron!r} is not a cron expression (e.g. '*/5 * * * *')")
    return cron


class Scheduler(Worker):
    def __init__(self, settings: Settings, name: str, poll_s: float = 0.5) -> None:
        super().__init__(settings, name)
        self.poll_s = poll_s
        self.pool = None

    async def setup(self) -> None:
        from actors.wiring import pool_for

        self.pool = await pool_for(self.settings, max_size=2)

    async def step(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            due = await conn.fetch("SELECT schedule_id, cron, topic, command, next_run_at FROM schedules"
                                   " WHERE next_run_at <= now() ORDER BY next_run_at LIMIT 100"
                                   " FOR UPDATE SKIP LOCKED")
            now = dt.datetime.now(dt.timezone.utc)
            for row in due:
                template = decode(bytes(row["command"]))
                run = msgspec.structs.replace(template, msg_id=new_id(), correlation_id="",
                                              causation_id=row["schedule_id"])
                run = msgspec.structs.replace(run, correlation_id=run.msg_id)
                await conn.execute("INSERT INTO outbox (topic, msg_key, payload, dedup_key) VALUES ($1, $2, $3, $4)",
                                   row["topic"], row["schedule_id"].encode(), encode(run),
                                   f"schedule:{row['schedule_id']}:{row['next_run_at'].isoformat()}")
                await conn.execute("UPDATE schedules SET next_run_at = $2, last_run_at = now(), n_runs = n_runs + 1"
                                   " WHERE schedule_id = $1", row["schedule_id"], next_run(row["cron"], now))
        self.n_processed += len(due)
        await asyncio.sleep(self.poll_s)

    async def teardown(self) -> None:
        if self.pool is not None:
            await self.pool.close()
