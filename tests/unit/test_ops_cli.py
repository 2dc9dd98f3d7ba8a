"""The operator's commands without a cluster: the text and JSON views of lineage, audit,
schedules and the data service, and the parsers of lineage, audit, schedule and data."""

from __future__ import annotations

import argparse
import datetime as dt
import json

import pytest

import client.cli_ops
import client.ops_text


def _lineage(deployed: bool = True):
    from client.data import FeatureSetInfo, RawBatchInfo, ScoreCount, ScoreJobInfo
    from client.lineage import (DeploymentEvent, Lineage, LineageBatch, LineageDeployment, LineageModel,
                                LineageScores)

    t = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    batch = RawBatchInfo(batch_id="b" * 32, dataset="cancer", format="csv", source_path="/d/c.csv", checksum="c" * 64,
                         key_column="id", time_column=None, label_column="label", n_rows=569, n_rejected=1,
                         state="complete", created_at=t, completed_at=t)
    fs = FeatureSetInfo(feature_set_id="f" * 20, dataset="cancer", feature_names=["f0", "f1"],
                        fitted_on_batch="b" * 32, n_rows=569, n_batches=1, created_at=t)
    model = LineageModel(model="cancer", version=2, candidate_id="c" * 24, name="lr",
                         algorithm="sklearn.logistic_regression", run_id="r" * 32, n_train=455,
                         metrics={"roc_auc": 0.99}, deployable=True, created_at=t)
    history = [DeploymentEvent(at=t, action="model.deployed", actor="root.serve", alias="production", version=2,
                               previous_version=1),
               DeploymentEvent(at=t, action="model.rollback", actor="root.serve", alias="production", version=1,
                               previous_version=2)]
    deployments = [LineageDeployment(version=2, state="live", aliases=["production"], replicas=2, canary_weight=None,
                                     deployed_at=t, retired_at=None, history=history)] if deployed else []
    online = [ScoreCount(model="cancer", version=2, answered_by="primary", n=40, first_at=t, last_at=t),
              ScoreCount(model="cancer", version=2, answered_by="fallback", n=2, first_at=t, last_at=t)]
    jobs = [ScoreJobInfo(job_id="j" * 32, model="cancer", version=2, candidate_id="c" * 24, feature_set_id="f" * 20,
                         state="done", error=None, n_rows=569, n_stored=569, created_at=t, finished_at=t)]
    scores = LineageScores(n_online=42, online=online, n_batch_rows=569, batch_jobs=jobs)
    return Lineage(batches=[LineageBatch(batch=batch, n_feature_rows=568)], feature_set=fs, model=model,
                   deployments=deployments, scores=scores)


def test_lineage_text_reads_from_batches_to_scores_in_order():
    text = client.ops_text.lineage_text(_lineage())
    order = ["b" * 32, "→ feature set", "f" * 20, "→ model version", "cancer v2  lr", "→ deployments",
             "v2 live as production", "model.deployed: production v1 -> v2", "model.rollback: production v2 -> v1",
             "→ scores",
             "online: 42 answers"]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions), text
    assert "40 primary" in text and "2 fallback" in text
    assert "569 rows, 1 rejected, 568 prepared" in text and "569 rows in 1 job(s)" in text
    assert "roc_auc=0.9900" in text
    assert "(never deployed)" in client.ops_text.lineage_text(_lineage(deployed=False))


def test_lineage_json_holds_every_stage_with_iso_times():
    found = json.loads(client.ops_text.json_text(_lineage()))
    assert set(found) == {"batches", "feature_set", "model", "deployments", "scores"}
    assert found["batches"][0]["batch"]["batch_id"] == "b" * 32
    assert found["deployments"][0]["history"][0]["at"].startswith("2026-01-02T03:04:05")
    assert found["scores"]["n_online"] == 42 and found["scores"]["n_batch_rows"] == 569


def test_ops_text_doctests_pass():
    import doctest

    assert doctest.testmod(client.ops_text).failed == 0


def test_tables_align_columns():
    text = client.ops_text.table(["a", "long header"], [["12345", "x"], ["1", "yy"]])
    lines = text.splitlines()
    assert [line.index(h) for line, h in zip(lines, ["long header", "x", "yy"])] == [7, 7, 7]


def _parser():
    parser = argparse.ArgumentParser(prog="run.py")
    parser.add_argument("--config")
    client.cli_ops.register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.parametrize("argv", [["lineage"], ["audit"], ["schedule"], ["schedule", "add"],
                                  ["schedule", "add", "ingest"], ["schedule", "add", "train"], ["schedule", "list"],
                                  ["schedule", "remove"], ["data"], ["data", "batches"], ["data", "rejects"],
                                  ["data", "feature-sets"], ["data", "scores"], ["data", "score-counts"],
                                  ["data", "score-jobs"]])
def test_every_new_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as done:
        _parser().parse_args([*argv, "--help"])
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out


def test_the_parsers_hand_the_handlers_what_they_need():
    args = _parser().parse_args(["schedule", "add", "ingest", "iris", "f.csv", "--every", "0 * * * *", "--key", "id"])
    assert (args.run, args.kind, args.dataset, args.path, args.cron, args.key) == (
        client.cli_ops.schedule, "ingest", "iris", "f.csv", "0 * * * *", "id")
    args = _parser().parse_args(["data", "scores", "m", "--version", "2", "--limit", "5", "--json"])
    assert (args.run, args.action, args.model, args.version, args.limit, args.json) == (
        client.cli_ops.data, "scores", "m", 2, 5, True)
    assert _parser().parse_args(["lineage", "m", "production"]).version == "production"
