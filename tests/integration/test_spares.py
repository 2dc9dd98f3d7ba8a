"""Spare worker processes against a real cluster: a killed worker comes back in a process
started before the kill, is found by its own name, and survives its supervisor's restart."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def _ready_spares(runtime) -> dict[int, str]:
    """pid -> name of the spares no child took, once every one of them is ready (empty before)."""
    import ray

    ready = {}
    for name, handle in runtime.free_spares():
        beat = ray.get(handle.ping.remote(), timeout=10)
        if beat["state"] != "ready":
            return {}
        ready[beat["pid"]] = name
    return ready


async def _running_again(conveyor, actor_id: str, before):
    now = (await conveyor.status()).actor(actor_id)
    return now if now.n_restarts > before.n_restarts and now.state == "running" else None


async def test_a_killed_worker_comes_back_in_a_spare_process_found_by_its_own_name(conveyor):
    from actors.remote import RayRuntime

    runtime = RayRuntime(conveyor.settings.cluster_name)
    spares = await eventually(lambda: asyncio.to_thread(_ready_spares, runtime), timeout_s=120,
                              what="a ready spare (started after the tree)")
    name = "root.learn.learner-1"
    before = (await conveyor.status()).actor(name)
    os.kill(before.pid, signal.SIGKILL)
    after = await eventually(lambda: _running_again(conveyor, name, before), what="the learner partition back")
    assert after.pid in spares and after.pid != before.pid      # a process started ahead of the kill
    spare_pid = after.pid
    assert runtime.aliases()[name] == spares[spare_pid]
    handle = await asyncio.to_thread(runtime.lookup, name)
    report = await asyncio.wait_for(handle.request.remote("report"), 10)
    assert report["partition"] == 1                     # callers reach it by the child's name
    await eventually(lambda: asyncio.to_thread(lambda: set(_ready_spares(runtime)) - set(spares)), timeout_s=120,
                     what="a new spare in place of the one taken")

    supervisor = (await conveyor.status()).actor("root.learn")
    os.kill(supervisor.pid, signal.SIGKILL)

    async def supervisor_back():
        try:
            status = await conveyor.status()
        except Exception:
            return None
        now = status.actor("root.learn")
        return status if now.pid != supervisor.pid and now.state == "running" else None

    status = await eventually(supervisor_back, timeout_s=30, what="the supervisor back")
    assert status.actor(name).pid == spare_pid           # re-adopted in its spare, not restarted
    assert status.actor(name).n_restarts == after.n_restarts
