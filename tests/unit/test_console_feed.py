"""Gathering console snapshots, with a fake cluster: every source in its own try,
throughput from successive refreshes, lag from the end offsets of the partitions read."""

from __future__ import annotations

import itertools

from client.status import ActorStatus, ClusterStatus
from storage.settings import load_settings
from client.console_feed import EndOffsets, Feed
from client.console_snapshot import Throughput


def status(n_processed: int, pid: int = 7) -> ClusterStatus:
    tree = ActorStatus(id="root", kind="supervisor", state="running", children=[
        ActorStatus(id="root.monitor", kind="worker", state="running", pid=pid, n_processed=n_processed,
                    topic="scores", partition=0, offset=n_processed)])
    return ClusterStatus(cluster_name="c", state_dir="d", state="running", healthy=True, tree=tree)


class FakeConveyor:
    """The calls the feed makes of :class:`client.connection.Conveyor`."""

    def __init__(self) -> None:
        self.settings = load_settings(None, {"CONVEYOR_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
        self.counts = itertools.count(100, 50)

    async def status(self, timeout_s: float = 10.0):
        return status(next(self.counts))

    async def deployments(self, model=None):
        return [{"model": "m", "version": 1, "aliases": ["production"], "replicas": 1, "canary_weight": None,
                 "state": "live"},
                {"model": "m", "version": 0, "aliases": [], "replicas": 1, "canary_weight": None, "state": "retired"}]

    async def monitoring(self, model=None):
        raise ConnectionError("database is down")

    async def alerts(self, model=None, limit=20):
        return []

    async def learners(self):
        return [{"name": "l", "revision": 1, "stream": "s", "reports": {}}]


class FakeEndOffsets(EndOffsets):
    def __init__(self) -> None:
        super().__init__("unused")
        self.asked = []

    async def read(self, partitions):
        self.asked.append(set(partitions))
        return {p: 1000 for p in partitions}


async def test_a_failing_source_is_named_and_the_others_are_gathered():
    feed = Feed(FakeConveyor())
    feed.offsets = FakeEndOffsets()
    first = await feed.snapshot()
    assert first.errors == {"monitoring": "ConnectionError: database is down"}
    assert [(v.model, v.version, v.aliases) for v in first.live] == [("m", 1, ("production",))]
    assert first.end_offsets == {("scores", 0): 1000} and feed.offsets.asked == [{("scores", 0)}]
    assert first.learners[0]["name"] == "l" and first.rates == {}
    second = await feed.snapshot()
    assert second.rates["root.monitor"] > 0


def test_throughput_is_the_count_difference_over_time_and_starts_again_after_a_restart():
    t = Throughput(window=3)
    assert t.update(status(100), at=0.0) == {}
    assert t.update(status(200), at=1.0) == {"root.monitor": 100.0}
    assert t.update(status(400), at=2.0) == {"root.monitor": 150.0}
    assert t.update(status(700), at=3.0) == {"root.monitor": 250.0}     # window of 3: from t=1
    assert t.update(status(5, pid=8), at=4.0) == {}                     # a new process counts from 0
    assert t.update(status(25, pid=8), at=5.0) == {"root.monitor": 20.0}
    assert t.update(None, at=6.0) == {}
