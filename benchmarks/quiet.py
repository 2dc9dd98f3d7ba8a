"""Waiting for the machine to settle before a measurement, so that neither side of a
ratio pays for work the other started (a cluster still starting, actors replaced after
a run): both are measured beside the idle cluster only."""

from __future__ import annotations

import asyncio
import time

#: Machine-wide CPU (percent of all cores) under which the machine counts as settled: an
#: idle embedded cluster uses about a fifth of this 2-core machine.
QUIET_PERCENT = 30.0


def wait_quiet(max_s: float = 60.0, quiet_percent: float = QUIET_PERCENT, window_s: float = 0.5) -> float:
    """Block until two windows in a row use less than ``quiet_percent`` of the machine's
    CPU (or ``max_s`` passed); the seconds waited."""
    import psutil

    began, calm = time.monotonic(), 0
    psutil.cpu_percent(None)
    while calm < 2 and time.monotonic() - began < max_s:
        calm = calm + 1 if psutil.cpu_percent(window_s) < quiet_percent else 0
    return time.monotonic() - began


async def settle(max_s: float = 60.0) -> float:
    """:func:`wait_quiet` without blocking the caller's event loop."""
    return await asyncio.to_thread(wait_quiet, max_s)


async def warm_pool_started(namespace: str, n_actors: int, max_s: float = 90.0) -> float:
    """Wait until the training coordinator's ``n_actors`` warm candidate actors exist (it
    starts them ``actors.training.WARM_AFTER_S`` after its own start, and each imports its
    libraries then: a few CPU seconds a fresh cluster spends after it is healthy), then
    settle; the seconds waited. Needs a Ray connection to the cluster."""
    from actors.remote import RayRuntime

    runtime, began = RayRuntime(namespace), time.monotonic()
    while n_actors and time.monotonic() - began < max_s:
        if len(runtime.named_below("train.warm")) >= n_actors:
            break
        await asyncio.sleep(0.5)
    await settle()
    return time.monotonic() - began
