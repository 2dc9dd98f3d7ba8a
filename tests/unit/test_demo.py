"""The demo's pure parts: its data and configs are what the checks of the cluster accept, the
summary names what failed, the demo's plugin is added to the settings of the cluster it
starts, and the command refuses to run without a cluster when told to use a running one."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import pytest

from client import demo, demo_data
from client.cli_demo import PLUGIN, with_plugin
from ml import demo_algorithms

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", [demo, demo_data, demo_algorithms])
def test_doctests_pass(module):
    assert doctest.testmod(module).failed == 0


def test_the_two_sources_share_every_patient_and_split_the_columns(tmp_path):
    files = demo_data.write_sources(tmp_path)
    means = files["means"].read_text().splitlines()
    worst = files["worst"].read_text().splitlines()
    assert len(means) == len(worst) == 570
    assert [line.split(",")[0] for line in means] == [line.split(",")[0] for line in worst]
    assert len(means[0].split(",")) + len(worst[0].split(",")) == 1 + 30 + 1 + 1      # id twice, label once
    assert means[0].endswith(",label") and "worst_radius" in worst[0]


def test_specs_and_configs_are_accepted_by_their_checks():
    from client.learning import check_learner_config
    from client.training import check_config
    from ml.features import FeatureSpec

    columns = demo_data.cancer_table()[0]
    spec = FeatureSpec.from_toml(demo_data.numeric_spec(columns, label="label"))
    assert spec.label == "label" and len(spec.steps) == 30
    plan = check_config(demo_data.training_config("m", "d", demo_data.CANDIDATES))
    assert len(plan.config.candidates) == len(demo_data.CANDIDATES)
    slow = check_config(demo_data.training_config("m", "d", demo_data.slow_candidate(0.25)), PLUGIN)
    assert slow.config.candidates[0].algorithm == "demo.slow_classifier"
    assert check_learner_config(demo_data.learner_config("phish", "phish")).label == "label"


def test_the_slow_classifier_is_a_logistic_regression_that_takes_its_time():
    import time

    from ml.algorithms import build

    rows = demo_data.cancer_table()[1][:40]
    X, y = [r[1] for r in rows], [r[2] for r in rows]
    model = demo_algorithms.SlowClassifier(delay_s=0.05).fit(X, y)
    began = time.perf_counter()
    model.predict_proba(X[:1])
    assert time.perf_counter() - began >= 0.05
    assert build("demo.slow_classifier", {"delay_s": 0.0}) is not None


def test_the_summary_names_every_failed_check():
    checks = [demo.Check("train", "best deployable", True), demo.Check("lineage", "rollback recorded", False, "x")]
    ok, text = demo.summary(checks)
    assert not ok and "lineage: rollback recorded (x)" in text and "1 of 2" in text
    assert demo.summary([demo.Check("a", "b", True)]) == (True, "All 1 checks passed.")
    assert demo.summary([])[0] is False


def test_the_demo_plugin_is_added_once_to_the_plugins_of_the_cluster_it_starts():
    from storage.settings import load_settings

    settings = load_settings(None, {"CONVEYOR_PLUGINS": "mine"})
    assert with_plugin(settings).plugins == f"mine,{PLUGIN}"
    assert with_plugin(with_plugin(settings)).plugins == f"mine,{PLUGIN}"
    assert with_plugin(load_settings(None, {})).plugins == PLUGIN


def test_use_running_without_a_cluster_is_refused_and_starts_nothing(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CONVEYOR_STATE_DIR": str(tmp_path), "CONVEYOR_CLUSTER_NAME": "t-none",
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "demo", "--use-running", "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "no cluster is running" in done.stderr
    assert not (tmp_path / "cluster.json").exists()
