"""Waiting for a training run or a batch-scoring job to end, woken by PostgreSQL: the row's
trigger notifies ``conveyor_finished`` with "<table>:<id>" at commit (schema 0026), so a
waiting client sees the end at once; it still looks on its own every little while (a lost
connection, a notification missed while it was checking).

>>> finished_key("score_jobs", "j1")
'score_jobs:j1'
"""

from __future__ import annotations

import asyncio
import contextlib

CHANNEL = "conveyor_finished"


def finished_key(table: str, row_id: str) -> str:
    return f"{table}:{row_id}"


class FinishSignal:
    """Set when the awaited row's end is notified; see :func:`finish_signal`."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._event = asyncio.Event()

    def heard(self, _connection, _pid, _channel, payload: str) -> None:
        if payload == self.key:
            self._event.set()

    def clear(self) -> None:
        """Call before looking at the row: an end notified afterwards ends the next wait."""
        self._event.clear()

    async def wait(self, timeout_s: float) -> bool:
        """Whether the end was notified within ``timeout_s``."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
        return self._event.is_set()


@contextlib.asynccontextmanager
async def finish_signal(dsn: str, table: str, row_id: str):
    """A :class:`FinishSignal` for the row, listening on a connection of its own to ``dsn``
    for as long as the block runs (not one of the caller's pool: waits side by side would
    take every connection their looks need); without it, the caller's looks still find the end."""
    import asyncpg

    signal = FinishSignal(finished_key(table, row_id))
    connection = None
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
        await connection.add_listener(CHANNEL, signal.heard)
    except Exception:
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
        connection = None
    try:
        yield signal
    finally:
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)


async def watch(dsn: str, table: str, row_id: str, read, state_of, timeout_s: float, on_progress=None,
                first_s: float = 0.02, most_s: float = 0.5):
    """Read the row's progress (``await read()``) until ``state_of`` it is 'done' or 'failed'
    and return it; None after ``timeout_s``. Woken at once by the row's end; looks on its own
    after ``first_s``, then less and less often, down to every ``most_s``. ``on_progress`` gets
    every progress that differs from the one before."""
    loop = asyncio.get_running_loop()
    deadline, last, pause = loop.time() + timeout_s, None, first_s
    most_s = max(most_s, first_s)
    async with finish_signal(dsn, table, row_id) as signal:
        while loop.time() < deadline:
            signal.clear()
            current = await read()
            if current is not None and current != last and on_progress is not None:
                on_progress(current)
            last = current
            if current is not None and state_of(current) in ("done", "failed"):
                return current
            await signal.wait(max(0.0, min(pause, deadline - loop.time())))
            pause = min(most_s, pause * 1.5)
    return None
