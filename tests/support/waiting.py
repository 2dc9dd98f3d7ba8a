"""Waiting for a condition in tests, with a bounded time and a clear failure."""

from __future__ import annotations

import asyncio
import time


async def eventually(check, timeout_s: float = 30.0, interval_s: float = 0.1, what: str = "condition"):
    """Await ``check()`` (sync or async) until it returns a truthy value; return it."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"{what} not reached within {timeout_s} s (last value: {last!r})")
