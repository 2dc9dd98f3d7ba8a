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
