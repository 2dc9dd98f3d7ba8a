"""A learner partition that starts on a new generation of the broker's log (an embedded broker
started again) drops the steps it journalled on the older one instead of replaying them: their
offsets are gone, and before its first checkpoint nothing else tells it so. It ran on a scratch
database of the session cluster's PostgreSQL, so the cluster's own learners are not fenced."""

from __future__ import annotations

import asyncio

import pytest

from actors.learner import LearnerWorker

pytestmark = pytest.mark.integration

OWNER = "learner/events/0"


async def _journal(conn, step: int, generation: int, events_end: int) -> None:
    await conn.execute("INSERT INTO learner_steps (owner, step, events_end, observations_end, learners, generation)"
                       " VALUES ($1, $2, $3, 0, '{}'::jsonb, $4)", OWNER, step, events_end, generation)


async def test_steps_of_an_older_broker_generation_are_dropped_not_replayed(scratch):
    settings, conn = scratch
    for _ in range(2):                                   # the broker started twice: generation 2 is current
        await conn.execute("INSERT INTO broker_generations (bootstrap) VALUES ($1)", settings.kafka_bootstrap)
    # Steps of generation 1 whose offsets the current log never held, and no checkpoint yet.
    await _journal(conn, 1, 1, 10**9)
    await _journal(conn, 2, 1, 10**9 + 5)
    learner = LearnerWorker(settings, "test.learner-0", partition=0)
    try:
        await asyncio.wait_for(learner.setup(), timeout=40)   # a replay would wait 60 s for those offsets
        assert learner.claim.generation == 2
        assert learner.learning.step == 0 and learner.learning.events_offset == 0
        assert await conn.fetchval("SELECT count(*) FROM learner_steps WHERE owner = $1", OWNER) == 0
    finally:
        await learner.teardown()


async def test_steps_of_the_current_generation_are_kept_for_the_replay(scratch):
    settings, conn = scratch
    await conn.execute("INSERT INTO broker_generations (bootstrap) VALUES ($1)", settings.kafka_bootstrap)
    await _journal(conn, 1, 0, 10**9)                    # older: dropped
    await _journal(conn, 1_000, 1, 0)                    # current, empty step: replayed in place
    learner = LearnerWorker(settings, "test.learner-0", partition=0)
    try:
        await asyncio.wait_for(learner.setup(), timeout=40)
        assert learner.learning.step == 1_000
        steps = await conn.fetch("SELECT step, generation FROM learner_steps WHERE owner = $1", OWNER)
        assert [(r["step"], r["generation"]) for r in steps] == [(1_000, 1)]
    finally:
        await learner.teardown()
