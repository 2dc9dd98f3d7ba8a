"""Deployment and scoring from the command line."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.support.datasets import NUMERIC_SPEC, cancer_csv, cancer_rows

pytestmark = pytest.mark.integration

TRAIN = """model = "{model}"
dataset = "{dataset}"
metric = "roc_auc"
[[candidates]]
name = "lr"
algorithm = "sklearn.logistic_regression"
params = {{ max_iter = 5000 }}
[[candidates]]
name = "tree"
algorithm = "sklearn.decision_tree"
params = {{ max_depth = 2 }}
"""


def test_deploy_score_batch_score_and_rollback(cluster, tmp_path):
    dataset, model = f"cli-serve-{uuid.uuid4().hex[:6]}", f"cli-serve-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "spec.toml"
    spec.write_text(NUMERIC_SPEC)
    assert cluster.run("features", "set", dataset, str(spec)).returncode == 0
    assert cluster.run("ingest", dataset, cancer_csv(tmp_path / "c.csv"), "--key", "id", "--label",
                       "label").returncode == 0
    config = tmp_path / "train.toml"
    config.write_text(TRAIN.format(model=model, dataset=dataset))
    for _ in range(100):   # preparation may still be under way
        trained = cluster.run("train", "--config", str(config))
        if trained.returncode == 0:
            break
        time.sleep(0.3)
    assert trained.returncode == 0, trained.stderr

    deployed = cluster.run("models", "deploy", model)      # the best deployable candidate
    assert deployed.returncode == 0, deployed.stderr
    assert "is production" in deployed.stdout
    features = json.dumps(cancer_rows()[0][1])
    scored = cluster.run("score", model, "--features", features, "--deadline-ms", "2000")
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout)
    assert result["answered_by"] == "primary" and 0 <= result["score"] <= 1 and result["request_id"]

    other = 2 if result["version"] == 1 else 1
    assert cluster.run("models", "deploy", model, str(other)).returncode == 0
    listing = cluster.run("models", "list", model).stdout
    assert "production" in listing and "previous" in listing
    back = cluster.run("models", "rollback", model)
    assert back.returncode == 0 and f"back on v{result['version']}" in back.stdout

    batch = cluster.run("batch-score", model)
    assert batch.returncode == 0, batch.stderr
    assert "scored 569 rows" in batch.stdout

    bad = cluster.run("score", model, "--features", json.dumps({**cancer_rows()[0][1], "f0": "NaN-ish"}),
                      "--deadline-ms", "2000")
    assert bad.returncode == 2 and "features: f0: type error" in bad.stderr, bad.stdout + bad.stderr
    missing_feature = cluster.run("score", model, "--features", '{"f0": 1.0}')
    assert missing_feature.returncode == 2 and "features.f1: missing" in missing_feature.stderr
    assert cluster.run("score", model, "--features", "{not json").returncode == 2
    missing = cluster.run("models", "deploy", "no-such-model")
    assert missing.returncode == 2 and "no trained candidate" in missing.stderr
    assert cluster.run("score", "--help").returncode == 0 and cluster.run("batch-score", "--help").returncode == 0
