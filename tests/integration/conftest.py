"""Data shared by the integration tests: the breast-cancer rows ingested and prepared once,
and scratch databases of the session cluster's PostgreSQL."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import numpy as np
import pytest

from storage.migrations import apply_migrations
from storage.redis_store import connect_redis
from tests.support.datasets import NUMERIC_SPEC, cancer_csv


@pytest.fixture(scope="session")
async def cancer(conveyor, db, tmp_path_factory):
    """A dataset of the breast-cancer rows with features prepared; (dataset, feature set id)."""
    from tests.support.waiting import eventually

    dataset = f"cancer-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, NUMERIC_SPEC)
    request = await conveyor.ingest(dataset, cancer_csv(tmp_path_factory.mktemp("cancer") / "cancer.csv"),
                                    key="id", label="label")
    await conveyor.wait_ingested(request, dataset, timeout_s=120)
    fsid = await eventually(lambda: db.fetchval("SELECT feature_set_id FROM feature_sets WHERE dataset = $1",
                                                dataset), timeout_s=120, what="features of the cancer data")
    await eventually(lambda: db.fetchval("SELECT count(*) = 569 FROM features WHERE feature_set_id = $1", fsid),
                     timeout_s=60, what="569 feature rows")
    return dataset, fsid


@pytest.fixture(scope="session")
async def synthetic(conveyor, db, tmp_path_factory):
    """20,000 rows of a seeded two-class problem with 6 numeric features, prepared."""
    from tests.support.waiting import eventually

    rng = np.random.default_rng(7)
    X = rng.normal(size=(20_000, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    path = tmp_path_factory.mktemp("synthetic") / "synthetic.csv"
    path.write_text("id," + ",".join(f"x{i}" for i in range(6)) + ",label\n" + "".join(
        f"s{i}," + ",".join(f"{v:.6f}" for v in row) + f",{label}\n" for i, (row, label) in enumerate(zip(X, y))))
    dataset = f"synth-{uuid.uuid4().hex[:8]}"
    spec = 'label = "label"\nkey = "id"\n' + "".join(
        f'[[steps]]\nname = "x{i}"\ntransform = "numeric"\ncolumns = ["x{i}"]\n' for i in range(6))
    await conveyor.set_feature_spec(dataset, spec)
    await conveyor.wait_ingested(await conveyor.ingest(dataset, str(path), key="id", label="label"), dataset,
                                 timeout_s=120)
    fsid = await eventually(lambda: db.fetchval("SELECT feature_set_id FROM feature_sets WHERE dataset = $1",
                                                dataset), timeout_s=120, what="features of the synthetic data")
    await eventually(lambda: db.fetchval("SELECT count(*) = 20000 FROM features WHERE feature_set_id = $1", fsid),
                     timeout_s=120, what="20,000 feature rows")
    return dataset, fsid


@pytest.fixture
async def redis(settings):
    """A client of the session cluster's Redis."""
    client = connect_redis(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def scratch(settings):
    """(settings naming it, a connection to it): a fresh database with every migration, on
    the session cluster's PostgreSQL, dropped afterwards; the live cluster sees none of it."""
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.postgres_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(settings.postgres_dsn)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        yield msgspec.structs.replace(settings, postgres_dsn=dsn), conn
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
