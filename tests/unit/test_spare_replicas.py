"""Unit tests of the deployment manager's spare replica processes (actors.spare_replicas),
with stand-ins for the manager, its Ray calls and the replica processes."""

from __future__ import annotations

import asyncio
import math

import structlog

from actors.spare_replicas import SpareReplicas
from storage.settings import Settings


class Call:
    """Stands in for ``handle.method``: ``.remote(*args)`` gives an awaitable of the answer."""

    def __init__(self, answer) -> None:
        self.answer = answer

    def remote(self, *args):
        async def answered():
            return self.answer(*args)
        return answered()


class Replica:
    """A spare replica process: ``state`` starting|ready, or hosting a version once adopted."""

    def __init__(self, state: str = "ready") -> None:
        self.state, self.hosts = state, None
        self.stats = Call(lambda: {"loaded": False, "spare": self.state} if self.hosts is None else {"loaded": False})
        self.adopt = Call(self._adopt)

    def _adopt(self, factory, settings, model, version) -> bool:
        if self.hosts is not None:
            return False
        self.hosts = (factory, model, version)
        return True


class Runtime:
    def __init__(self, spares: dict[str, Replica]) -> None:
        self.spares = spares

    def free_spares(self, prefix):
        return list(self.spares.items())


class Compute:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime, self.started = runtime, []

    async def start(self, name, actor_class, factory, *args, detached=False):
        assert actor_class == "actors.remote:ReplicaHost" and factory is None and detached
        self.started.append((name, args))
        self.runtime.spares[name] = Replica()
        return self.runtime.spares[name]


class Manager:
    def __init__(self, runtime: Runtime, **settings) -> None:
        self.settings = Settings(spare_workers_after_s=0.0, **settings)
        self.compute, self.log = Compute(runtime), structlog.get_logger()


def spares_of(runtime: Runtime, **settings) -> tuple[SpareReplicas, Manager]:
    manager = Manager(runtime, **settings)
    pool = SpareReplicas(manager)
    pool._runtime = lambda: runtime
    return pool, manager


async def test_a_ready_spare_hosts_the_dead_replicas_version_before_one_still_importing():
    runtime = Runtime({"spare-replica.a": Replica("starting"), "spare-replica.b": Replica("ready")})
    pool, _ = spares_of(runtime)
    name, handle = await pool.take("m", 3)
    assert name == "spare-replica.b" and handle.hosts == ("actors.serving:ModelReplica", "m", 3)
    assert (await pool.take("m", 3))[0] == "spare-replica.a"        # still better than a new process
    assert await pool.take("m", 3) is None                           # none left: a new process
    assert pool._checked_at == -math.inf                             # replacements at the next reconcile


async def test_spares_are_kept_only_while_a_version_is_live_and_up_to_the_setting():
    runtime = Runtime({})
    pool, manager = spares_of(runtime, spare_replicas=2)
    pool.keep(0)                                                     # nothing live: nothing to protect
    assert pool._filling is None
    pool.keep(2)
    await pool._filling
    assert [args for _, args in manager.compute.started] == [("actors.serving",)] * 2
    pool.keep(2)                                                     # looked at moments ago
    assert len(manager.compute.started) == 2


async def test_no_spares_before_the_delay_or_when_switched_off():
    runtime = Runtime({"spare-replica.a": Replica()})
    pool, _ = spares_of(runtime, spare_replicas=0)
    pool.keep(2)
    assert pool._filling is None and await pool.take("m", 1) is None
    waiting, _ = spares_of(runtime)
    waiting.manager.settings = Settings(spare_workers_after_s=3600.0)
    waiting.keep(2)
    assert waiting._filling is None


async def test_a_spare_that_never_gets_ready_is_reported_not_raised():
    runtime = Runtime({})
    pool, manager = spares_of(runtime)

    async def start_broken(name, actor_class, factory, *args, detached=False):
        raise RuntimeError("no resources")

    manager.compute.start = start_broken
    pool.keep(1)
    await asyncio.wait_for(pool._filling, 5)                         # logged; the manager goes on


def test_doctests_pass():
    import doctest

    import actors.spare_replicas

    results = doctest.testmod(actors.spare_replicas)
    assert results.attempted >= 1 and results.failed == 0
