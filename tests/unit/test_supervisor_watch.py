"""How a supervisor watches its children between restarts: which checks ask a child for a
heartbeat over Ray, and which only look at its process. Ray-free: the supervisor's runtime is
replaced by one that counts pings and answers for processes as told."""

from __future__ import annotations

import asyncio

import structlog

from supervisors.children import ChildRecord
from supervisors.spec import ChildSpec, SupervisorFlags, SupervisorSpec
from supervisors.supervisor import Supervisor

NODE = "node-a"


class Runtime:
    """Answers pings (or lets them time out while ``frozen``) and reports processes."""

    def __init__(self) -> None:
        self.pings: list[str] = []
        self.gone: set[int] = set()
        self.frozen: set[int] = set()

    def node_id(self) -> str:
        return NODE

    def process_gone(self, pid, node_id) -> bool:
        return node_id == NODE and pid in self.gone

    def process_stopped(self, pid, node_id) -> bool:
        return node_id == NODE and pid in self.frozen

    async def call(self, handle, method, timeout_s, *args):
        assert method == "ping"
        self.pings.append(handle)
        if handle in self.frozen:
            raise asyncio.TimeoutError
        return {"state": "running", "pid": handle, "node_id": NODE}


def supervisor(*children: ChildRecord) -> tuple[Supervisor, Runtime]:
    sup = Supervisor.__new__(Supervisor)
    sup.name, sup.state, sup.log = "root", "running", structlog.get_logger()
    sup.flags = SupervisorFlags(heartbeat_interval_s=0.5, n_checks_per_ping=4)
    sup.children = {c.spec.id: c for c in children}
    sup.order = [c.spec.id for c in children]
    sup.runtime, sup._wake = Runtime(), asyncio.Event()
    return sup, sup.runtime


def settled(pid: int, beat_age_s: float = 0.0, node_id: str = NODE) -> ChildRecord:
    """A running child whose last heartbeat is ``beat_age_s`` old; its handle is its pid."""
    import time

    child = ChildRecord(ChildSpec(id=f"w{pid}", factory="x:Y"), f"root.w{pid}", handle=pid, state="running")
    child.last_beat, child.last_beat_at = {"pid": pid, "node_id": node_id}, time.time() - beat_age_s
    return child


async def test_a_settled_local_child_is_pinged_only_once_its_ping_period_has_passed():
    fresh, due = settled(1, beat_age_s=0.1), settled(2, beat_age_s=2.5)
    sup, runtime = supervisor(fresh, due)
    assert [await sup._probe(c) for c in (fresh, due)] == [(None, ""), (None, "")]
    assert runtime.pings == [2]


async def test_a_child_on_another_node_or_a_supervisor_is_pinged_at_every_check():
    remote = settled(3, node_id="node-b")
    child_sup = ChildRecord(SupervisorSpec(id="sub", children=()), "root.sub", handle=4, state="running")
    child_sup.last_beat, child_sup.last_beat_at = {"pid": 4, "node_id": NODE}, __import__("time").time()
    sup, runtime = supervisor(remote, child_sup)
    for child in (remote, child_sup):
        await sup._probe(child)
    assert runtime.pings == [3, 4]


async def test_an_exited_process_is_a_crash_seen_without_a_ping():
    child = settled(5)
    sup, runtime = supervisor(child)
    runtime.gone.add(5)
    failure, reason = await sup._probe(child)
    assert failure == "crashed" and "5 exited" in reason and runtime.pings == []


async def test_a_frozen_process_is_pinged_at_once_and_is_hung_when_the_ping_is_missed():
    child = settled(6, beat_age_s=0.1)
    sup, runtime = supervisor(child)
    runtime.frozen.add(6)
    failure, reason = await sup._probe(child)
    assert failure == "hung" and "stopped by a signal" in reason and runtime.pings == [6]


async def test_a_late_child_is_pinged_at_every_check_until_it_answers():
    child = settled(7, beat_age_s=2.5)
    sup, runtime = supervisor(child)
    runtime.frozen.add(7)                                 # not answering, though not reported stopped
    runtime.process_stopped = lambda pid, node_id: False
    assert await sup._probe(child) == (None, "") and child.missed_heartbeats == 1
    assert await sup._probe(child) == (None, "") and child.missed_heartbeats == 2
    assert (await sup._probe(child))[0] == "hung"
    assert runtime.pings == [7, 7, 7]


async def test_a_child_reporting_its_failure_is_pinged_at_the_next_check_and_wakes_it():
    child, other = settled(8, beat_age_s=0.1), settled(9, beat_age_s=0.1)
    sup, runtime = supervisor(child, other)
    await sup.child_failed("root.w8")
    await sup.child_failed("root.unknown")               # not a child of this supervisor: ignored
    assert sup._wake.is_set() and child.reported and not other.reported
    for c in (child, other):
        await sup._probe(c)
    assert runtime.pings == [8] and not child.reported
