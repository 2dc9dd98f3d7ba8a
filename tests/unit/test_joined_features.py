"""Unit tests of a join's feature set (ml.joined_features): the same numbers as its sources'
own feature sets side by side, offline and online, and bytes that round-trip or are refused."""

from __future__ import annotations

import numpy as np
import pytest

from ml.features import FeatureSpec, FeatureSpecError, StepSpec, fit_feature_set
from ml.joined_features import JoinedFeatureSet, load_feature_set
from ml.quality import QuarantineError

PEOPLE = [{"id": f"p{i}", "age": 20 + i, "city": ["oslo", "rome"][i % 2], "label": i % 2} for i in range(20)]
SPEND = [{"id": f"p{i}", "spend": 3.5 * i} for i in range(20)]


@pytest.fixture
def parts():
    people = fit_feature_set(FeatureSpec(key="id", label="label", steps=[
        StepSpec("age", "numeric", ["age"]), StepSpec("city", "onehot", ["city"]),
        StepSpec("age_scaled", "scale", ["age"])]), PEOPLE)
    spend = fit_feature_set(FeatureSpec(key="id", steps=[
        StepSpec("spend", "numeric", ["spend"]), StepSpec("spend_log", "log", ["spend"])]), SPEND)
    return people, spend


def test_a_row_gets_its_sources_vectors_side_by_side_online_and_offline(parts):
    people, spend = parts
    joined = JoinedFeatureSet("people", "r1", [("people", people), ("spend", spend)])
    assert joined.feature_names == tuple(f"people.{n}" for n in people.feature_names) + \
        tuple(f"spend.{n}" for n in spend.feature_names)
    rows = [{**p, **s} for p, s in zip(PEOPLE, SPEND)]
    X, y, report = joined.transform_batch(rows)
    expected = np.hstack([people.transform_batch(PEOPLE)[0], spend.transform_batch(SPEND)[0]])
    assert np.array_equal(X, expected) and y.tolist() == [r["label"] for r in PEOPLE]
    assert report.kept == tuple(range(20)) and report.feature_set_id == joined.feature_set_id
    for i, row in enumerate(rows):
        without_key = {k: v for k, v in row.items() if k not in ("id", "label")}
        assert np.array_equal(joined.transform_one(without_key), X[i])     # bit for bit, no key needed
    assert joined.spec.key is None and joined.spec.label == "label" and joined.n_features == X.shape[1]


def test_a_row_any_source_refuses_is_left_out_with_that_sources_reason(parts):
    people, spend = parts
    joined = JoinedFeatureSet("people", "r1", [("people", people), ("spend", spend)])
    rows = [{**PEOPLE[0], **SPEND[0]}, {**PEOPLE[1], "spend": -4.0}, {**PEOPLE[2], "age": "old", **SPEND[2]}]
    X, y, report = joined.transform_batch(rows)
    assert report.kept == (0,) and len(X) == 1 and y.tolist() == [0]
    assert [(q.index, q.reason.split(":")[0]) for q in report.quarantined] == [(1, "spend"), (2, "age")]
    with pytest.raises(QuarantineError) as refused:
        joined.transform_one(rows[1])
    assert "spend" in str(refused.value)


def test_bytes_round_trip_and_altered_or_foreign_bytes_are_refused(parts):
    people, spend = parts
    joined = JoinedFeatureSet("people", "r1", [("people", people), ("spend", spend)])
    again = load_feature_set(joined.to_bytes())
    assert isinstance(again, JoinedFeatureSet) and again.feature_set_id == joined.feature_set_id
    assert again.sources == [("people", people.feature_set_id), ("spend", spend.feature_set_id)]
    assert load_feature_set(people.to_bytes()).feature_set_id == people.feature_set_id   # a plain set too
    assert JoinedFeatureSet("people", "r2", joined.parts).feature_set_id != joined.feature_set_id   # a run each
    altered = joined.to_bytes().replace(b'"scale"', b'"log"', 1)
    for bad in (altered, b'{"joined": "x", "run_id": "r", "parts": []}', b'{"joined": 1}', b"\x00" * 10,
                joined.to_bytes().replace(b'{"joined":"people"', b'{"joined" : "people"')):
        with pytest.raises(FeatureSpecError) as refused:
            load_feature_set(bad)
        assert refused.value.field.startswith("bytes") or refused.value.field == "parts"
    with pytest.raises(FeatureSpecError):
        JoinedFeatureSet("people", "r1", [("people", people)])
