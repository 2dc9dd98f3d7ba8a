"""A model trained directly on a join of two sources (the breast-cancer measurements split
into two CSV files keyed by patient id): the join's run is a feature set of the join's name,
training names it as its dataset, and the deployed model answers raw requests naming both
sources' columns, and requests by entity key, exactly like the same model in this process."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from client import demo_data as data
from client.errors import SubmitRefused
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def _joined_set(conveyor, name: str):
    found = await conveyor.feature_sets(name)
    return found[0] if found and found[0].n_rows == 569 else None


async def test_a_model_trained_on_a_join_serves_raw_requests_of_both_sources(conveyor, db, tmp_path):
    tag = uuid.uuid4().hex[:6]
    means, worst, joined, model = f"means-{tag}", f"worst-{tag}", f"joined-{tag}", f"onjoin-{tag}"
    files = data.write_sources(tmp_path)
    columns, rows = data.cancer_table()
    mean_columns, worst_columns = data.split_columns(columns)
    await conveyor.set_feature_spec(means, data.numeric_spec(mean_columns, label="label"))
    await conveyor.set_feature_spec(worst, data.numeric_spec(worst_columns))
    await conveyor.define_join(joined, [means, worst])
    for dataset, path, label in ((means, files["means"], "label"), (worst, files["worst"], None)):
        await conveyor.wait_ingested(await conveyor.ingest(dataset, path, key="id", label=label), dataset,
                                     timeout_s=120)
    feature_set = await eventually(lambda: _joined_set(conveyor, joined), timeout_s=120,
                                   what="the join's feature set")
    assert list(feature_set.feature_names) == [f"{means}.{c}" for c in mean_columns] + \
        [f"{worst}.{c}" for c in worst_columns]

    done = await conveyor.wait_trained(await conveyor.train(data.training_config(model, joined, data.CANDIDATES[:1])),
                                       timeout_s=300)
    [candidate] = [c for c in await conveyor.candidates(model) if c["run_id"] == done.run_id]
    assert candidate["feature_set_id"] == feature_set.feature_set_id and candidate["metrics"]["roc_auc"] > 0.95
    lineage = await conveyor.lineage(model, candidate["version"])
    assert lineage.feature_set.dataset == joined

    await conveyor.deploy(model, candidate["version"], replicas=1)
    local = await conveyor.load_candidate(candidate["candidate_id"])
    at = {c: i for i, c in enumerate(columns)}
    order = mean_columns + worst_columns
    for key, values, _ in rows[:25]:
        raw = {c: values[at[c]] for c in columns}                 # every column of both sources, once
        by_features = await conveyor.score(model, raw, deadline_ms=5000)
        by_key = await conveyor.score(model, entity_key=key, deadline_ms=5000)
        assert by_features.answered_by == by_key.answered_by == "primary"
        assert by_features.score == by_key.score and by_features.label == by_key.label
        vector = np.asarray([[values[at[c]] for c in order]])          # the join's order: means, then worst
        assert by_features.score == pytest.approx(float(local.predict_proba(vector)[0, 1]), abs=1e-12)
        assert by_features.label == str(local.predict(vector)[0])


async def test_a_join_needs_a_name_of_its_own_and_datasets_as_sources(conveyor):
    tag = uuid.uuid4().hex[:6]
    a, b, joined = f"ja-{tag}", f"jb-{tag}", f"jj-{tag}"
    await conveyor.set_feature_spec(a, data.numeric_spec(["x"]))
    await conveyor.define_join(joined, [a, b])
    for call, field in ((conveyor.define_join(a, [joined, b]), "name"),          # a is a dataset
                        (conveyor.define_join(f"jk-{tag}", [joined, b]), "sources"),   # a join as a source
                        (conveyor.define_join(b, [a, f"jc-{tag}"]), "name"),     # b is a source of a join
                        (conveyor.define_join(joined, [joined, a]), "sources"),  # its own source
                        (conveyor.define_join(f"jl-{tag}", "ab"), "sources"),
                        (conveyor.set_feature_spec(joined, data.numeric_spec(["x"])), "dataset")):
        with pytest.raises(SubmitRefused) as refused:
            await call
        assert refused.value.field == field
