"""Restart intensity exceeded: the supervisor gives up and escalates to its parent."""

from __future__ import annotations

import pytest

from messages.codec import decode
from messages.lifecycle import RestartIntensityExceeded
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_intensity_exceeded_escalates_to_parent(settings, db):
    from actors.remote import RayRuntime
    from supervisors.spec import ChildSpec, SupervisorFlags, SupervisorSpec
    from supervisors.tree import stop_tree
    from supervisors.supervisor import Supervisor

    fast = dict(heartbeat_interval_s=0.1, backoff_base_s=0.01, backoff_max_s=0.05)
    crashy = SupervisorSpec(id="crashy", flags=SupervisorFlags(intensity=2, period_s=60, **fast), children=(
        ChildSpec(id="w", factory="tests.support.workers:CrashingWorker", args={"crash_after_s": 0.5}),))
    parent = SupervisorSpec(id="esc-parent", flags=SupervisorFlags(intensity=1, period_s=60, **fast),
                            children=(crashy,))
    runtime = RayRuntime(settings.cluster_name)
    handle = await runtime.spawn_supervisor(runtime.actor_class(Supervisor), parent.id, parent, settings, parent.id)
    try:
        async def escalations():
            rows = await db.fetch("SELECT payload FROM outbox WHERE topic = 'lifecycle'")
            signals = [decode(bytes(r["payload"])) for r in rows]
            return [s for s in signals if isinstance(s, RestartIntensityExceeded)]

        # crashy exceeds 2 restarts -> escalates; the parent restarts it once, then it
        # exceeds again and the parent's own window (1) overflows: the parent escalates too.
        found = await eventually(lambda: _both(escalations), timeout_s=60, what="escalation chain")
        assert {s.supervisor for s in found} >= {"esc-parent.crashy", "esc-parent"}
        status = await runtime.call(handle, "status", 5.0)
        assert status["state"] == "escalated"
        assert status["children"][0]["n_restarts"] >= 1
    finally:
        await stop_tree(parent.id, settings)


async def _both(escalations):
    found = await escalations()
    supervisors = {s.supervisor for s in found}
    return found if {"esc-parent.crashy", "esc-parent"} <= supervisors else None


async def test_a_worker_whose_loop_fails_is_restarted_on_its_own_report_not_on_a_ping(settings):
    """With pings of a settled worker (practically) never due, only the report its host
    sends when the worker's loop fails can bring the restart; the process stays up."""
    from actors.remote import RayRuntime
    from supervisors.spec import ChildSpec, SupervisorFlags, SupervisorSpec
    from supervisors.supervisor import Supervisor
    from supervisors.tree import stop_tree

    flags = SupervisorFlags(intensity=100, period_s=60, heartbeat_interval_s=0.1, n_checks_per_ping=10_000,
                            backoff_base_s=0.01, backoff_max_s=0.05)
    spec = SupervisorSpec(id="reported", flags=flags, children=(
        ChildSpec(id="w", factory="tests.support.workers:CrashingWorker", args={"crash_after_s": 1.0}),))
    runtime = RayRuntime(settings.cluster_name)
    handle = await runtime.spawn_supervisor(runtime.actor_class(Supervisor), spec.id, spec, settings, spec.id)
    try:
        async def restarted_twice():
            child = (await runtime.call(handle, "status", 5.0))["children"][0]
            return child if child["n_restarts"] >= 2 else None

        child = await eventually(restarted_twice, timeout_s=60, what="the failing worker restarted twice")
        assert child["id"] == "reported.w"
    finally:
        await stop_tree(spec.id, settings)
