"""Waiting for something no longer than a deadline allows.

``asyncio.wait_for`` cancels what it waited for when the time is up and then waits until
that has wound down: a Redis client closing its connection, a Ray call's future being
cancelled. On a busy machine that took the answer past the deadline it was meant to keep.
:func:`within` returns at the time, and lets the cancelled work wind down on its own."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable


async def within(awaitable: Awaitable[Any], timeout_s: float) -> Any:
    """The result of ``awaitable``, or ``asyncio.TimeoutError`` once ``timeout_s`` has passed
    (the work is cancelled, and not waited for).

    >>> asyncio.run(within(asyncio.sleep(0, "done"), 1.0))
    'done'
    >>> asyncio.run(within(asyncio.sleep(5), 0.01))
    Traceback (most recent call last):
    ...
    TimeoutError
    """
    task = asyncio.ensure_future(awaitable)
    if not task.done():
        try:
            await asyncio.wait({task}, timeout=max(timeout_s, 0.0))
        except asyncio.CancelledError:      # the caller gave up: so does the work
            task.cancel()
            task.add_done_callback(_forget)
            raise
    if task.done():
        return task.result()
    task.cancel()
    task.add_done_callback(_forget)
    raise asyncio.TimeoutError


def _forget(task: asyncio.Future) -> None:
    """Retrieve a cancelled task's outcome, so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
