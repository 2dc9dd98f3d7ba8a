"""The feature stores against the cluster's real Redis and PostgreSQL: what is written
is read back unchanged, whatever the entity keys and however many chunks it takes."""

from __future__ import annotations

import uuid

import asyncpg
import numpy as np
import pytest

from storage.feature_store import OnlineVector, RedisOnlineStore

pytestmark = pytest.mark.integration

KEYS = ["e1", "é:ü/ключ", "a b", "with:colons:", "x" * 300, "0", "", "7"]


async def test_online_vectors_are_read_back_by_key_with_their_ttl_across_chunks(settings, redis):
    cluster = f"test-{uuid.uuid4().hex[:8]}"
    store = RedisOnlineStore(redis, cluster, ttl_s=120)
    dataset = f"online-{uuid.uuid4().hex[:8]}"
    items = [(key, f"fs{i}", [float(i), -0.5, 1e300, 5e-324]) for i, key in enumerate(KEYS)]
    await store.put_many(dataset, items, chunk=3)
    for key, fsid, vector in items:
        got = await store.get(dataset, key)
        assert isinstance(got, OnlineVector) and (got.feature_set_id, got.vector) == (fsid, vector)
        assert 0 < await redis.ttl(f"conveyor:{cluster}:online:{dataset}:{key}") <= 120
    assert await store.count(dataset) == len(KEYS)

    await store.put_many(dataset, [("e1", "fs-new", [9.0, 9.0, 9.0, 9.0])])   # the latest vector wins
    assert (await store.get(dataset, "e1")).vector == [9.0, 9.0, 9.0, 9.0]
    await store.put_many(dataset, [])
    assert await store.get(dataset, "no such key") is None


async def test_a_batch_of_vectors_is_read_back_exactly_by_matrix_in_line_order(db):
    from storage.feature_store import FeatureRows, PostgresFeatureStore
    from storage.raw_store import PostgresRawStore

    raw = PostgresRawStore(db)
    dataset = f"vectors-{uuid.uuid4().hex[:8]}"
    batch_id, _ = await raw.begin_batch(dataset, uuid.uuid4().hex * 2, "csv", "/data/v.csv", "id", None, "label")
    store = PostgresFeatureStore(db, b"k" * 32)
    fsid = f"fs-{uuid.uuid4().hex[:12]}"
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(997, 3)), [[np.finfo(float).max, -0.0, 5e-324]]])
    lines = list(range(2, 1000))
    keys = [None if i % 50 == 0 else f"ключ-{i}" for i in range(998)]
    labels = [None if i % 7 == 0 else str(i % 3) for i in range(998)]

    async def parts(fsid, rows: FeatureRows, size: int):      # the COPY fed in parts, as preparation feeds it
        for at in range(0, len(rows), size):
            yield store.encoded(fsid, batch_id, FeatureRows(rows.lines[at:at + size], rows.keys[at:at + size],
                                                            rows.X[at:at + size], rows.labels[at:at + size]))

    async with db.acquire() as conn, conn.transaction():
        await store.add_set(conn, dataset, "spec", fsid, b"{}", ["a", "b", "c"], batch_id)
        assert await store.write_vectors(conn, fsid, batch_id, parts(fsid, FeatureRows(lines, keys, X, labels), 400)) \
            == len(lines)
        await store.write_quality(conn, fsid, batch_id, [(1000, "x: why")], b"{}")
    names, got_keys, vectors, got_labels = await store.matrix(fsid)
    assert names == ["a", "b", "c"] and got_keys == keys and got_labels == labels
    assert np.array_equal(np.array(vectors), X) and str(vectors[-1][1]) == "-0.0"
    assert [r["line_no"] for r in await db.fetch("SELECT line_no FROM features WHERE feature_set_id = $1"
                                                 " ORDER BY line_no", fsid)] == lines
    assert await store.prepared(fsid, batch_id)

    with pytest.raises(LookupError, match="feature_set_id"):
        async with db.acquire() as conn, conn.transaction():
            await store.write_vectors(conn, "no-such-set", batch_id,
                                      parts("no-such-set", FeatureRows(lines[:1], keys[:1], X[:1], labels[:1]), 1))
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("DELETE FROM feature_sets WHERE feature_set_id = $1", fsid)


async def test_a_batch_of_vectors_by_matrix_is_stored_as_put_many_stores_it(settings, redis):
    cluster = f"test-{uuid.uuid4().hex[:8]}"
    store = RedisOnlineStore(redis, cluster, ttl_s=60)
    dataset = f"matrix-{uuid.uuid4().hex[:8]}"
    X = np.random.default_rng(5).normal(size=(25, 17))
    keys = [f"k{i}" for i in range(24)] + ["é"]
    await store.put_vectors(dataset, "fs-m", keys, X, chunk=7)
    for key, row in zip(keys, X):
        got = await store.get(dataset, key)
        assert (got.feature_set_id, got.vector) == ("fs-m", row.tolist())
        assert 0 < await redis.ttl(f"conveyor:{cluster}:online:{dataset}:{key}") <= 60
    with pytest.raises(ValueError, match="one vector per key"):
        await store.put_vectors(dataset, "fs-m", keys[:3], X)


async def test_raw_rows_are_read_as_stored_in_line_order_and_typed(db):
    from actors.batch_parse import ParsedRow
    from actors.preparation import read_raw_rows, typed_value
    from ml.columns import Columns
    from storage.raw_store import PostgresRawStore

    raw = PostgresRawStore(db)
    dataset = f"pages-{uuid.uuid4().hex[:8]}"
    batch_id, _ = await raw.begin_batch(dataset, uuid.uuid4().hex * 2, "csv", "/data/p.csv", "id", None, None)
    values = [{"id": str(i), "x": "" if i % 4 == 0 else f"{i / 3:.5f}", "note": ['say "hi", é', "a\\b", "7"][i % 3]}
              for i in range(10)]
    lines = [2 + 3 * i for i in range(10)]                      # not contiguous (multi-line records)
    for partition in range(2):                                  # stored from two partitions
        await raw.write_rows(batch_id, dataset, partition,
                             [ParsedRow(line, v) for j, (line, v) in enumerate(zip(lines, values)) if j % 2 == partition])
    got_lines, rows = await read_raw_rows(db, batch_id, typed=True)
    assert got_lines == lines
    assert isinstance(rows, Columns)        # a CSV batch's rows all hold the same columns
    assert rows.rows() == [{k: typed_value(v) for k, v in row.items()} for row in values]
    assert (await read_raw_rows(db, batch_id, typed=False))[1].rows() == values
    only_x = (await read_raw_rows(db, batch_id, typed=True, only={"x"}))[1]
    assert only_x.rows() == [{**row, "x": typed_value(row["x"])} for row in values]
    assert await read_raw_rows(db, "no-such-batch", typed=True) == ([], [])
