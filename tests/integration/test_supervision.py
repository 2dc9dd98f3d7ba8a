"""Supervision against a real cluster: crashes, hangs, escalation, supervisor restarts."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from messages.stream import StreamEvent
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def worker(conveyor, actor_id: str):
    return (await conveyor.status()).actor(actor_id)


async def count_raw(db, stream: str) -> int:
    return await db.fetchval("SELECT count(*) FROM raw_events WHERE stream = $1", stream)


async def test_killed_worker_restarts_from_checkpoint_without_loss_or_duplicates(conveyor, db):
    stream, n_events = "kill9", 3000
    before = await worker(conveyor, "root.ingest.events-0")

    async def produce():
        for i in range(n_events):
            await conveyor.submit(StreamEvent(stream=stream, entity_key=f"e{i % 50}", values={"i": i}))

    producing = asyncio.create_task(produce())
    await eventually(lambda: count_raw(db, stream), what="first events stored")
    os.kill(before.pid, signal.SIGKILL)
    await producing
    restarted = await eventually(
        lambda: _restarted(conveyor, "root.ingest.events-0", before), what="worker restarted")
    assert restarted.pid != before.pid
    stored = await eventually(lambda: _all_stored(db, stream, n_events), timeout_s=60, what="all events stored")
    assert stored == n_events
    distinct = await db.fetchval("SELECT count(DISTINCT payload->>'i') FROM raw_events WHERE stream = $1", stream)
    assert distinct == n_events
    # Running aggregates are checkpointed state: restored and replayed, they count every event once.
    await eventually(lambda: db.fetchval("SELECT sum(n) FROM online_aggregates WHERE stream = $1 AND field = 'i'",
                                         stream), until=lambda counted: counted == n_events, what="aggregates")


async def _restarted(conveyor, actor_id, before):
    now = await worker(conveyor, actor_id)
    return now if now.n_restarts > before.n_restarts and now.state == "running" else None


async def _all_stored(db, stream, n):
    got = await count_raw(db, stream)
    return got if got >= n else None


async def test_hung_worker_is_detected_killed_and_restarted(conveyor):
    before = await worker(conveyor, "root.ingest.events-1")
    os.kill(before.pid, signal.SIGSTOP)
    try:
        after = await eventually(lambda: _restarted(conveyor, "root.ingest.events-1", before),
                                 what="hung worker restarted")
    finally:
        try:
            os.kill(before.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert after.pid != before.pid
    await eventually(lambda: not os.path.exists(f"/proc/{before.pid}"), timeout_s=10, what="frozen process gone")


async def test_the_light_workers_share_a_process_and_come_back_together_when_it_is_killed(conveyor, db):
    status = await conveyor.status()
    host = status.actor("root.light")
    light = ["root.join", "root.scheduler", "root.train", "root.train-trigger", "root.scores"]
    assert [c.id for c in host.children] == light
    assert {status.actor(w).pid for w in light} == {host.pid}
    last_row = await db.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
    os.kill(status.actor("root.scores").pid, signal.SIGKILL)

    async def all_back():
        now = await conveyor.status()
        workers = [now.actor(w) for w in light]
        back = all(w.state == "running" and w.n_restarts == host.n_restarts + 1 for w in workers)
        return now if back and now.actor("root.light").state == "running" else None

    after = await eventually(all_back, timeout_s=60, what="every light worker restarted with its host")
    assert {after.actor(w).pid for w in light} == {after.actor("root.light").pid} != {host.pid}
    assert after.actor("root.outbox").pid == status.actor("root.outbox").pid    # the relay runs on its own
    # and publishes the crash signal the supervisor recorded
    crash = await eventually(lambda: db.fetchval(
        "SELECT id FROM outbox WHERE id > $1 AND topic = 'lifecycle' AND published_at IS NOT NULL"
        " AND convert_from(payload, 'UTF8') LIKE '%\"actor.crashed\"%root.light%'", last_row),
        timeout_s=30, what="the host's crash signal published by the relay")
    assert crash > last_row


async def test_killed_supervisor_is_restarted_by_ray_and_readopts_children(conveyor):
    status = await conveyor.status()
    ingest = status.actor("root.ingest")
    children_before = {c.id: c.pid for c in ingest.children}
    os.kill(ingest.pid, signal.SIGKILL)

    async def back():
        try:
            now = (await conveyor.status()).actor("root.ingest")
        except Exception:
            return None
        return now if now.pid != ingest.pid and now.state == "running" else None

    after = await eventually(back, timeout_s=30, what="supervisor back")
    assert {c.id: c.pid for c in after.children} == children_before   # re-adopted, not restarted
    from actors.remote import RayRuntime, ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == conveyor.settings.cluster_name]
    assert len(names) == len(set(names))
    # a child restarted earlier may run in a spare process, its name pointing at the spare's
    hosted = {n for n in names if n.startswith("root.ingest.")} | set(
        RayRuntime(conveyor.settings.cluster_name).aliases("root.ingest."))
    assert sorted(hosted) == sorted(children_before)


async def test_malformed_and_unknown_messages_are_dead_lettered_and_consumption_goes_on(conveyor, db):
    await conveyor.submit_raw("events", b"{not json", b"k")
    await conveyor.submit_raw("events", b'{"type": "no.such.message"}', b"k")
    await conveyor.submit_raw("events", b'{"type": "stream.event", "stream": "x\'; DROP TABLE raw_events;--",'
                                        b' "entity_key": "k"}', b"k")
    await conveyor.submit_raw("events", b'{"type": "actor.crashed", "supervisor": "s", "child_id": "c"}', b"k")
    good = await conveyor.submit(StreamEvent(stream="after-bad", entity_key="k", values={"ok": True}))

    await eventually(lambda: db.fetchval("SELECT 1 FROM raw_events WHERE msg_id = $1", good),
                     what="good event after bad ones stored")
    errors = [r["error"] for r in await db.fetch("SELECT error FROM dead_letters ORDER BY id")]
    assert any("malformed" in e for e in errors)
    assert any("no.such.message" in e for e in errors)
    assert any("$.stream" in e for e in errors)
    assert any("does not belong on topic" in e for e in errors)
    assert await db.fetchval("SELECT count(*) FROM raw_events") > 0   # the table is still there
    published = await eventually(lambda: _read_topic(conveyor.settings, "dead_letters", 4),
                                 what="dead letters published on their topic")
    assert any("no.such.message" in note["error"] for note in published)


async def _read_topic(settings, topic: str, at_least: int) -> list[dict] | None:
    import json

    from storage.kafka import PartitionReader

    reader = PartitionReader(settings.kafka_bootstrap, topic, 0, settings.kafka_fetch_max_wait_ms)
    await reader.start(0)
    try:
        notes = [json.loads(r.value) for r in await reader.read(timeout_ms=500, max_records=10_000)]
    finally:
        await reader.stop()
    return notes if len(notes) >= at_least else None
