"""Lineage, audit, schedules and the data service from the command line, after a model
was trained, deployed, scored online and scored in a batch job through the CLI."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from tests.e2e.test_serve_cli import TRAIN
from tests.support.cluster import CliCluster
from tests.support.datasets import NUMERIC_SPEC, cancer_csv, cancer_rows

pytestmark = pytest.mark.integration

N_ONLINE = 3


def ok(cluster, *args) -> str:
    done = cluster.run(*args)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def as_json(cluster, *args):
    return json.loads(ok(cluster, *args, "--json"))


def answer(stdout: str) -> dict:
    """The JSON line of `score` (Ray may forward a raylet warning to the same stdout)."""
    return json.loads(next(line for line in stdout.splitlines() if line.startswith("{")))


@pytest.fixture(scope="module")
def used(cluster, tmp_path_factory):
    """A model trained, v1 deployed, scored N_ONLINE times online and once as a batch job:
    (dataset, model, the online request ids, the folder of its files)."""
    folder = tmp_path_factory.mktemp("ops")
    dataset, model = f"cli-ops-{uuid.uuid4().hex[:6]}", f"cli-ops-{uuid.uuid4().hex[:6]}"
    (folder / "spec.toml").write_text(NUMERIC_SPEC)
    ok(cluster, "features", "set", dataset, str(folder / "spec.toml"))
    ok(cluster, "ingest", dataset, cancer_csv(folder / "c.csv"), "--key", "id", "--label", "label")
    (folder / "train.toml").write_text(TRAIN.format(model=model, dataset=dataset))
    for _ in range(100):   # preparation may still be under way
        if cluster.run("train", "--config", str(folder / "train.toml")).returncode == 0:
            break
        time.sleep(0.3)
    assert "is production" in ok(cluster, "models", "deploy", model, "1")
    request_ids = [answer(ok(cluster, "score", model, "--features", json.dumps(features), "--deadline-ms",
                             "2000"))["request_id"] for _, features, _ in cancer_rows()[:N_ONLINE]]
    assert "scored 569 rows" in ok(cluster, "batch-score", model)
    for _ in range(60):    # score records are stored off the scoring path
        if sum(c["n"] for c in as_json(cluster, "data", "score-counts", model)) == N_ONLINE:
            break
        time.sleep(0.5)
    return dataset, model, request_ids, folder


def test_lineage_names_the_batches_feature_set_deployment_and_scores_the_other_commands_show(cluster, used):
    dataset, model, request_ids, _ = used
    batches = as_json(cluster, "data", "batches", dataset)
    [feature_set] = as_json(cluster, "data", "feature-sets", dataset)
    lineage = as_json(cluster, "lineage", model, "1")

    assert [b["batch"]["batch_id"] for b in lineage["batches"]] == [b["batch_id"] for b in batches]
    assert [(b["batch"]["n_rows"], b["n_feature_rows"]) for b in lineage["batches"]] == [(569, 569)]
    assert lineage["feature_set"]["feature_set_id"] == feature_set["feature_set_id"]
    assert feature_set["n_rows"] == 569 and len(feature_set["feature_names"]) == 30
    assert lineage["model"]["version"] == 1 and lineage["model"]["model"] == model
    [deployment] = lineage["deployments"]
    assert deployment["aliases"] == ["production"] and deployment["state"] == "live"
    assert [e["action"] for e in deployment["history"]] == ["model.deployed"]
    assert lineage["scores"]["n_online"] == N_ONLINE and lineage["scores"]["n_batch_rows"] == 569
    [job] = as_json(cluster, "data", "score-jobs", model)
    assert [j["job_id"] for j in lineage["scores"]["batch_jobs"]] == [job["job_id"]]
    assert sorted(r["request_id"] for r in as_json(cluster, "data", "scores", model)) == sorted(request_ids)
    [one] = as_json(cluster, "data", "scores", model, "--request", request_ids[0])
    assert one["request_id"] == request_ids[0]

    text = ok(cluster, "lineage", model, "production")
    for expected in (batches[0]["batch_id"], f"→ feature set\n  {feature_set['feature_set_id']}", "→ model version",
                     f"{model} v1", "v1 live as production", "model.deployed: production -> v1",
                     f"online: {N_ONLINE} answers ({N_ONLINE} primary)", "batch: 569 rows in 1 job(s)"):
        assert expected in text, text


def test_audit_lists_the_evaluation_and_the_deployment_newest_first(cluster, used):
    _, model, _, _ = used
    [deployed] = as_json(cluster, "audit", "--subject", model, "--action", "model.deployed")
    assert deployed["actor"] == "root.serve" and deployed["detail"]["version"] == 1
    lines = ok(cluster, "audit", "--subject", model).splitlines()
    assert lines[0].split()[:2] == ["at", "actor"] and "model.deployed" in lines[1] and "model.evaluated" in lines[2]
    assert len(as_json(cluster, "audit", "--limit", "1")) == 1


def test_schedules_are_added_listed_and_removed(cluster, used):
    dataset, _, _, folder = used
    added = ok(cluster, "schedule", "add", "ingest", dataset, str(folder / "c.csv"), "--cron", "0 0 1 1 *",
               "--key", "id", "--label", "label")
    ingest_id = re.search(r"Scheduled (\S+):", added).group(1)
    assert f"into dataset {dataset!r}" in added
    train_id = re.search(r"Scheduled (\S+):", ok(cluster, "schedule", "add", "train", str(folder / "train.toml"),
                                                 "--cron", "30 2 * * 0")).group(1)
    listed = {s["schedule_id"]: s for s in as_json(cluster, "schedule", "list")}
    assert (listed[ingest_id]["kind"], listed[ingest_id]["cron"]) == ("ingest", "0 0 1 1 *")
    assert (listed[train_id]["kind"], listed[train_id]["cron"]) == ("train", "30 2 * * 0")
    assert ingest_id in ok(cluster, "schedule", "list")
    for schedule_id in (ingest_id, train_id):
        assert "removed" in ok(cluster, "schedule", "remove", schedule_id)
        again = cluster.run("schedule", "remove", schedule_id)
        assert again.returncode == 2 and "schedule_id: no schedule" in again.stderr
    assert not {ingest_id, train_id} & {s["schedule_id"] for s in as_json(cluster, "schedule", "list")}


@pytest.mark.parametrize("args, message", [
    (["lineage", "no-such-model", "1"], "lineage: model: no trained model"),
    (["lineage", "x'; DROP TABLE candidates;--", "1"], "lineage: model:"),
    (["lineage", "{model}", "99"], "lineage: version: '{model}' has no version 99"),
    (["lineage", "{model}", "newest"], "lineage: version:"),
    (["audit", "--subject", "../../etc/passwd"], "audit: subject:"),
    (["audit", "--limit", "0"], "audit: limit: a whole number from 1 to 10000"),
    (["data", "batches", "--limit", "100000"], "data: limit:"),
    (["data", "rejects", "../../etc/passwd"], "data: batch_id:"),
    (["data", "scores", "{model}", "--version", "0"], "data: version:"),
    (["data", "scores", "{model}", "--request", "r1", "--request", "x' OR '1'='1"], "data: request_ids:"),
    (["schedule", "remove", "x' OR '1'='1"], "schedule: schedule_id:"),
    (["schedule", "add", "train", "{folder}/train.toml", "--cron", "every tuesday"], "schedule: every:"),
])
def test_bad_input_is_refused_with_exit_2_naming_the_field(cluster, used, args, message):
    _, model, _, folder = used
    done = cluster.run(*[a.format(model=model, folder=folder) for a in args])
    assert done.returncode == 2 and message.format(model=model) in done.stderr, done.stdout + done.stderr
    assert len(as_json(cluster, "models", "list", model)) == 2          # nothing was dropped


@pytest.mark.parametrize("args", [["lineage"], ["audit"], ["schedule"], ["schedule", "add", "ingest"],
                                  ["schedule", "add", "train"], ["schedule", "list"], ["schedule", "remove"],
                                  ["data"], ["data", "batches"], ["data", "scores"], ["data", "score-jobs"]])
def test_every_new_command_has_help(args, tmp_path):
    done = CliCluster(tmp_path, "help").run(*args, "--help", timeout=60)
    assert done.returncode == 0 and "usage:" in done.stdout
