"""Training from the command line: ingest the bundled breast-cancer data, train with a
config file, and read the candidates, their verdict and curve images back."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import msgspec
import pytest

from client.status import ClusterStatus
from tests.support.datasets import NUMERIC_SPEC, cancer_csv

pytestmark = pytest.mark.integration


def train_toml(model: str, dataset: str, candidates: str) -> str:
    return (f'model = "{model}"\ndataset = "{dataset}"\nmetric = "roc_auc"\n[split]\nstrategy = "stratified"\n'
            f"{candidates}")


CANDIDATES = """
[[candidates]]
name = "lr"
algorithm = "sklearn.logistic_regression"
params = { max_iter = 5000 }
[[candidates]]
name = "boost"
algorithm = "sklearn.gradient_boosting"
params = { n_estimators = 600 }
"""


def test_train_then_models_list_and_show_with_curve_images(cluster, tmp_path):
    dataset, model = f"cli-cancer-{uuid.uuid4().hex[:6]}", f"cli-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "spec.toml"
    spec.write_text(NUMERIC_SPEC)
    assert cluster.run("features", "set", dataset, str(spec)).returncode == 0
    done = cluster.run("ingest", dataset, cancer_csv(tmp_path / "cancer.csv"), "--key", "id", "--label", "label")
    assert done.returncode == 0, done.stderr
    time.sleep(0.5)
    config = tmp_path / "train.toml"
    config.write_text(train_toml(model, dataset, CANDIDATES))

    submitted = None
    for _ in range(100):   # preparation of the batch may still be under way
        submitted = cluster.run("train", "--config", str(config), "--no-wait")
        if submitted.returncode == 0:
            break
        assert "has no feature set yet" in submitted.stderr, submitted.stderr
        time.sleep(0.3)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.split("training run ")[1].split(".")[0]

    seen = ""   # cluster status shows what the coordinator is doing while the run goes on
    for _ in range(60):
        status = msgspec.json.decode(cluster.run("cluster", "status", "--json").stdout, type=ClusterStatus)
        train = status.actor("root.train")       # one of the light workers, under root.light
        if train.activity:
            seen = train.activity
            break
        time.sleep(0.2)
    assert f"training {model} (run {run_id[:12]})" in seen

    again = cluster.run("train", "--config", str(config))   # a second run, waited for with its result table
    assert again.returncode == 0, again.stderr
    assert "Best roc_auc=" in again.stdout and "DEPLOYABLE" in again.stdout and "<- best" in again.stdout

    listing = cluster.run("models", "list", model)
    assert listing.returncode == 0
    assert len([line for line in listing.stdout.splitlines() if line.startswith(model)]) == 4

    shown = cluster.run("models", "show", model, "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["version"] == 4 and detail["feature_set_id"] and detail["batch_ids"]
    assert set(detail["images"]) == {"roc", "pr"}
    for image in detail["images"].values():
        assert Path(image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "roc curve" in cluster.run("models", "show", model, "1").stdout

    missing = cluster.run("models", "show", model, "99")
    assert missing.returncode == 1 and "no candidate" in missing.stderr


def test_train_refuses_bad_configs_with_exit_2_naming_the_field(cluster, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(train_toml("m", "d", '[[candidates]]\nname = "x"\nalgorithm = "sklearn.random_forest"\n'
                                        'params = { n_estimators = 0 }\n'))
    done = cluster.run("train", "--config", str(bad))
    assert done.returncode == 2 and "candidates[0].params.n_estimators" in done.stderr
    missing = cluster.run("train", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert cluster.run("train", "--help").returncode == 0
    assert cluster.run("models", "--help").returncode == 0
