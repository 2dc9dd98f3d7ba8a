"""Unit tests of a supervisor's use of spare processes (supervisors.spares), against a
stand-in runtime that keeps spares and aliases in dicts."""

from __future__ import annotations

import asyncio
import doctest

import structlog

import supervisors.spares
from supervisors.spares import Spares


class Runtime:
    """Spares by name (each a dict saying what it hosts), aliases, and the calls made."""

    def __init__(self, *free: str) -> None:
        self.spares: dict[str, dict] = {name: {} for name in free}
        self.alias: dict[str, str] = {}
        self.spawned: list[tuple] = []
        self.refuse: set[str] = set()      # spares another supervisor takes first
        self.gone: set[str] = set()        # spares whose process died
        self.starting: dict[str, str] = {}  # spares still importing: name -> "starting"

    def aliases(self, prefix: str = "") -> dict[str, str]:
        return {k: v for k, v in self.alias.items() if k.startswith(prefix)}

    def spare_names(self) -> list[str]:
        return list(self.spares)

    def free_spares(self) -> list[tuple[str, str]]:
        taken = set(self.aliases().values())
        return [(name, name) for name in self.spare_names() if name not in taken]

    def set_alias(self, name: str, actor_name: str) -> None:
        self.alias[name] = actor_name

    async def call(self, handle, method: str, timeout_s: float, *args):
        if handle in self.gone:
            raise RuntimeError("actor died")
        if method == "adopt":
            if handle in self.refuse or self.spares[handle]:
                return False
            factory, _settings, name, args = args
            self.spares[handle] = {"factory": factory, "name": name, "args": args}
            return True
        if method == "ready":
            return True
        if method == "ping":
            return {"state": self.starting.get(handle, "ready")}
        raise AssertionError(method)

    async def spawn_spare(self, settings, modules):
        name = f"spare.new{len(self.spawned)}"
        self.spawned.append((name, modules))
        self.spares[name] = {}
        return name, name


def spares(runtime: Runtime, size: int = 1) -> Spares:
    pool = Spares(runtime, settings=None, size=size, log=structlog.get_logger())
    pool._modules = lambda: ("actors.learner",)
    return pool


async def test_a_restarted_worker_takes_a_free_spare_its_name_points_at_it_and_a_refill_replaces_it():
    runtime = Runtime("spare.a")
    pool = spares(runtime)
    handle = await pool.take("root.ingest.events-0", "actors.stream_ingest:StreamIngestWorker", {"partition": 0})
    assert handle == "spare.a"
    assert runtime.spares["spare.a"] == {"factory": "actors.stream_ingest:StreamIngestWorker",
                                         "name": "root.ingest.events-0", "args": {"partition": 0}}
    assert runtime.alias == {"root.ingest.events-0": "spare.a"}
    assert pool._filling is None                          # the root refills, once told
    pool.refill()
    await pool._filling
    assert runtime.spawned == [("spare.new0", ("actors.learner",))]


async def test_a_taken_spare_a_refusing_one_and_a_dead_one_are_passed_over():
    runtime = Runtime("spare.taken", "spare.refuses", "spare.dead", "spare.free")
    runtime.alias["root.outbox"] = "spare.taken"
    runtime.refuse.add("spare.refuses")
    runtime.gone.add("spare.dead")
    pool = spares(runtime)
    assert await pool.take("root.monitor", "actors.monitoring:Monitor", {}) == "spare.free"
    assert runtime.alias == {"root.outbox": "spare.taken", "root.monitor": "spare.free"}
    assert runtime.spares["spare.taken"] == {}            # never asked: its name is taken


async def test_without_a_free_spare_the_worker_gets_a_new_process_and_nothing_is_spawned_twice():
    runtime = Runtime()
    pool = spares(runtime)
    assert await pool.take("root.monitor", "actors.monitoring:Monitor", {}) is None
    assert runtime.spawned == [] and runtime.alias == {}
    pool.refill()
    pool.refill()                                        # one fill at a time
    await pool._filling
    assert [name for name, _ in runtime.spawned] == ["spare.new0"]
    pool.refill()                                        # one is free already
    await pool._filling
    assert len(runtime.spawned) == 1


async def test_no_spares_configured_means_no_runtime_calls():
    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"runtime.{name} used")

    pool = Spares(Untouchable(), settings=None, size=0, log=structlog.get_logger())
    assert await pool.take("root.monitor", "actors.monitoring:Monitor", {}) is None
    pool.refill()
    assert pool._filling is None


async def test_a_runtime_failure_only_means_a_new_process():
    class Broken(Runtime):
        def aliases(self, prefix: str = ""):
            raise ConnectionError("GCS not answering")

    pool = spares(Broken("spare.a"))
    assert await pool.take("root.monitor", "actors.monitoring:Monitor", {}) is None
    pool.refill()
    await asyncio.wait_for(pool._filling, 5)             # logged, not raised


def test_doctests_pass():
    results = doctest.testmod(supervisors.spares)
    assert results.attempted >= 1 and results.failed == 0


async def test_a_spare_done_with_its_imports_is_taken_before_one_still_importing():
    runtime = Runtime("spare.importing", "spare.ready")
    runtime.starting["spare.importing"] = "starting"
    pool = spares(runtime)
    assert await pool.take("root.learn.learner-0", "actors.learner:LearnerPartition", {}) == "spare.ready"
    assert await pool.take("root.monitor", "actors.monitoring:Monitor", {}) == "spare.importing"   # better than none
