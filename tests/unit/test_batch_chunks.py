"""A batch transformed in pieces gives what the whole batch gives: the same vectors in the
same order, the same labels, the same quality report (kept rows, quarantined rows with
their reasons, counts, schema), for every built-in transform and hostile rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.batch_chunks import BatchInChunks
from ml.features import FeatureSpec, StepSpec, fit_feature_set
from ml.transforms import FeatureSpecError
from tests.unit.test_features import BUILTINS, FAST, FITTED, TRAIN, raw_rows

not_rows = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2))
batches = st.lists(st.one_of(raw_rows(), st.lists(not_rows, min_size=1, max_size=2)), min_size=0, max_size=4).map(
    lambda parts: [row for part in parts for row in part])


def assert_same_as_whole(fitted, rows, chunk_rows, with_label=None):
    X, y, report = fitted.transform_batch(rows, with_label=with_label)
    batch = BatchInChunks(fitted, rows, chunk_rows, with_label=with_label)
    chunks = list(batch)
    assert [c.start for c in chunks] == list(range(0, len(rows), chunk_rows))
    assert np.array_equal(np.concatenate([c.X for c in chunks]) if chunks else X, X)
    if y is None:
        assert all(c.y is None for c in chunks)
    else:
        assert np.array_equal(np.concatenate([c.y for c in chunks]), y)
    assert batch.report() == report
    assert [c.report.kept for c in chunks] == [tuple(i for i in report.kept if c.start <= i < c.start + c.n_rows)
                                               for c in chunks]


@pytest.mark.parametrize("name", BUILTINS)
@FAST
@given(rows=batches, chunk_rows=st.integers(1, 5))
def test_pieces_give_the_whole_batch(name, rows, chunk_rows):
    assert_same_as_whole(FITTED[name], rows, chunk_rows)


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
def test_training_rows_with_labels_in_pieces(chunk_rows):
    assert_same_as_whole(FITTED["scale"], TRAIN, chunk_rows, with_label=True)


def test_a_column_missing_from_every_row_is_reported_once_and_one_present_somewhere_is_not():
    fitted = fit_feature_set(FeatureSpec(steps=[StepSpec("a", "numeric", ["a"]), StepSpec("b", "numeric", ["b"])]),
                             [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}])
    rows = [{"a": 1.0}, None, {"a": 2.0}, {"a": 3.0, "b": 1.0, "extra": 1}, "not a row"]
    for chunk_rows in (1, 2, 3):
        assert_same_as_whole(fitted, rows, chunk_rows)
    batch = BatchInChunks(fitted, [{"a": 1.0}, 7, {"a": 2.0}], 1)
    list(batch)
    assert batch.report().missing_columns == ("b",)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10", None])
def test_a_bad_chunk_size_is_refused_naming_the_field(bad):
    with pytest.raises(FeatureSpecError) as info:
        BatchInChunks(FITTED["scale"], TRAIN, bad)
    assert info.value.field == "chunk_rows"


def test_the_report_needs_every_piece_and_the_pieces_are_transformed_once():
    batch = BatchInChunks(FITTED["scale"], TRAIN, 3)
    pieces = iter(batch)
    next(pieces)
    with pytest.raises(RuntimeError, match="iterate over every chunk"):
        batch.report()
    list(pieces)
    with pytest.raises(RuntimeError, match="once"):
        list(batch)
    assert BatchInChunks(FITTED["scale"], [], 3).report().n_rows == 0
