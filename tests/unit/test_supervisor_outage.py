"""A supervisor facing a shared-service outage (PostgreSQL or Redis down): it restarts no
child into the outage, and the restarts right after it do not count against its restart
intensity. Ray-free: the supervisor's Ray, PostgreSQL and Redis calls are replaced."""

from __future__ import annotations

import time

import structlog

from supervisors.children import ChildRecord
from supervisors.spec import ChildSpec, SupervisorFlags
from supervisors.supervisor import ESCALATED, OUTAGE_GRACE_S, Supervisor


class Memory:
    async def save(self, *args) -> None:
        pass


def supervisor(n_children: int, down: list[list[str]], intensity: int = 1) -> Supervisor:
    """A supervisor of ``n_children`` crashed children; each services check answers the next
    entry of ``down``."""
    sup = Supervisor.__new__(Supervisor)
    sup.name, sup.state, sup.log = "root", "running", structlog.get_logger()
    sup.flags = SupervisorFlags(intensity=intensity, backoff_base_s=0.0, backoff_max_s=0.0)
    specs = [ChildSpec(id=f"c{i}", factory="x:Y") for i in range(n_children)]
    sup.children = {s.id: ChildRecord(s, f"root.{s.id}") for s in specs}
    sup.order = [s.id for s in specs]
    sup.restart_times, sup._outage_seen, sup._waiting_for = [], -OUTAGE_GRACE_S - 1.0, []
    sup._memory, sup.started = Memory(), []
    answers = iter(down)

    async def services_down():
        return next(answers)

    async def probe(child):
        return ("crashed", "connection refused") if child.handle is None else (None, "")

    async def start(child, fresh_supervisor=False, spare=False):
        child.handle = object()
        sup.started.append(child.name)
        return True

    async def nothing(*args, **kwargs):
        return None

    sup._services_down, sup._probe, sup._start, sup._signal = services_down, probe, start, nothing
    sup._kill = lambda child: setattr(child, "handle", None)
    return sup


async def test_children_that_failed_while_postgres_is_down_are_left_until_it_is_back():
    sup = supervisor(3, down=[["postgres"], ["postgres", "redis"]])
    await sup._check_children()
    await sup._check_children()
    assert sup.started == [] and sup._waiting_for == ["postgres", "redis"]
    assert time.monotonic() - sup._outage_seen < 1.0


async def test_restarts_right_after_an_outage_do_not_escalate_however_many():
    sup = supervisor(10, down=[["redis"], []], intensity=1)
    await sup._check_children()                    # the outage: nothing restarted
    await sup._check_children()                    # back: all ten restarted, none counted
    assert sorted(sup.started) == sorted(f"root.c{i}" for i in range(10))
    assert sup.state != ESCALATED and sup.restart_times == [] and sup._waiting_for == []


async def test_without_an_outage_failures_count_and_the_intensity_escalates():
    sup = supervisor(3, down=[[]], intensity=1)
    await sup._check_children()
    assert sup.state == ESCALATED                   # two restarts in the window exceed an intensity of 1
