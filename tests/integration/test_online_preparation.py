"""Online preparation: per-entity running aggregates and per-event feature vectors from
the stream, with the feature set fitted offline (the same transform code)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from messages.stream import StreamEvent
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_running_aggregates_per_entity_in_redis_and_postgres(conveyor, db):
    stream = f"agg-{uuid.uuid4().hex[:6]}"
    for x in (4, 1, 7, 2.5):
        await conveyor.submit(StreamEvent(stream=stream, entity_key="user-1", values={"x": x, "tag": "a"}))
    await conveyor.submit(StreamEvent(stream=stream, entity_key="user-2", values={"x": 10}))

    async def aggregated():
        found = await conveyor.online_aggregates(stream, "user-1")
        return found if found.get("x") and found["x"].n == 4 else None

    view = (await eventually(aggregated, what="aggregates in Redis"))["x"]
    assert (view.n, view.total, view.min, view.max, view.mean) == (4, 14.5, 1.0, 7.0, 14.5 / 4)
    # Redis is written before the transaction that stores the same numbers commits
    row = await eventually(lambda: db.fetchrow("SELECT n, total, min, max FROM online_aggregates WHERE stream = $1"
                                               " AND entity_key = 'user-1' AND field = 'x' AND n = 4", stream),
                           what="the aggregates in PostgreSQL")
    assert tuple(row) == (4, 14.5, 1.0, 7.0)
    # user-2 may hash to the other partition of `events`, read by another worker: in its own time
    other = await eventually(lambda: conveyor.online_aggregates(stream, "user-2"), what="user-2's aggregates")
    assert other["x"].n == 1
    assert await conveyor.online_aggregates(stream, "nobody") == {}


async def test_stream_events_get_the_vectors_of_the_offline_feature_set(conveyor, db, tmp_path):
    from ml.features import FittedFeatureSet

    dataset = f"live-{uuid.uuid4().hex[:6]}"
    await conveyor.set_feature_spec(dataset, """
key = "id"
[[steps]]
name = "x"
transform = "numeric"
columns = ["x"]
[[steps]]
name = "x_scaled"
transform = "scale"
columns = ["x"]
""")
    (tmp_path / "train.csv").write_text("id,x\n" + "\n".join(f"t{i},{i}" for i in range(20)) + "\n")
    request = await conveyor.ingest(dataset, tmp_path / "train.csv", key="id")
    await conveyor.wait_ingested(request, dataset, timeout_s=60)
    fitted_bytes = await eventually(lambda: db.fetchval("SELECT fitted FROM feature_sets WHERE dataset = $1",
                                                        dataset), timeout_s=60, what="feature set fitted")
    fitted = FittedFeatureSet.from_bytes(bytes(fitted_bytes))

    msg_id = await conveyor.submit(StreamEvent(stream=dataset, entity_key="live-7", values={"x": 7.5}))
    stored = await eventually(lambda: db.fetchval("SELECT vector FROM stream_features WHERE msg_id = $1", msg_id),
                              timeout_s=30, what="event's vector stored")
    expected = fitted.transform_one({"id": "live-7", "x": 7.5})
    assert np.array_equal(np.array(stored), expected)
    online = await eventually(lambda: conveyor.online_features(dataset, "live-7"), what="online vector")
    assert np.array_equal(np.array(online.vector), expected)

    bad = await conveyor.submit(StreamEvent(stream=dataset, entity_key="live-8", values={"x": "oops"}))
    await eventually(lambda: db.fetchval("SELECT 1 FROM raw_events WHERE msg_id = $1", bad), what="raw stored")
    assert await db.fetchval("SELECT 1 FROM stream_features WHERE msg_id = $1", bad) is None


async def test_an_event_sent_twice_by_its_producer_is_stored_and_aggregated_once(conveyor, db):
    import asyncio

    stream = f"dup-{uuid.uuid4().hex[:6]}"
    event = StreamEvent(stream=stream, entity_key="user-1", values={"x": 5.0})
    await conveyor.submit(event)
    await eventually(lambda: db.fetchval("SELECT 1 FROM raw_events WHERE msg_id = $1", event.msg_id),
                     what="the event stored")
    await conveyor.submit(event)                                   # the producer retries: same msg_id
    follow = StreamEvent(stream=stream, entity_key="user-1", values={"x": 1.0})
    await conveyor.submit(follow)

    async def both_seen():
        found = await conveyor.online_aggregates(stream, "user-1")
        return found if found.get("x") and found["x"].total in (6.0, 11.0) else None

    view = (await eventually(both_seen, what="the follow-up aggregated"))["x"]
    await asyncio.sleep(0.5)
    assert (view.n, view.total) == (2, 6.0)
    assert await db.fetchval("SELECT count(*) FROM raw_events WHERE stream = $1", stream) == 2
