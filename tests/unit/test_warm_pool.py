"""Unit tests of the training coordinator's pool of warm candidate actors
(actors.training_tasks.WarmPool), with its Ray seam replaced by a recorder, and of what
the coordinator shows in cluster status while a run goes on."""

from __future__ import annotations

import asyncio

from actors.training_tasks import WarmPool


class Recorder:
    """Stands in for actors.remote.Compute: hosting takes ``start_s``; records every call."""

    def __init__(self, start_s: float = 0.05, fail: bool = False) -> None:
        self.start_s, self.fail = start_s, fail
        self.hosted: list[str] = []
        self.adopted: list[tuple[str, str]] = []
        self.killed: list[str] = []

    async def host(self, name, factory, *args):
        self.hosted.append(name)
        await asyncio.sleep(self.start_s)
        if self.fail and name.startswith("train.warm"):
            raise OSError("no worker")
        return name

    async def call(self, handle, method, *args):
        return True

    async def adopt(self, handle, factory, *args):
        self.adopted.append((handle, factory))

    def kill(self, handle) -> None:
        self.killed.append(handle)


async def test_a_take_while_warm_actors_start_waits_for_them_instead_of_starting_more():
    compute = Recorder()
    pool = WarmPool(compute, size=2)
    pool.fill()                                          # a run begins while they are still importing
    taken = await asyncio.gather(*(pool.take("m:F", i) for i in range(3)))
    assert sorted(h.split(".")[1] for h in taken) == ["cold", "warm", "warm"]
    assert len(compute.hosted) == 3                      # two warm, one cold for the third: none twice
    assert [f for _, f in compute.adopted] == ["m:F"] * 3


async def test_ready_actors_are_handed_over_at_once_and_a_failed_start_falls_back_to_a_new_one():
    compute = Recorder()
    pool = WarmPool(compute, size=1)
    pool.fill()
    await asyncio.sleep(0.2)
    assert (await pool.take("m:F")).startswith("train.warm") and len(compute.hosted) == 1
    failing = WarmPool(Recorder(fail=True), size=1)
    failing.fill()
    assert (await failing.take("m:F")).startswith("train.cold")


async def test_a_run_with_more_candidates_than_the_pool_raises_the_pool_to_match_up_to_its_limit():
    compute = Recorder()
    pool = WarmPool(compute, size=2, limit=5)
    pool.fill()
    pool.expect(4)                                       # a four-candidate run came
    pool.fill()
    await asyncio.sleep(0.2)
    taken = await asyncio.gather(*(pool.take("m:F", i) for i in range(4)))
    assert all(h.startswith("train.warm") for h in taken)   # the next such run finds four ready
    pool.expect(12)
    pool.fill()
    await asyncio.sleep(0.2)
    assert len(compute.hosted) == 4 + 5                  # never more than the limit


async def test_an_actor_given_back_serves_the_next_candidate_without_a_new_process():
    compute = Recorder()
    pool = WarmPool(compute, size=2)
    pool.fill()
    first = await asyncio.gather(*(pool.take("m:F", i) for i in range(2)))
    for handle in first:
        await pool.give_back(handle)
    assert compute.adopted[-2:] == [(first[0], "actors.training_tasks:Warm"), (first[1], "actors.training_tasks:Warm")]
    pool.fill()                                          # between runs: nothing to start
    second = await asyncio.gather(*(pool.take("m:G", i) for i in range(2)))
    assert sorted(second) == sorted(first) and len(compute.hosted) == 2 and compute.killed == []


async def test_an_actor_is_stopped_instead_when_the_pool_is_full_or_it_served_its_share():
    compute = Recorder()
    pool = WarmPool(compute, size=1, max_uses=2)
    a, b = await asyncio.gather(pool.take("m:F", 0), pool.take("m:F", 1))
    await pool.give_back(a)
    await pool.give_back(b)                              # the pool already holds one: b is stopped
    assert compute.killed == [b]
    assert await pool.take("m:F", 2) == a                # a's second candidate ...
    await pool.give_back(a)                              # ... its last: stopped, not kept
    assert compute.killed == [b, a] and pool._ready == []


async def test_an_actor_whose_candidate_failed_is_discarded_not_reused():
    compute = Recorder()
    pool = WarmPool(compute, size=1)
    handle = await pool.take("m:F")
    pool.discard(handle)
    assert compute.killed == [handle] and pool._ready == []


def test_cluster_status_shows_how_many_candidates_of_a_run_are_fitting():
    from actors.training import TrainingCoordinator
    from storage.settings import load_settings

    coordinator = TrainingCoordinator(load_settings(config_path=None, environ={}), "root.train")
    coordinator.progress = {"run_id": "r" * 20, "model": "m", "candidates": 4, "trained": 1, "failed": 0}
    assert coordinator.heartbeat()["activity"] == "training m (run rrrrrrrrrrrr): 1/4 candidates trained"
    coordinator.progress.update(fitting=2, failed=1)
    assert coordinator.heartbeat()["activity"] == ("training m (run rrrrrrrrrrrr): 1/4 candidates trained, 1 failed,"
                                                   " 2 fitting")


async def test_the_pool_is_refilled_as_soon_as_a_run_ends_not_at_the_loops_next_step():
    from actors.training import WARM_AFTER_S, RunFailed, TrainingCoordinator
    from storage.settings import load_settings

    class Pool:
        filled = 0

        def fill(self):
            self.filled += 1

    class Models:
        async def fail_run(self, run_id, error):
            pass

    async def failing(run):
        raise RunFailed("feature_set: none")

    coordinator = TrainingCoordinator(load_settings(config_path=None, environ={}), "root.train")
    coordinator._warm, coordinator.models, coordinator._run = Pool(), Models(), failing
    coordinator.started_at_monotonic -= WARM_AFTER_S + 1

    class Run:
        run_id = "r1"

    await coordinator._execute(Run())
    assert coordinator._warm.filled == 1


async def test_scikit_learns_metrics_are_imported_once_when_the_pool_is_first_filled_not_by_the_first_run():
    import sys

    from actors.training import WARM_AFTER_S, TrainingCoordinator
    from storage.settings import load_settings

    class Pool:
        def fill(self):
            pass

    coordinator = TrainingCoordinator(load_settings(config_path=None, environ={}), "root.train")
    coordinator._warm = Pool()
    coordinator._refill_warm_pool()
    assert coordinator._metrics_imported is None          # the cluster is still starting
    coordinator.started_at_monotonic -= WARM_AFTER_S + 1
    coordinator._refill_warm_pool()
    first = coordinator._metrics_imported
    await first
    coordinator._refill_warm_pool()
    assert coordinator._metrics_imported is first and "sklearn.metrics" in sys.modules
