"""Tests for ml.quality and the data-quality report of feature sets: schema, missing values,
type errors, out-of-range values, quarantine with reasons, the online refusal."""

from __future__ import annotations

import math
from datetime import datetime

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.features import FeatureSpec, StepSpec, fit_feature_set
from ml.quality import (
    MAX_EPOCH_S,
    MIN_EPOCH_S,
    Problem,
    QualityCollector,
    QualityReport,
    QuarantinedRow,
    QuarantineError,
    coerce_column,
    is_missing,
    show,
)

FAST = settings(max_examples=40, deadline=None)


def step(name, transform, columns=(), **params):
    return StepSpec(name, transform, list(columns), params)


# --------------------------------------------------------------------------- reading raw values


def test_numbers_accept_int_float_bool_and_refuse_text():
    read = coerce_column([1, 2.5, True, None, float("nan"), "3", float("inf"), 10**400, [1]], "number")
    assert read.values[:3].tolist() == [1.0, 2.5, 1.0] and np.isnan(read.values[3:]).all()
    assert read.missing.tolist() == [False, False, False, True, True, False, False, False, False]
    assert [(i, p) for i, p, _ in read.issues] == [(5, Problem.TYPE_ERROR), (6, Problem.OUT_OF_RANGE),
                                                   (7, Problem.OUT_OF_RANGE), (8, Problem.TYPE_ERROR)]
    assert read.issues[0][2] == "expected a number; got str '3'"


def test_categories_are_text_of_the_value():
    read = coerce_column(["a", 1, True, 1.5, None, float("inf"), {"x": 1}], "category")
    assert read.values.tolist() == ["a", "1", "True", "1.5", None, None, None]
    assert [p for _, p, _ in read.issues] == [Problem.OUT_OF_RANGE, Problem.TYPE_ERROR]


def test_text_must_be_str():
    read = coerce_column(["ok", 5, None], "text")
    assert read.values.tolist() == ["ok", None, None] and read.issues[0][:2] == (1, Problem.TYPE_ERROR)


def test_datetimes_from_iso_text_or_epoch_seconds():
    read = coerce_column(["1970-01-02", "1970-01-01T01:00:00+01:00", 86400, "tomorrow", True,
                          MAX_EPOCH_S + 1, "0001-01-01T00:00:00+01:00"], "datetime")
    assert read.values[:3].tolist() == [86400.0, 0.0, 86400.0]
    assert [(i, p) for i, p, _ in read.issues] == [(3, Problem.TYPE_ERROR), (4, Problem.TYPE_ERROR),
                                                   (5, Problem.OUT_OF_RANGE), (6, Problem.OUT_OF_RANGE)]


@FAST
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_every_datetime_in_range_is_read(moment):
    seconds = coerce_column([moment.isoformat()], "datetime").values[0]
    assert MIN_EPOCH_S <= seconds <= MAX_EPOCH_S


def test_raw_keeps_values_and_unknown_type_is_refused():
    read = coerce_column([{"a": 1}, None], "raw")
    assert read.values[0] == {"a": 1} and read.missing.tolist() == [False, True] and read.issues == []
    with pytest.raises(ValueError):
        coerce_column([1], "decimal")


def test_show_escapes_and_cuts():
    assert show("a\nb\x00") == "'a\\nb\\x00'"
    assert len(show("x" * 500)) == 40 and show("x" * 500).endswith("...")
    assert is_missing(None) and is_missing(float("nan")) and not is_missing(0) and not is_missing("")


# --------------------------------------------------------------------------- the report


def test_collector_builds_a_report_with_reasons_and_counts():
    quality = QualityCollector(4)
    quality.add(2, "age", Problem.TYPE_ERROR, "expected a number; got str 'x'")
    quality.add(2, "city", Problem.OUT_OF_RANGE, "too far")
    quality.add(0, None, Problem.TYPE_ERROR, "not a mapping")
    report = quality.report(keys=["k0", "k1", "k2", "k3"], missing_values={"age": 0})
    assert report.kept == (1, 3) and report.n_quarantined == 2 and not report.ok
    assert report.quarantined[0] == QuarantinedRow(0, "row: type error: not a mapping", None, Problem.TYPE_ERROR, "k0")
    assert report.quarantined[1].reason == ("age: type error: expected a number; got str 'x'; "
                                            "city: out of range: too far")
    assert report.type_errors == {"age": 1} and report.out_of_range == {"city": 1}
    assert quality.first_reason() == "row 0: row: type error: not a mapping"


def test_report_is_frozen_and_serializable():
    report = QualityReport(n_rows=1, kept=(0,), missing_values={"a": 0})
    with pytest.raises(AttributeError):
        report.n_rows = 2
    again = msgspec.json.decode(msgspec.json.encode(report), type=QualityReport)
    assert again == report and report.ok and report.summary() == "1 rows: 1 kept, 0 quarantined"


def test_quarantine_error_carries_the_row():
    row = QuarantinedRow(0, "x: missing value: no value", "x", Problem.MISSING_VALUE)
    err = QuarantineError(row)
    assert err.row is row and err.field == "x" and str(err) == row.reason
    import pickle

    assert pickle.loads(pickle.dumps(err)).row == row


# --------------------------------------------------------------------------- feature-set reports

SPEC = FeatureSpec(steps=[
    step("age", "numeric", ["age"], min=0, max=130),
    step("income", "numeric", ["income"]),
    step("city", "onehot", ["city"]),
    step("fill", "impute", ["income"], strategy="median"),
    step("income_log", "log", ["income"]),
], label="y", key="id")
TRAIN = [{"id": i, "age": 20 + i, "income": 1000.0 * i, "city": ["a", "b"][i % 2], "y": i % 2} for i in range(10)]
FS = fit_feature_set(SPEC, TRAIN)


def test_a_clean_batch_is_ok():
    X, y, report = FS.transform_batch(TRAIN)
    assert report.ok and report.kept == tuple(range(10)) and X.shape == (10, 4)
    assert report.expected_columns == ("age", "income", "city", "id", "y")
    assert report.missing_values == dict.fromkeys(report.expected_columns, 0)
    assert report.feature_set_id == FS.feature_set_id
    assert FS.fit_report.ok


def test_schema_missing_and_unexpected_columns():
    rows = [{"id": 1, "age": 30, "income": 5.0, "y": 0, "extra": 1, "other": None}]
    X, y, report = FS.transform_batch(rows)
    assert report.missing_columns == ("city",) and report.unexpected_columns == ("extra", "other")
    assert report.missing_values["city"] == 1
    assert [q.reason for q in report.quarantined] == [
        "city: missing value: no value, and no impute step fills feature 'city.a'"]
    assert "missing columns: city" in report.summary()


def test_imputed_missing_values_are_counted_but_not_errors():
    rows = [{"id": 1, "age": 30, "income": None, "city": "a", "y": 1},
            {"id": 2, "age": 31, "city": "b", "y": 0},
            {"id": 3, "age": 32, "income": float("nan"), "city": "b", "y": 0}]
    X, y, report = FS.transform_batch(rows)
    assert report.ok and report.missing_values["income"] == 3 and X.shape == (3, 4)
    assert X[0, 1] == math.log1p(4500.0)  # the training median, then log1p
    assert y.tolist() == [1, 0, 0]


def test_unimputed_missing_value_quarantines_its_row_only():
    rows = [{"id": 1, "age": None, "income": 1.0, "city": "a", "y": 1},
            {"id": 2, "age": 40, "income": 1.0, "city": "a", "y": 0}]
    X, y, report = FS.transform_batch(rows)
    assert report.kept == (1,) and y.tolist() == [0]
    bad = report.quarantined[0]
    assert (bad.index, bad.column, bad.problem, bad.key) == (0, "age", Problem.MISSING_VALUE, 1)
    assert bad.reason == "age: missing value: no value, and no impute step fills feature 'age'"


def test_type_errors_and_out_of_range_values():
    rows = [{"id": 1, "age": "thirty", "income": 1.0, "city": "a", "y": 1},
            {"id": 2, "age": 200, "income": 1.0, "city": "a", "y": 1},
            {"id": 3, "age": 30, "income": -5.0, "city": "a", "y": 1},
            {"id": 4, "age": 30, "income": 1.0, "city": ["a"], "y": 1},
            {"id": 5, "age": float("inf"), "income": 1.0, "city": "a", "y": 1},
            {"id": 6, "age": 30, "income": 1.0, "city": "zzz", "y": 1}]
    X, y, report = FS.transform_batch(rows)
    assert report.kept == (5,) and X[0, 2:].tolist() == [0.0, 0.0]  # unknown city: zeros
    reasons = {q.index: q.reason for q in report.quarantined}
    assert reasons[0] == "age: type error: expected a number; got str 'thirty'"
    assert reasons[1] == "age: out of range: 200.0 is above the maximum 130.0 (step 'age')"
    assert reasons[2] == "income: out of range: -5.0 is negative; log needs values >= 0 (step 'income_log')"
    assert reasons[3] == "city: type error: expected a category (str or number); got list ['a']"
    assert reasons[4] == "age: out of range: inf is not finite"
    assert report.type_errors == {"age": 1, "city": 1} and report.out_of_range == {"age": 2, "income": 1}


def test_bad_rows_keys_and_labels_are_quarantined_with_reasons():
    rows = [["not", "a", "dict"], None,
            {"age": 30, "income": 1.0, "city": "a", "y": 1},
            {"id": 2.5, "age": 30, "income": 1.0, "city": "a", "y": 1},
            {"id": 3, "age": 30, "income": 1.0, "city": "a", "y": "yes"},
            {"id": 4, "age": 30, "income": 1.0, "city": "a", "y": None},
            {"id": "k5", "age": 30, "income": 1.0, "city": "a", "y": 1.0}]
    X, y, report = FS.transform_batch(rows)
    assert report.kept == (6,) and y.tolist() == [1] and y.dtype == np.int64
    reasons = [q.reason for q in report.quarantined]
    assert reasons == [
        "row: type error: expected a mapping of column names to values; got list",
        "row: type error: expected a mapping of column names to values; got NoneType",
        "id: missing value: no key",
        "id: type error: expected a str or int key; got float 2.5",
        "y: type error: expected a numeric label; got str 'yes'",
        "y: missing value: no label",
    ]
    assert [q.key for q in report.quarantined] == [None, None, None, None, 3, 4]


def test_online_path_refuses_a_bad_row_with_the_batch_reason():
    row = {"id": 1, "age": -1, "income": 1.0, "city": "a"}
    with pytest.raises(QuarantineError) as info:
        FS.transform_one(row)
    _, _, report = FS.transform_batch([row])
    assert info.value.row.reason == report.quarantined[0].reason
    assert info.value.row.problem == Problem.OUT_OF_RANGE and info.value.field == "age"


def test_training_rows_with_problems_are_reported_not_dropped():
    rows = TRAIN + [{"id": 99, "age": "x", "income": 1.0, "city": "a", "y": 1}, {"id": 100, "y": 0}]
    fs = fit_feature_set(SPEC, rows)
    assert fs.fit_report.n_rows == 12 and fs.fit_report.kept == tuple(range(10))
    assert [q.index for q in fs.fit_report.quarantined] == [10, 11]
    assert fs.steps[2].state == FS.steps[2].state  # the bad rows did not shape the fit


def test_minority_label_types_are_quarantined_at_fit():
    rows = [{"id": i, "age": 30, "income": 1.0, "city": "a", "y": y} for i, y in enumerate([0, 1, 1, "x"])]
    fs = fit_feature_set(SPEC, rows)
    assert fs.label_kind == "int" and fs.fit_report.quarantined[0].reason.startswith("y: type error")


cell = st.one_of(st.none(), st.integers(-50, 300), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=3), st.booleans(), st.lists(st.integers(), max_size=1))


@FAST
@given(st.lists(st.fixed_dictionaries({}, optional={"id": cell, "age": cell, "income": cell, "city": cell,
                                                     "y": cell, "other": cell}), max_size=8))
def test_every_row_is_either_kept_or_quarantined_with_a_reason(rows):
    X, y, report = FS.transform_batch(rows)
    assert sorted(report.kept + tuple(q.index for q in report.quarantined)) == list(range(len(rows)))
    assert X.shape == (report.n_kept, FS.n_features) and np.isfinite(X).all()
    assert y is None or len(y) == report.n_kept
    for q in report.quarantined:
        assert q.reason and q.problem in Problem and (q.column is None or q.reason.startswith(q.column))
