"""The configuration service on the session cluster: every change of a feature spec or a
training trigger is a new version kept append-only with an audit record, the actors read
the current one, and learners are listed with their revisions."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from client.data import QueryRefused
from tests.support.datasets import NUMERIC_SPEC

pytestmark = pytest.mark.integration

SPEC_B = NUMERIC_SPEC.replace('name = "', 'name = "b_', 1)
TRAIN = ('model = "{model}"\ndataset = "{dataset}"\n[[candidates]]\nname = "lr"\n'
         'algorithm = "sklearn.logistic_regression"\n')


async def test_each_change_is_a_version_with_an_audit_record_and_the_actors_read_the_current(conveyor, db):
    dataset = f"conf-{uuid.uuid4().hex[:8]}"
    assert await conveyor.set_feature_spec(dataset, NUMERIC_SPEC) == 1
    assert await conveyor.set_feature_spec(dataset, SPEC_B) == 2
    assert await conveyor.set_feature_spec(dataset, SPEC_B) == 2           # the same text: no new version
    history = await conveyor.config_history("feature_spec", dataset)
    assert [(c.version, c.body) for c in history] == [(2, SPEC_B), (1, NUMERIC_SPEC)]
    assert (await conveyor.config("feature_spec", dataset, 1)).body == NUMERIC_SPEC
    assert (await conveyor.config("feature_spec", dataset)).version == 2
    assert await db.fetchval("SELECT spec_toml FROM feature_specs WHERE dataset = $1", dataset) == SPEC_B
    audit = await conveyor.audit(action="config.changed", subject=dataset)
    assert [(r.detail["kind"], r.detail["version"]) for r in audit] == [("feature_spec", 2), ("feature_spec", 1)]
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("UPDATE configs SET body = 'x' WHERE kind = 'feature_spec' AND name = $1", dataset)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("DELETE FROM configs WHERE kind = 'feature_spec' AND name = $1", dataset)


async def test_concurrent_changes_get_distinct_versions(conveyor):
    dataset = f"conc-{uuid.uuid4().hex[:8]}"
    specs = [NUMERIC_SPEC.replace('name = "', f'name = "v{i}_', 1) for i in range(6)]
    versions = await asyncio.gather(*(conveyor.set_feature_spec(dataset, spec) for spec in specs))
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]
    history = await conveyor.config_history("feature_spec", dataset)
    assert sorted(c.body for c in history) == sorted(specs)


async def test_triggers_and_learners_are_listed_with_their_versions(conveyor, cancer):
    dataset, _ = cancer
    trigger_dataset = f"trig-{uuid.uuid4().hex[:8]}"
    assert await conveyor.set_training_trigger(trigger_dataset, TRAIN.format(model="m1", dataset=dataset)) == 1
    learner = f"confl-{uuid.uuid4().hex[:8]}"
    toml = f'name = "{learner}"\nstream = "s"\n[model]\nalgorithm = "river.logistic_regression"\n'
    await conveyor.create_learner(toml, timeout_s=60)
    listed = {(c.kind, c.name): c.version for c in await conveyor.configs()}
    assert listed[("training_trigger", trigger_dataset)] == 1 and listed[("learner", learner)] == 1
    assert all(c.kind == "learner" for c in await conveyor.configs("learner"))
    await conveyor.remove_learner(learner)
    assert ("learner", learner) not in {(c.kind, c.name) for c in await conveyor.configs()}
    assert [c.removed for c in await conveyor.config_history("learner", learner)] == [True, False]


@pytest.mark.parametrize("call, field", [
    (lambda c: c.config_history("passwords", "x"), "kind"),
    (lambda c: c.config_history("feature_spec", "x'; DROP TABLE configs;--"), "name"),
    (lambda c: c.config_history("feature_spec", "../../etc/passwd"), "name"),
    (lambda c: c.config_history("feature_spec", f"never-{uuid.uuid4().hex[:6]}"), "name"),
    (lambda c: c.config("feature_spec", "x" * 64), "name"),
    (lambda c: c.configs("learner; DROP"), "kind"),
])
async def test_bad_queries_are_refused_naming_the_field(conveyor, call, field):
    with pytest.raises(QueryRefused) as info:
        await call(conveyor)
    assert info.value.field == field


async def test_a_version_that_does_not_exist_is_refused(conveyor):
    dataset = f"vers-{uuid.uuid4().hex[:8]}"
    await conveyor.set_feature_spec(dataset, NUMERIC_SPEC)
    for bad in (0, -1, 2, True, "1"):
        with pytest.raises(QueryRefused) as info:
            await conveyor.config("feature_spec", dataset, bad)
        assert info.value.field == "version"


async def test_adding_and_removing_a_schedule_is_audited(conveyor, tmp_path):
    dataset = f"sched-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "rows.csv"
    path.write_text("id,x,label\na,1.0,0\nb,2.0,1\n")
    schedule_id = await conveyor.schedule_ingest(dataset, str(path), "0 0 1 1 *", key="id", label="label")
    await conveyor.unschedule(schedule_id)
    records = await conveyor.audit(subject=schedule_id)
    assert [r.action for r in records] == ["schedule.removed", "schedule.added"]
    assert records[1].detail == {"cron": "0 0 1 1 *", "topic": "ingest", "dataset": dataset, "path": str(path)}
    with pytest.raises(QueryRefused):
        await conveyor.unschedule(schedule_id)                       # gone: refused, and not audited again
    assert len(await conveyor.audit(subject=schedule_id)) == 2
