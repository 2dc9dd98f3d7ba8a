"""`python run.py config` as a user runs it against the session cluster."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.datasets import NUMERIC_SPEC

pytestmark = pytest.mark.integration


def test_features_set_twice_then_config_list_history_and_show(cluster, tmp_path):
    dataset = f"cfgcli-{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "spec.toml"
    for text, version in ((NUMERIC_SPEC, 1), (NUMERIC_SPEC.replace("f0", "g0"), 2)):
        spec.write_text(text)
        done = cluster.run("features", "set", dataset, str(spec))
        assert done.returncode == 0 and f"(version {version})" in done.stdout, done.stdout + done.stderr
    listed = cluster.run("config", "list", "--kind", "feature_spec")
    assert listed.returncode == 0 and any(line.split()[1:3] == [dataset, "v2"] for line in listed.stdout.splitlines())
    history = cluster.run("config", "history", "feature_spec", dataset)
    assert history.returncode == 0 and [line.split()[0] for line in history.stdout.splitlines()] == ["v2", "v1"]
    shown = cluster.run("config", "show", "feature_spec", dataset, "--version", "1")
    assert shown.returncode == 0 and shown.stdout.startswith(f"# feature_spec {dataset} v1") and '"f0"' in shown.stdout
    as_json = json.loads(cluster.run("config", "show", "feature_spec", dataset, "--json").stdout)
    assert as_json["version"] == 2 and '"g0"' in as_json["body"]


@pytest.mark.parametrize("args, field", [
    (["show", "feature_spec", "x'; DROP TABLE configs;--"], "name"),
    (["history", "feature_spec", "no-such-config"], "name"),
    (["show", "feature_spec", "no-such-config", "--version", "0"], "name"),
])
def test_bad_config_queries_exit_2_naming_the_field(cluster, args, field):
    done = cluster.run("config", *args)
    assert done.returncode == 2 and field in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_unknown_kind_is_a_usage_error(cluster):
    done = cluster.run("config", "list", "--kind", "passwords")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_config_set_serving_is_versioned_shown_and_audited(cluster, tmp_path):
    model = f"cfgserve-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "serving.toml"
    for text, version in (("replicas = 1\n", 1), ("replicas = 1\n", 1), ("replicas = 1\nlatency_objective_ms = 80\n", 2)):
        config.write_text(text)
        done = cluster.run("config", "set", "serving", model, str(config))
        assert done.returncode == 0 and f"serving {model} is version {version}" in done.stdout, done.stdout + done.stderr
    history = cluster.run("config", "history", "serving", model)
    assert [line.split()[0] for line in history.stdout.splitlines()] == ["v2", "v1"]
    shown = json.loads(cluster.run("config", "show", "serving", model, "--json").stdout)
    assert shown["version"] == 2 and "latency_objective_ms = 80" in shown["body"]
    audit = json.loads(cluster.run("audit", "--action", "config.changed", "--json").stdout)
    assert [json.loads(a["detail"]) if isinstance(a["detail"], str) else a["detail"]
            for a in audit if a["subject"] == model] == [{"kind": "serving", "version": 2},
                                                           {"kind": "serving", "version": 1}]


@pytest.mark.parametrize("text, field", [
    ("replicas = 0\n", "replicas"),
    ("replicas = 'two'\n", "replicas"),
    ("latency_objective_ms = -5\n", "latency_objective_ms"),
    ("fallback_rate_alert = 1.5\n", "fallback_rate_alert"),
    ("auto_rollback = 'yes'\n", "auto_rollback"),
    ("replica = 2\n", "replica"),
    ("this is not toml\n", "config"),
    ("# padding\n" * 2000, "config"),
    (None, "file"),
])
def test_a_bad_serving_config_exits_2_naming_the_field_and_changes_nothing(cluster, tmp_path, text, field):
    model = f"cfgbad-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "serving.toml"
    if text is not None:
        config.write_text(text)
    done = cluster.run("config", "set", "serving", model, str(config))
    assert done.returncode == 2 and f"{field}:" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert cluster.run("config", "history", "serving", model).returncode == 2       # no version was stored


def test_config_set_refuses_a_hostile_model_name(cluster, tmp_path):
    config = tmp_path / "serving.toml"
    config.write_text("replicas = 1\n")
    done = cluster.run("config", "set", "serving", "x'; DROP TABLE configs;--", str(config))
    assert done.returncode == 2 and "model:" in done.stderr
