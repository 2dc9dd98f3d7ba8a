"""Spare worker processes: started ahead of any failure, so that restarting a worker
takes one that runs already (its interpreter, Ray's core worker and the workers' libraries
loaded) instead of starting a process. On this kind of machine a new actor process costs
about 2 s under load (Ray restarting a bare actor: 2.0 s in the chaos runs), more than a
worker's own start; a learner's process also imports River (~1.3 s of CPU).

A spare is a ``WorkerHost`` without a worker, named ``spare.<random>``; it imports the
tree's worker modules once started. A supervisor restarting a worker child hands the
worker to a spare (``adopt``: the first supervisor to ask gets it) and points the child's
name at the spare's (an alias: Ray names cannot move to another actor). The root
supervisor alone starts spares: the first ones a while after the tree is up (not during
its start, which they would slow), a replacement as soon as a supervisor took one.

>>> modules_of(SupervisorSpec(id="root", children=(
...     ChildSpec(id="a", factory="actors.outbox_relay:OutboxRelay"),
...     SupervisorSpec(id="s", children=(ChildSpec(id="b", factory="actors.learner:LearnerPartition"),)))))
('actors.learner', 'actors.outbox_relay')
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors.spare_replicas import ready_first
from supervisors.spec import ChildSpec, HostSpec, SupervisorSpec


def modules_of(spec: SupervisorSpec) -> tuple[str, ...]:
    """The modules of every worker factory below ``spec`` (what a spare imports ahead)."""
    found: set[str] = set()
    for child in spec.children:
        if isinstance(child, ChildSpec):
            found.add(child.factory.partition(":")[0])
        elif isinstance(child, HostSpec):
            found.update(c.factory.partition(":")[0] for c in child.children)
        else:
            found.update(modules_of(child))
    return tuple(sorted(found))


class Spares:
    """One supervisor's use of the cluster's spares: ``take`` one for a child being
    restarted; the root's ``refill`` starts them, up to ``size`` free ones. Spares are an
    optimisation: every failure here only means the child is started in a new process, as
    without them."""

    def __init__(self, runtime, settings, size: int, log) -> None:
        self.runtime, self.settings, self.size, self.log = runtime, settings, size, log
        self._filling: asyncio.Task | None = None

    def _modules(self) -> tuple[str, ...]:
        from supervisors.tree import cluster_tree

        return modules_of(cluster_tree(self.settings))

    async def take(self, name: str, factory: str, args: dict[str, Any]):
        """A spare now hosting ``factory`` as ``name`` (the name points at it), or None."""
        if self.size <= 0:
            return None
        try:
            free = await asyncio.to_thread(self.runtime.free_spares)
            for spare, handle in await ready_first(free, self._state):
                try:
                    adopted = await self.runtime.call(handle, "adopt", 5.0, factory, self.settings, name, args)
                except Exception:
                    continue        # gone or busy: the next one, or a new process
                if adopted:
                    await asyncio.to_thread(self.runtime.set_alias, name, spare)
                    return handle
        except Exception as exc:
            self.log.warning("no spare taken", child=name, error=f"{type(exc).__name__}: {exc}"[:300])
        return None

    async def _state(self, handle) -> str:
        """A spare's state: starting (importing) or ready (its ping says)."""
        return (await self.runtime.call(handle, "ping", 1.0))["state"]

    def refill(self) -> None:
        """Start spares in the background until ``size`` are free (one fill at a time)."""
        if self.size > 0 and (self._filling is None or self._filling.done()):
            self._filling = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        try:
            free = await asyncio.to_thread(self.runtime.free_spares)
            modules = self._modules()
            for _ in range(self.size - len(free)):
                name, handle = await self.runtime.spawn_spare(self.settings, modules)
                await self.runtime.call(handle, "ready", 120.0)
                self.log.info("spare ready", spare=name)
        except Exception as exc:
            self.log.warning("spare not started", error=f"{type(exc).__name__}: {exc}"[:300])

    def close(self) -> None:
        if self._filling is not None:
            self._filling.cancel()

    async def stop_all(self) -> None:
        """Kill every spare no child took (the taken ones are children: killed with them)."""
        try:
            for _, handle in await asyncio.to_thread(self.runtime.free_spares):
                self.runtime.kill(handle)
        except Exception as exc:
            self.log.warning("spares not stopped", error=f"{type(exc).__name__}: {exc}"[:300])
