"""Lineage, audit, schedules and the data service against the running cluster: a model
is trained, deployed and scored (online and in a batch job), and what the queries say
is checked against what was done."""

from __future__ import annotations

import pytest

from client.data import QueryRefused
from tests.integration.test_serving import ROWS, trained  # noqa: F401  (the fixture: a model with versions 1 and 2)
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

N_ONLINE = 7


@pytest.fixture(scope="module")
async def used(conveyor, cancer, trained):  # noqa: F811
    """v1 of the model deployed, N_ONLINE requests scored online and a batch job done;
    (model, the online answers, the batch job's id)."""
    await conveyor.deploy(trained, 1)
    answers = [await conveyor.score(trained, features, deadline_ms=2000) for _, features, _ in ROWS[:N_ONLINE]]
    assert {(a.version, a.answered_by) for a in answers} == {(1, "primary")}
    job = await conveyor.batch_score(trained, 1)
    await conveyor.wait_batch_scored(job, timeout_s=180)

    async def all_recorded() -> bool:
        return sum(c.n for c in await conveyor.score_counts(trained, 1)) == N_ONLINE

    await eventually(all_recorded, timeout_s=60, what=f"{N_ONLINE} score records")
    return trained, answers, job


async def test_lineage_of_a_trained_deployed_and_scored_version_is_complete(conveyor, cancer, used):
    dataset, fsid = cancer
    model, _, job = used
    found = await conveyor.lineage(model, 1)

    ingested = await conveyor.raw_batches(dataset)
    assert [b.batch.batch_id for b in found.batches] == [b.batch_id for b in ingested]
    assert [(b.batch.n_rows, b.n_feature_rows, b.batch.state) for b in found.batches] == [(569, 569, "complete")]
    assert found.feature_set.feature_set_id == fsid and found.feature_set.dataset == dataset
    assert (found.feature_set.n_rows, len(found.feature_set.feature_names)) == (569, 30)
    assert found.feature_set.fitted_on_batch == ingested[0].batch_id

    candidate = await conveyor.candidate(model, 1)
    assert (found.model.version, found.model.candidate_id, found.model.name, found.model.run_id) == (
        1, candidate["candidate_id"], candidate["name"], candidate["run_id"])
    assert candidate["name"] in ("lr", "tree") and found.model.algorithm == candidate["algorithm"]
    assert found.model.metrics["roc_auc"] == pytest.approx(candidate["metrics"]["roc_auc"])

    [deployment] = found.deployments
    assert (deployment.version, deployment.state, deployment.aliases) == (1, "live", ["production"])
    assert [(e.action, e.alias, e.actor) for e in deployment.history] == [("model.deployed", "production",
                                                                           "root.serve")]

    assert found.scores.n_online == N_ONLINE
    assert [(c.answered_by, c.n) for c in found.scores.online] == [("primary", N_ONLINE)]
    [batch_job] = found.scores.batch_jobs
    assert (batch_job.job_id, batch_job.state, batch_job.n_stored, found.scores.n_batch_rows) == (job, "done", 569,
                                                                                                   569)
    assert await conveyor.lineage(model, "production") == found


async def test_lineage_of_a_version_never_deployed_has_no_deployment_and_no_scores(conveyor, used):
    model, _, _ = used
    found = await conveyor.lineage(model, 2)
    assert found.model.name == (await conveyor.candidate(model, 2))["name"] and found.deployments == []
    assert (found.scores.n_online, found.scores.batch_jobs) == (0, [])
    assert found.feature_set.feature_set_id == (await conveyor.lineage(model, 1)).feature_set.feature_set_id


@pytest.mark.parametrize("model, version, field", [
    ("no-such-model", 1, "model"), ("x'; DROP TABLE candidates;--", 1, "model"), ("../../etc/passwd", 1, "model"),
    (None, 99, "version"), (None, 0, "version"), (None, "latest", "version"), (None, "canary", "version")])
async def test_lineage_refuses_unknown_or_hostile_models_and_versions_naming_the_field(conveyor, used, db, model,
                                                                                       version, field):
    with pytest.raises(QueryRefused) as refused:
        await conveyor.lineage(model or used[0], version)
    assert refused.value.field == field
    if version == 99:
        assert "versions 1 to 2" in refused.value.reason
    assert await db.fetchval("SELECT count(*) FROM candidates WHERE model = $1", used[0]) == 2


async def test_audit_shows_the_deployment_and_the_evaluation_of_the_model(conveyor, used):
    model, _, _ = used
    [deployed] = await conveyor.audit(action="model.deployed", subject=model)
    assert (deployed.actor, deployed.detail["version"], deployed.detail["alias"]) == ("root.serve", 1, "production")
    [evaluated] = await conveyor.audit(action="model.evaluated", subject=model)
    assert evaluated.detail["model"] == model
    everything = await conveyor.audit(subject=model)
    assert [r.id for r in everything] == sorted([deployed.id, evaluated.id], reverse=True)   # newest first
    assert len(await conveyor.audit(limit=1)) == 1
    assert await conveyor.audit(actor="root.serve", action="model.evaluated") == []
    for field, value in (("subject", "'; DROP TABLE audit_log;--"), ("actor", "a b"), ("action", "../x")):
        with pytest.raises(QueryRefused) as refused:
            await conveyor.audit(**{field: value})
        assert refused.value.field == field
    with pytest.raises(QueryRefused) as refused:
        await conveyor.audit(limit=0)
    assert refused.value.field == "limit"


async def test_data_service_answers_with_what_was_ingested_prepared_and_scored(conveyor, cancer, used):
    dataset, fsid = cancer
    model, answers, job = used
    [batch] = await conveyor.raw_batches(dataset)
    assert (batch.dataset, batch.n_rows, batch.n_rejected, batch.state, batch.format) == (dataset, 569, 0,
                                                                                          "complete", "csv")
    assert await conveyor.raw_rejects(batch.batch_id) == []
    [feature_set] = await conveyor.feature_sets(dataset)
    assert (feature_set.feature_set_id, feature_set.n_rows, feature_set.n_batches) == (fsid, 569, 1)
    records = await conveyor.score_records(model, version=1)
    assert sorted(r.request_id for r in records) == sorted(a.request_id for a in answers)
    assert {r.request_id: r.score for r in records} == {a.request_id: a.score for a in answers}
    assert len(await conveyor.score_records(model, limit=3)) == 3
    assert await conveyor.score_records(model, answered_by="fallback") == []
    picked = [answers[0].request_id, answers[-1].request_id, "never-asked"]
    assert sorted(r.request_id for r in await conveyor.score_records(model, request_ids=picked)) == sorted(picked[:2])
    [counted] = await conveyor.score_counts(model)
    assert (counted.version, counted.answered_by, counted.n) == (1, "primary", N_ONLINE)
    [scored] = await conveyor.score_jobs(model)
    assert (scored.job_id, scored.version, scored.n_rows, scored.n_stored, scored.feature_set_id) == (
        job, 1, 569, 569, fsid)
    with pytest.raises(QueryRefused) as refused:
        await conveyor.raw_rejects("0" * 32)
    assert refused.value.field == "batch_id" and "no raw batch" in refused.value.reason
    for call, field in ((conveyor.raw_batches("a;b"), "dataset"), (conveyor.feature_sets(limit=10_001), "limit"),
                        (conveyor.score_records(model, answered_by="x"), "answered_by"),
                        (conveyor.score_records(model, request_ids=["ok", "x'; DROP TABLE scores"]), "request_ids"),
                        (conveyor.score_records(model, request_ids=["r"] * 1001), "request_ids"),
                        (conveyor.score_records(model, request_ids=[]), "request_ids"),
                        (conveyor.score_records(model, request_ids="r1"), "request_ids"),
                        (conveyor.score_records(model, request_ids=[None]), "request_ids"),
                        (conveyor.score_jobs(model, candidate_id="../x"), "candidate_id")):
        with pytest.raises(QueryRefused) as refused:
            await call
        assert refused.value.field == field


async def test_schedules_are_listed_with_what_they_do_and_removed_once(conveyor, cancer, tmp_path):
    from tests.integration.test_training import config
    from tests.support.datasets import cancer_csv

    dataset, _ = cancer
    path = cancer_csv(tmp_path / "later.csv")
    ingest_id = await conveyor.schedule_ingest(dataset, path, "0 0 1 1 *", key="id", label="label")
    train_id = await conveyor.schedule_training(config("later", dataset, "[[candidates]]\nname = \"lr\"\n"
                                                       "algorithm = \"sklearn.logistic_regression\"\n"), "0 0 1 1 *")
    listed = {s.schedule_id: s for s in await conveyor.schedule_list()}
    assert (listed[ingest_id].kind, listed[ingest_id].cron, listed[ingest_id].n_runs) == ("ingest", "0 0 1 1 *", 0)
    assert listed[ingest_id].detail["dataset"] == dataset and listed[ingest_id].detail["path"].endswith("later.csv")
    assert listed[train_id].what == f"train model 'later' on dataset {dataset!r}"
    assert (listed[ingest_id].next_run_at.month, listed[ingest_id].next_run_at.day) == (1, 1)
    for schedule_id in (ingest_id, train_id):
        await conveyor.unschedule(schedule_id)
        with pytest.raises(QueryRefused) as refused:
            await conveyor.unschedule(schedule_id)
        assert refused.value.field == "schedule_id" and "no schedule" in refused.value.reason
    assert not {ingest_id, train_id} & {s.schedule_id for s in await conveyor.schedule_list()}
    with pytest.raises(QueryRefused) as refused:
        await conveyor.unschedule("x' OR '1'='1")
    assert refused.value.field == "schedule_id"


async def test_a_deploy_and_its_rollback_show_in_the_lineage_of_both_versions(conveyor, used):
    model, _, _ = used
    await conveyor.deploy(model, 2)
    await conveyor.rollback(model)
    one, two = await conveyor.lineage(model, 1), await conveyor.lineage(model, 2)
    moves = [("model.deployed", None, 1), ("model.deployed", 1, 2), ("model.rollback", 2, 1)]
    assert [(e.action, e.previous_version, e.version) for e in one.deployments[0].history] == moves
    assert [(e.action, e.previous_version, e.version) for e in two.deployments[0].history] == moves[1:]
    assert (one.deployments[0].aliases, two.deployments[0].aliases) == (["production"], ["previous"])
    assert two.scores.n_online == 0 and one.scores.n_online == N_ONLINE
