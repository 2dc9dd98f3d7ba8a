"""Serving replica processes started ahead of a failure, for the deployment manager: a
replica that dies is loaded into one of them instead of into a new process (~2 s to start
under load here, plus scikit-learn's import), and its name points at it from then on (an
alias: Ray names cannot move to another actor). Kept only while some version is live;
the first ones ``spare_workers_after_s`` after the manager started, not during the tree's
start. Every failure here only means the replica gets a new process, as without them.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any

#: How often the manager looks whether a spare is missing (one may have died), besides
#: right after it took one.
CHECK_EVERY_S = 30.0
REPLICA_FACTORY = "actors.serving:ModelReplica"


class SpareReplicas:
    def __init__(self, manager) -> None:
        self.manager = manager
        self._filling: asyncio.Task | None = None
        self._checked_at = -math.inf
        self._started_at = time.monotonic()

    def _runtime(self):
        from actors.remote import RayRuntime

        return RayRuntime(self.manager.settings.cluster_name)

    def keep(self, n_live_replicas: int) -> None:
        """Called at every reconcile: start the missing spares in the background, while any
        version is live."""
        settings = self.manager.settings
        now = time.monotonic()
        if (settings.spare_replicas <= 0 or n_live_replicas == 0
                or now - self._started_at < settings.spare_workers_after_s or now - self._checked_at < CHECK_EVERY_S
                or (self._filling is not None and not self._filling.done())):
            return
        self._checked_at = now
        self._filling = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        from actors.remote import REPLICA_SPARE_PREFIX

        try:
            free = await asyncio.to_thread(self._runtime().free_spares, REPLICA_SPARE_PREFIX)
            for _ in range(self.manager.settings.spare_replicas - len(free)):
                name = f"{REPLICA_SPARE_PREFIX}{os.urandom(4).hex()}"
                handle = await self.manager.compute.start(name, "actors.remote:ReplicaHost", None, "actors.serving",
                                                          detached=True)
                deadline = time.monotonic() + 120.0
                while (await asyncio.wait_for(handle.stats.remote(), 10.0)).get("spare") != "ready":
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{name} not ready after 120 s")
                    await asyncio.sleep(0.2)
                self.manager.log.info("spare replica ready", spare=name)
        except Exception as exc:
            self.manager.log.warning("spare replica not started", error=f"{type(exc).__name__}: {exc}"[:300])

    async def take(self, model: str, version: int) -> tuple[str, Any] | None:
        """(name, handle) of a spare now hosting ``model`` v``version`` (not loaded yet), or None."""
        from actors.remote import REPLICA_SPARE_PREFIX

        if self.manager.settings.spare_replicas <= 0:
            return None
        try:
            free = await asyncio.to_thread(self._runtime().free_spares, REPLICA_SPARE_PREFIX)
            for name, handle in await ready_first(free, _state):
                try:
                    adopted = await asyncio.wait_for(handle.adopt.remote(
                        REPLICA_FACTORY, self.manager.settings, model, version), 5.0)
                except Exception:
                    continue
                if adopted:
                    self._checked_at = -math.inf        # a replacement at the next reconcile
                    return name, handle
        except Exception as exc:
            self.manager.log.warning("no spare replica taken", error=f"{type(exc).__name__}: {exc}"[:300])
        return None


async def _state(handle) -> str:
    """A spare replica's state: starting (importing), ready, or taken (it hosts a version)."""
    return (await asyncio.wait_for(handle.stats.remote(), 1.0)).get("spare", "taken")


async def ready_first(free: list[tuple[str, Any]], state_of) -> list[tuple[str, Any]]:
    """The (name, handle) spares of ``free`` that are free to take (``await state_of(handle)``
    is "ready" or "starting"; one that does not answer is left out), the ready ones first:
    one still importing would make its new worker wait for the rest of the imports.

    >>> async def state_of(handle):
    ...     if handle == "gone":
    ...         raise TimeoutError
    ...     return handle
    >>> asyncio.run(ready_first([("a", "starting"), ("b", "gone"), ("c", "ready"), ("d", "taken")], state_of))
    [('c', 'ready'), ('a', 'starting')]
    """
    async def state(handle) -> str:
        try:
            return await state_of(handle)
        except Exception:
            return "unreachable"

    states = await asyncio.gather(*(state(handle) for _, handle in free))
    usable = [(s, spare) for s, spare in zip(states, free) if s in ("ready", "starting")]
    return [spare for s, spare in sorted(usable, key=lambda item: item[0] != "ready")]
