"""Data shared by the integration tests: the breast-cancer rows ingested and prepared once."""

from __future__ import annotations

import uuid

import pytest

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
