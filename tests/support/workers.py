"""Workers used by supervision tests: they misbehave on purpose."""

from __future__ import annotations

import asyncio

from actors.worker import Worker


class CrashingWorker(Worker):
    """Runs for ``crash_after_s`` seconds, then fails."""

    def __init__(self, settings, name, crash_after_s: float = 0.3) -> None:
        super().__init__(settings, name)
        self.crash_after_s = crash_after_s

    async def step(self) -> None:
        await asyncio.sleep(self.crash_after_s)
        raise RuntimeError("crashing on purpose")


class IdleWorker(Worker):
    """Does nothing, answers heartbeats."""

    async def step(self) -> None:
        await asyncio.sleep(0.2)
