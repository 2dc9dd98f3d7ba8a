"""Waiting for a condition in tests, with a bounded time and a clear failure."""

from __future__ import annotations

import asyncio
import time


async def eventually(check, timeout_s: float = 30.0, interval_s: float = 0.1, what: str = "condition",
                     until=bool):
    """Await ``check()`` (sync or async) until ``until`` holds for its value (by default:
    until it is truthy); return that value. A timeout names the last value seen."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if until(last):
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"{what} not reached within {timeout_s} s (last value: {last!r})")
