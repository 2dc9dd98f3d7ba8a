"""One request followed through the actors' logs: the lines the preparation worker writes
while it prepares an ingested batch carry the ingestion request's correlation id."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.support.datasets import NUMERIC_SPEC, cancer_csv
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def _lines_mentioning(logs: Path, text: str) -> list[dict]:
    found = []
    for path in logs.glob("worker-*.err"):
        for line in path.read_text(errors="replace").splitlines():
            if text in line and line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
    return found


async def test_the_preparation_log_of_an_ingested_batch_carries_the_requests_correlation_id(
        cluster, conveyor, tmp_path):
    dataset = f"chain-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, NUMERIC_SPEC)
    request = await conveyor.ingest(dataset, cancer_csv(tmp_path / "c.csv"), key="id", label="label")
    done = await conveyor.wait_ingested(request, dataset, timeout_s=120)
    record = json.loads((cluster.state_dir / "cluster.json").read_text())
    logs = Path(record["services"]["ray"]["work_dir"]) / "session_latest" / "logs"

    def prepared():
        return [line for line in _lines_mentioning(logs, done.batch_id) if line.get("event") == "batch prepared"]

    lines = await eventually(prepared, timeout_s=60, what="the preparation log line of the batch")
    assert [(line["worker"], line["correlation_id"]) for line in lines] == [("root.prepare", request)]
    assert lines[0]["causation_id"] != request          # caused by the loader's raw.ingested, not the request
