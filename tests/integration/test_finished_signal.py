"""A waiting client is woken when a training run or batch job ends, by PostgreSQL (schema
0026), on a scratch database of the session cluster's PostgreSQL: only the awaited row's
end (done or failed, committed) wakes it, not another row's, not a row still running, and
`watch` returns the row's final progress or None at its timeout."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from client.finished import finish_signal, watch

pytestmark = pytest.mark.integration


@pytest.fixture
async def scratch_pool(scratch):
    settings, conn = scratch
    # one connection: a watch that took it to listen would leave its own reads none
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=1)
    try:
        yield settings.postgres_dsn, pool, conn
    finally:
        await pool.close()


async def test_only_the_awaited_rows_committed_end_wakes_the_signal(scratch_pool):
    dsn, _, conn = scratch_pool
    for job in ("j1", "j2"):
        await conn.execute("INSERT INTO score_jobs (job_id, model) VALUES ($1, 'm')", job)
    await conn.execute("INSERT INTO training_runs (run_id, model, config_toml) VALUES ('j1', 'm', '')")
    async with finish_signal(dsn, "score_jobs", "j1") as signal:
        await conn.execute("UPDATE score_jobs SET state = 'done' WHERE job_id = 'j2'")          # another job
        await conn.execute("UPDATE training_runs SET state = 'done' WHERE run_id = 'j1'")      # another table
        await conn.execute("UPDATE score_jobs SET n_rows = 5 WHERE job_id = 'j1'")             # still scoring
        assert not await signal.wait(0.5)
        async with conn.transaction():
            await conn.execute("UPDATE score_jobs SET state = 'failed' WHERE job_id = 'j1'")
            assert not await signal.wait(0.3)                                                  # not before commit
        assert await signal.wait(5)


async def test_watch_returns_the_final_progress_when_the_row_ends_and_none_at_its_timeout(scratch_pool):
    dsn, pool, conn = scratch_pool
    await conn.execute("INSERT INTO training_runs (run_id, model, config_toml, state) VALUES ('r1', 'm', '', 'running')")

    async def read():
        return dict(await pool.fetchrow("SELECT state, n_candidates FROM training_runs WHERE run_id = 'r1'"))

    seen = []
    # looking on its own only every 60 s: the end is seen that soon only if the notification wakes it
    watching = asyncio.ensure_future(watch(dsn, "training_runs", "r1", read, lambda p: p["state"], 120,
                                           on_progress=seen.append, first_s=60))
    await asyncio.sleep(0.5)
    await conn.execute("UPDATE training_runs SET state = 'done', n_candidates = 3 WHERE run_id = 'r1'")
    assert await asyncio.wait_for(watching, 20) == {"state": "done", "n_candidates": 3}
    assert [p["state"] for p in seen] == ["running", "done"]
    assert await watch(dsn, "training_runs", "r-none", lambda: asyncio.sleep(0, None), lambda p: p["state"],
                       0.3) is None
