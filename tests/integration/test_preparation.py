"""Preparation through the running pipeline: ingest -> raw.ingested -> features, offline
and online, with quarantined rows, parity between the two stores, and a warm restart."""

from __future__ import annotations

import os
import signal
import uuid

import msgspec
import numpy as np
import pytest

from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SPEC = """
label = "label"
key = "id"
[[steps]]
name = "x"
transform = "numeric"
columns = ["x"]
[[steps]]
name = "color"
transform = "onehot"
columns = ["color"]
[[steps]]
name = "x_scaled"
transform = "scale"
columns = ["x"]
"""


def write_rows(path, rows: list[str]) -> str:
    path.write_text("id,x,color,label\n" + "\n".join(rows) + "\n")
    return str(path)


async def prepared(db, dataset: str):
    return await db.fetchrow("SELECT q.feature_set_id, q.batch_id, q.report FROM feature_quality q"
                             " JOIN feature_sets s USING (feature_set_id) WHERE s.dataset = $1", dataset)


async def test_ingested_batch_is_prepared_offline_and_online_with_parity_and_quarantine(conveyor, db, tmp_path):
    from ml.features import FittedFeatureSet
    from actors.preparation import typed_value

    dataset = f"prep-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, SPEC)
    rows = [f"e{i},{i * 1.5},{'red' if i % 3 else 'blue'},{i % 2}" for i in range(200)]
    rows.append("e-bad,not-a-number,red,1")
    path = write_rows(tmp_path / "prep.csv", rows)
    request = await conveyor.ingest(dataset, path, key="id", label="label")
    await conveyor.wait_ingested(request, dataset, timeout_s=60)
    found = await eventually(lambda: prepared(db, dataset), timeout_s=60, what="batch prepared")

    assert await db.fetchval("SELECT count(*) FROM features WHERE feature_set_id = $1",
                             found["feature_set_id"]) == 200
    [reason] = [r["reason"] for r in await db.fetch(
        "SELECT reason FROM feature_quarantine WHERE feature_set_id = $1", found["feature_set_id"])]
    assert reason.startswith("x: type error")

    fitted = FittedFeatureSet.from_bytes(bytes(await db.fetchval(
        "SELECT fitted FROM feature_sets WHERE feature_set_id = $1", found["feature_set_id"])))
    for entity in ("e7", "e42", "e199"):
        offline = await db.fetchval("SELECT vector FROM features WHERE feature_set_id = $1 AND entity_key = $2",
                                    found["feature_set_id"], entity)
        online = await conveyor.online_features(dataset, entity)
        raw = await db.fetchval("SELECT values FROM raw_records WHERE batch_id = $1 AND values->>'id' = $2",
                                found["batch_id"], entity)
        local = fitted.transform_one({k: typed_value(v) for k, v in msgspec.json.decode(raw).items()})
        assert online.feature_set_id == found["feature_set_id"]
        assert np.array_equal(np.array(offline), local) and np.array_equal(np.array(online.vector), local)
    assert await conveyor.online_features(dataset, "e-bad") is None


async def test_online_store_is_warmed_from_the_offline_store_when_preparation_restarts(conveyor, db, tmp_path):
    dataset = f"warm-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, SPEC)
    path = write_rows(tmp_path / "warm.csv", [f"w{i},{i},red,{i % 2}" for i in range(50)])
    request = await conveyor.ingest(dataset, path, key="id", label="label")
    await conveyor.wait_ingested(request, dataset, timeout_s=60)
    await eventually(lambda: conveyor.online_features(dataset, "w3"), timeout_s=60, what="online features")

    from storage.redis_store import connect_redis

    redis = connect_redis(conveyor.settings.redis_url)
    await redis.delete(f"conveyor:{conveyor.settings.cluster_name}:online:{dataset}:w3")
    await redis.aclose()
    assert await conveyor.online_features(dataset, "w3") is None
    before = (await conveyor.status()).actor("root.prepare")
    os.kill(before.pid, signal.SIGKILL)
    back = await eventually(lambda: conveyor.online_features(dataset, "w3"), timeout_s=60,
                            what="online store warmed after restart")
    offline = await db.fetchval("SELECT vector FROM features WHERE feature_set_id = $1 AND entity_key = 'w3'",
                                back.feature_set_id)
    assert back.vector == list(offline)
    async def restarted():
        return (await conveyor.status()).actor("root.prepare").n_restarts > before.n_restarts

    await eventually(restarted, timeout_s=30, what="the supervisor counted the restart")


async def test_a_bad_feature_spec_is_refused_naming_the_step(conveyor):
    from ml.transforms import FeatureSpecError

    with pytest.raises(FeatureSpecError) as error:
        await conveyor.set_feature_spec("ok-name", SPEC.replace('transform = "onehot"', 'transform = "nope"'))
    assert "nope" in str(error.value)


async def test_segregation_api_splits_a_prepared_feature_set_from_the_client(conveyor, db, tmp_path):
    from ml.segregation import SegregationError

    dataset = f"split-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, SPEC)
    path = write_rows(tmp_path / "split.csv", [f"s{i},{i},{'red' if i % 2 else 'blue'},{int(i < 10)}"
                                               for i in range(100)])
    request = await conveyor.ingest(dataset, path, key="id", label="label")
    await conveyor.wait_ingested(request, dataset, timeout_s=60)
    found = await eventually(lambda: prepared(db, dataset), timeout_s=60, what="batch prepared")

    split, X_train, X_test, y_train, y_test = await conveyor.training_split(
        found["feature_set_id"], strategy="stratified", ratio=0.8, seed=7)
    assert (len(X_train), len(X_test)) == (80, 20)
    assert sorted(set(y_train.tolist())) == [0, 1] and sorted(set(y_test.tolist())) == [0, 1]
    again = await conveyor.training_split(found["feature_set_id"], strategy="stratified", ratio=0.8, seed=7)
    assert np.array_equal(again[1], X_train)          # same seed, same split
    assert any(w.code == "class_underrepresented" for w in split.warnings)   # 2 positives in test
    with pytest.raises(SegregationError):
        await conveyor.training_split(found["feature_set_id"], ratio=1.5)


async def test_join_waits_for_a_late_source_then_joins_as_of_time(conveyor, db, tmp_path):
    spec = """
key = "id"
[[steps]]
name = "v"
transform = "numeric"
columns = ["v"]
"""
    left, right, name = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("left", "right", "both"))
    for dataset in (left, right):
        await conveyor.set_feature_spec(dataset, spec)
    await conveyor.define_join(name, [left, right], time_column="ts")
    (tmp_path / "l.csv").write_text("id,v,ts\na,1,100\nb,2,100\nc,3,100\n")
    (tmp_path / "r.csv").write_text("id,v,ts\na,10,50\na,11,150\nb,20,99\n")
    request = await conveyor.ingest(left, tmp_path / "l.csv", key="id", time="ts")
    await conveyor.wait_ingested(request, left, timeout_s=60)
    await eventually(lambda: prepared(db, left), timeout_s=60, what="left prepared")
    assert await conveyor.joined_features(name) == (None, [])      # the right source has not arrived
    request = await conveyor.ingest(right, tmp_path / "r.csv", key="id", time="ts")
    await conveyor.wait_ingested(request, right, timeout_s=60)
    run_id, rows = await eventually(lambda: _joined(conveyor, name), timeout_s=60, what="join ran")
    assert rows == [("a", [1.0, 10.0], None), ("b", [2.0, 20.0], None)]   # as of ts=100; c has no match
    assert await db.fetchval("SELECT n_unmatched FROM join_runs WHERE run_id = $1", run_id) == 1


async def _joined(conveyor, name):
    run_id, rows = await conveyor.joined_features(name)
    return (run_id, rows) if run_id else None


async def test_a_spec_that_does_not_fit_the_data_is_dead_lettered_and_preparation_goes_on(conveyor, db, tmp_path):
    dataset = f"misfit-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, SPEC.replace('columns = ["color"]', 'columns = ["no_such_column"]'))
    path = write_rows(tmp_path / "misfit.csv", [f"m{i},{i},red,{i % 2}" for i in range(20)])
    request = await conveyor.ingest(dataset, path, key="id", label="label")
    done = await conveyor.wait_ingested(request, dataset, timeout_s=60)
    reason = await eventually(lambda: db.fetchval(
        "SELECT error FROM dead_letters WHERE topic = 'raw.ingested' AND error LIKE $1", f"%{done.batch_id}%"),
        timeout_s=60, what="the batch's preparation dead-lettered")
    assert "no_such_column" in reason and dataset in reason
    # the worker is still there for the next dataset
    ok = f"fit-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(ok, SPEC)
    request = await conveyor.ingest(ok, write_rows(tmp_path / "fit.csv", ["f1,1,red,0", "f2,2,blue,1"]),
                                    key="id", label="label")
    await conveyor.wait_ingested(request, ok, timeout_s=60)
    await eventually(lambda: prepared(db, ok), timeout_s=60, what="the next dataset prepared")


async def test_a_custom_step_raising_on_a_later_batch_dead_letters_it_and_stores_none_of_it(conveyor, db, tmp_path):
    import tests.support.plugin_algorithms  # noqa: F401 -- test.unlucky, also in the cluster's plugins

    dataset = f"unlucky-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, 'label = "label"\nkey = "id"\n'
                                    '[[steps]]\nname = "x"\ntransform = "numeric"\ncolumns = ["x"]\n'
                                    '[[steps]]\nname = "checked"\ntransform = "test.unlucky"\ncolumns = ["x"]\n')

    async def ingest(name: str, xs) -> str:
        path = write_rows(tmp_path / f"{name}.csv", [f"{name}{i},{x},red,{i % 2}" for i, x in enumerate(xs)])
        request = await conveyor.ingest(dataset, path, key="id", label="label")
        return (await conveyor.wait_ingested(request, dataset, timeout_s=60)).batch_id

    def stored(batch_id):
        return db.fetchval("SELECT count(*) FROM features WHERE batch_id = $1", batch_id)

    first = await ingest("a", [x for x in range(20) if x != 13])
    await eventually(lambda: prepared(db, dataset), timeout_s=60, what="the training batch prepared")
    # 13 in the third piece of 64 rows: the first two were already on their way to PostgreSQL
    unlucky = await ingest("b", [100 + x for x in range(140)] + [13] + [300 + x for x in range(9)])
    reason = await eventually(lambda: db.fetchval(
        "SELECT error FROM dead_letters WHERE topic = 'raw.ingested' AND error LIKE $1", f"%{unlucky}%"),
        timeout_s=60, what="the unlucky batch dead-lettered")
    assert "13 is unlucky" in reason and dataset in reason
    assert await stored(unlucky) == 0
    assert await db.fetchval("SELECT count(*) FROM feature_quality WHERE batch_id = $1", unlucky) == 0
    last = await ingest("c", range(30, 45))
    await eventually(lambda: db.fetchval("SELECT 1 FROM feature_quality WHERE batch_id = $1", last),
                     timeout_s=60, what="the next batch prepared")
    assert (await stored(first), await stored(unlucky), await stored(last)) == (19, 0, 15)
