"""What one frame of the status console shows, as plain data, and the figures derived
from successive frames (throughput) or from the broker (lag). No I/O here: the feed
(console_feed.py) gathers snapshots, the view (console_view.py) draws them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from client.status import ActorStatus, ClusterStatus


@dataclass(frozen=True)
class LiveVersion:
    """A deployed version that is live, with its aliases (production, previous, canary)."""

    model: str
    version: int
    aliases: tuple[str, ...] = ()
    replicas: int = 0
    canary_weight: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything one frame shows. ``errors`` names each source that could not be read
    this time (status, models, alerts, learners, offsets) with the reason."""

    taken_at: float                                       # time.time() when gathered
    status: ClusterStatus | None = None
    live: tuple[LiveVersion, ...] = ()
    versions: tuple = ()                                  # client.monitoring.VersionSummary
    alerts: tuple = ()                                    # client.monitoring.Alert, newest first
    learners: tuple = ()                                  # dicts of Conveyor.learners()
    end_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # actor id -> records processed per second
    errors: dict[str, str] = field(default_factory=dict)
    drift_psi_alert: float = 0.25                          # PSI above this is drawn as drifting


def lag(actor: ActorStatus, end_offsets: dict[tuple[str, int], int]) -> int | None:
    """Records on the actor's topic partition it has not read yet; None when it reads no
    partition or the partition's end offset is unknown.

    >>> a = ActorStatus(id="root.monitor", kind="worker", state="running", topic="scores", partition=0, offset=90)
    >>> lag(a, {("scores", 0): 100})
    10
    >>> lag(a, {}) is None
    True
    """
    if actor.topic is None or actor.partition is None or actor.offset is None:
        return None
    end = end_offsets.get((actor.topic, actor.partition))
    if end is None:
        return None
    return max(end - actor.offset, 0)     # a fresh embedded broker's log may be behind a stored offset


def partitions_read(status: ClusterStatus | None) -> set[tuple[str, int]]:
    """Every (topic, partition) some actor of the tree reads."""
    if status is None:
        return set()
    return {(a.topic, a.partition) for a in status.actors() if a.topic is not None and a.partition is not None}


class Throughput:
    """Records processed per second per worker, over the last ``window`` refreshes.

    >>> t = Throughput(window=3)
    >>> s = lambda n: ClusterStatus(cluster_name="c", state_dir="d", state="running", healthy=True,
    ...     tree=ActorStatus(id="root.w", kind="worker", state="running", n_processed=n, pid=1))
    >>> t.update(s(100), at=10.0)
    {}
    >>> t.update(s(150), at=12.0)
    {'root.w': 25.0}
    """

    def __init__(self, window: int = 5) -> None:
        self.window = window
        self._seen: dict[str, deque[tuple[float, int, int | None]]] = {}

    def update(self, status: ClusterStatus | None, at: float) -> dict[str, float]:
        if status is None or status.tree is None:
            return {}
        rates, present = {}, set()
        for actor in status.actors():
            if actor.n_processed is None:
                continue
            present.add(actor.id)
            seen = self._seen.setdefault(actor.id, deque(maxlen=self.window))
            if seen and (actor.n_processed < seen[-1][1] or actor.pid != seen[-1][2]):
                seen.clear()                   # restarted: its count began again
            seen.append((at, actor.n_processed, actor.pid))
            (t0, n0, _), (t1, n1, _) = seen[0], seen[-1]
            if t1 > t0:
                rates[actor.id] = (n1 - n0) / (t1 - t0)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return rates
