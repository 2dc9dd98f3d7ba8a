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
        self.slow: dict[int, float] = {}             # pid -> seconds its ping takes
        self.watching: dict[int, object] = {}        # pid -> what wakes the supervisor when it exits

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
        await asyncio.sleep(self.slow.get(handle, 0.0))
        return {"state": "running", "pid": handle, "node_id": NODE}

    def watch_exit(self, pid, node_id, on_exit):
        if node_id != NODE:
            return None
        self.watching[pid] = on_exit
        return pid

    def unwatch(self, watch) -> None:
        self.watching.pop(watch, None)


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


async def test_an_exited_process_is_acted_on_before_the_pings_of_the_round_come_back():
    busy, killed = settled(10, beat_age_s=2.5), settled(11, beat_age_s=0.1)
    sup, runtime = supervisor(busy, killed)
    runtime.slow[10] = 0.5                                # a busy child answers its ping late
    runtime.gone.add(11)
    acted: list[tuple[str, float]] = []
    began = asyncio.get_running_loop().time()

    async def act_on(failed):
        acted.extend((child.name, asyncio.get_running_loop().time() - began) for child, _, _ in failed)
        for child, _, _ in failed:
            child.restarting = True

    sup._act_on = act_on
    await sup._check_children()
    assert [name for name, _ in acted] == ["root.w11"] and acted[0][1] < 0.25
    assert runtime.pings == [10]                          # the gone one was not asked


async def test_a_running_childs_process_is_watched_so_its_exit_wakes_the_checks_at_once():
    child = settled(12, beat_age_s=2.5)
    sup, runtime = supervisor(child)
    await sup._probe(child)
    assert set(runtime.watching) == {12}
    runtime.watching[12]()                                # the process exited
    assert sup._wake.is_set()
    sup._kill = Supervisor._kill.__get__(sup)
    runtime.kill = lambda *args: None
    sup._kill(child)                                      # killed by its supervisor: not watched any more
    assert runtime.watching == {} and child.watched_pid is None


async def test_a_processes_exit_makes_its_watch_readable():
    import os
    import subprocess

    from storage.processes import exit_watch

    process = subprocess.Popen(["sleep", "30"])
    fd = exit_watch(process.pid)
    assert fd is not None
    exited = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, exited.set)
    try:
        await asyncio.sleep(0.05)
        assert not exited.is_set()
        process.kill()
        await asyncio.wait_for(exited.wait(), 5)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
        process.wait()
    assert exit_watch(process.pid) is None                # gone: nothing to watch


async def test_an_exit_seen_during_a_round_of_pings_is_acted_on_at_once_and_only_once():
    busy, other = settled(13, beat_age_s=2.5), settled(14, beat_age_s=2.5)
    sup, runtime = supervisor(busy, other)
    runtime.slow[13] = runtime.slow[14] = 0.5
    await asyncio.gather(sup._probe(busy), sup._probe(other))        # both answered once: watched
    acted: list[tuple[str, float]] = []

    async def act_on(failed):
        for child, _, _ in failed:
            acted.append((child.name, loop.time() - began))
            child.handle, child.last_beat = 99, {"pid": 99, "node_id": NODE}    # restarted

    loop = asyncio.get_running_loop()
    sup._act_on = act_on
    began = loop.time()
    checking = asyncio.ensure_future(sup._check_children())             # waits for two slow pings
    await asyncio.sleep(0.05)
    runtime.gone.add(14)
    runtime.watching[14]()                                               # its process exited
    await asyncio.sleep(0.1)
    assert [name for name, _ in acted] == ["root.w14"] and acted[0][1] < 0.3
    await checking
    assert [name for name, _ in acted] == ["root.w14"]                   # the round does not fail it again


async def test_only_the_root_starts_spares_at_once_when_told_one_was_taken_and_every_while_otherwise():
    sup, _ = supervisor()
    refills = []
    sup.spares = type("Spares", (), {"refill": lambda self: refills.append(1)})()
    sup._keep_spares()
    assert refills == []                                  # not a root that finished its start: never
    sup._spares_from = __import__("time").monotonic() - 1
    sup._keep_spares()
    sup._keep_spares()                                    # looked moments ago
    assert refills == [1]
    await sup.spare_taken()                               # a supervisor below took one: at once
    assert refills == [1, 1]
