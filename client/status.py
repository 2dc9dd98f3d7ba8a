"""The typed shape of `cluster status` (also its ``--json`` output)."""

from __future__ import annotations

import msgspec


class ActorStatus(msgspec.Struct, kw_only=True):
    id: str
    kind: str                                   # "supervisor" | "worker"
    state: str                                  # starting | running | failed | escalated | stopped | unreachable
    n_restarts: int = 0
    last_restart_s: float | None = None
    pid: int | None = None
    n_processed: int | None = None
    last_checkpoint_offset: int | None = None
    last_checkpoint_age_s: float | None = None
    error: str | None = None
    activity: str | None = None                 # what a worker is busy with (e.g. a training run)
    topic: str | None = None                    # a partition worker's topic partition ...
    partition: int | None = None
    offset: int | None = None                   # ... and the next offset it reads (lag = end offset - this)
    strategy: str | None = None
    intensity: str | None = None
    children: list["ActorStatus"] = []


class ServiceStatus(msgspec.Struct, kw_only=True):
    name: str
    embedded: bool
    alive: bool
    address: str                                # secrets masked


class SpareStatus(msgspec.Struct, kw_only=True):
    """A worker process started ahead of a failure, that no worker took yet."""

    name: str
    state: str                                  # starting (importing) | ready | unreachable
    pid: int | None = None


class ClusterStatus(msgspec.Struct, kw_only=True):
    cluster_name: str
    state_dir: str
    state: str                                  # running | degraded | stopped
    healthy: bool
    services: list[ServiceStatus] = []
    tree: ActorStatus | None = None
    spares: list[SpareStatus] = []

    def actors(self) -> list[ActorStatus]:
        """Every actor of the tree, depth first."""
        out, stack = [], [self.tree] if self.tree else []
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out

    def actor(self, actor_id: str) -> ActorStatus:
        for node in self.actors():
            if node.id == actor_id:
                return node
        raise KeyError(actor_id)
