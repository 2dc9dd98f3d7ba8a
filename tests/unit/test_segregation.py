"""Tests for ml.segregation: properties of every strategy, errors, warnings, doctests."""

from __future__ import annotations

import dataclasses
import doctest
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ml.segregation
from ml.segregation import (
    SegregationError,
    Split,
    SplitStrategy,
    SplitWarning,
    WarningCode,
    available_strategies,
    register_strategy,
    split,
    train_size,
    unregister_strategy,
)

BUILTIN = [strategy.value for strategy in SplitStrategy]
CUSTOM = "test_reverse_sequential"
FAST = settings(max_examples=40, deadline=None)

ratios = st.floats(min_value=0.0, max_value=1.0, exclude_min=True, exclude_max=True)
seeds = st.integers(min_value=0, max_value=2**32)


@st.composite
def labelled_rows(draw, max_rows: int = 200, max_classes: int = 5):
    """(n_rows, labels): labels drawn from a few classes, some possibly tiny."""
    n_rows = draw(st.integers(min_value=2, max_value=max_rows))
    n_classes = draw(st.integers(min_value=1, max_value=max_classes))
    label = st.integers(0, n_classes - 1)
    labels = draw(st.lists(label, min_size=n_rows, max_size=n_rows))
    return n_rows, np.array(labels)


def reverse_sequential(n_rows, labels, ratio, seed):
    """Custom strategy under test: the last rows go to train."""
    n_test = n_rows - train_size(n_rows, ratio)
    return np.arange(n_test, n_rows), np.arange(n_test)


@pytest.fixture(scope="module", autouse=True)
def custom_strategy():
    register_strategy(CUSTOM, reverse_sequential)
    yield
    unregister_strategy(CUSTOM)


def register_returning(name, result):
    register_strategy(name, lambda n_rows, labels, ratio, seed: result, replace=True)


def assert_partition(s: Split, n_rows: int) -> None:
    assert s.train_idx.dtype == np.int64 and s.test_idx.dtype == np.int64
    assert s.n_train > 0 and s.n_test > 0
    assert np.intersect1d(s.train_idx, s.test_idx).size == 0
    assert np.array_equal(np.sort(np.concatenate([s.train_idx, s.test_idx])), np.arange(n_rows))


def is_sorted(rows: np.ndarray) -> bool:
    return bool((rows[1:] > rows[:-1]).all())


# ----------------------------------------------------------------------------- doctests


def test_doctests_pass():
    result = doctest.testmod(ml.segregation)
    assert result.attempted > 0
    assert result.failed == 0


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("strategy", [*BUILTIN, CUSTOM])
@FAST
@given(rows=labelled_rows(), ratio=ratios, seed=seeds)
def test_every_strategy_partitions_all_rows(strategy, rows, ratio, seed):
    n_rows, labels = rows
    s = split(n_rows, strategy=strategy, ratio=ratio, seed=seed, labels=labels)
    assert_partition(s, n_rows)


@pytest.mark.parametrize("strategy", [*BUILTIN, CUSTOM])
@FAST
@given(rows=labelled_rows(), ratio=ratios, seed=seeds)
def test_every_strategy_is_deterministic_for_a_seed(strategy, rows, ratio, seed):
    n_rows, labels = rows
    first = split(n_rows, strategy=strategy, ratio=ratio, seed=seed, labels=labels)
    again = split(n_rows, strategy=strategy, ratio=ratio, seed=seed, labels=list(labels))
    assert first == again


@pytest.mark.parametrize("strategy", ["sequential", "random", "shuffled", CUSTOM])
@FAST
@given(n_rows=st.integers(2, 500), ratio=ratios, seed=seeds)
def test_train_size_follows_the_rounding_rule(strategy, n_rows, ratio, seed):
    s = split(n_rows, strategy=strategy, ratio=ratio, seed=seed)
    expected = min(max(math.floor(ratio * n_rows + 0.5), 1), n_rows - 1)
    assert s.n_train == expected == train_size(n_rows, ratio)
    assert abs(s.n_train - ratio * n_rows) <= 1


@FAST
@given(rows=labelled_rows(), ratio=ratios, seed=seeds)
def test_stratified_train_size_within_n_classes_rows(rows, ratio, seed):
    n_rows, labels = rows
    s = split(n_rows, strategy="stratified", ratio=ratio, seed=seed, labels=labels)
    assert abs(s.n_train - ratio * n_rows) <= np.unique(labels).size


@FAST
@given(rows=labelled_rows(), ratio=ratios, seed=seeds)
def test_stratified_keeps_each_class_on_both_sides(rows, ratio, seed):
    n_rows, labels = rows
    s = split(n_rows, strategy="stratified", ratio=ratio, seed=seed, labels=labels)
    assert is_sorted(s.train_idx) and is_sorted(s.test_idx)
    for label in np.unique(labels):
        n_class = int((labels == label).sum())
        n_class_train = int((labels[s.train_idx] == label).sum())
        if n_class >= 2:
            assert 1 <= n_class_train <= n_class - 1
            assert abs(n_class_train - ratio * n_class) <= 1


@FAST
@given(n_rows=st.integers(2, 300), ratio=ratios)
def test_sequential_keeps_order(n_rows, ratio):
    s = split(n_rows, strategy="sequential", ratio=ratio)
    assert np.array_equal(s.train_idx, np.arange(s.n_train))
    assert np.array_equal(s.test_idx, np.arange(s.n_train, n_rows))


@FAST
@given(n_rows=st.integers(2, 300), ratio=ratios, seed=seeds)
def test_random_sorts_and_shuffled_permutes_the_same_rows(n_rows, ratio, seed):
    randomly = split(n_rows, strategy="random", ratio=ratio, seed=seed)
    shuffled = split(n_rows, strategy="shuffled", ratio=ratio, seed=seed)
    assert is_sorted(randomly.train_idx) and is_sorted(randomly.test_idx)
    assert np.array_equal(np.sort(shuffled.train_idx), randomly.train_idx)
    assert np.array_equal(np.sort(shuffled.test_idx), randomly.test_idx)


@FAST
@given(rows=labelled_rows(max_rows=60), ratio=ratios, seed=seeds)
def test_take_selects_the_split_rows(rows, ratio, seed):
    n_rows, labels = rows
    X = np.arange(n_rows * 3).reshape(n_rows, 3)
    s = split(X, ratio=ratio, seed=seed, labels=labels)
    X_train, X_test = s.take(X)
    assert np.array_equal(X_train[:, 0] // 3, s.train_idx)
    assert np.array_equal(X_test[:, 0] // 3, s.test_idx)
    X_train2, X_test2, y_train, y_test = s.take(X, labels)
    assert np.array_equal(X_train2, X_train) and np.array_equal(X_test2, X_test)
    assert np.array_equal(y_train, labels[s.train_idx])
    assert np.array_equal(y_test, labels[s.test_idx])


# ------------------------------------------------------------------------ other behaviour


@pytest.mark.parametrize("strategy", ["random", "shuffled", "stratified"])
def test_different_seeds_give_different_splits(strategy):
    labels = np.arange(200) % 3
    first = split(200, strategy=strategy, seed=0, labels=labels)
    second = split(200, strategy=strategy, seed=1, labels=labels)
    assert not np.array_equal(first.train_idx, second.train_idx)


def test_split_records_its_inputs_and_accepts_enum_and_numpy_scalars():
    s = split(
        np.int64(50),
        strategy=SplitStrategy.STRATIFIED,
        ratio=np.float32(0.5),
        seed=np.int32(3),
        labels=np.arange(50) % 2,
    )
    assert (s.strategy, s.ratio, s.seed) == ("stratified", 0.5, 3)
    assert type(s.strategy) is str and type(s.seed) is int


def test_data_length_gives_n_rows():
    assert split([[1], [2], [3], [4]], strategy="sequential", ratio=0.5).n_rows == 4
    assert split(np.zeros((6, 2)), strategy="sequential").n_rows == 6


def test_all_singleton_classes_still_fill_both_sides():
    s = split(3, strategy="stratified", ratio=0.2, labels=["a", "b", "c"])
    assert (s.n_train, s.n_test) == (1, 2)


def test_split_is_immutable():
    s = split(20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.ratio = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError):
        s.train_idx[0] = 3
    with pytest.raises(TypeError):
        hash(s)


def test_split_constructed_directly_is_checked():
    s = Split([2, 0], [1], strategy="hand", ratio=0.6, seed=0)
    assert s.train_idx.tolist() == [2, 0] and s.n_rows == 3
    with pytest.raises(SegregationError) as caught:
        Split([0, 1], [1, 2], strategy="hand", ratio=0.5, seed=0)
    assert caught.value.field == "train_idx/test_idx"


def test_registry_lists_and_removes_custom_strategies():
    register_strategy("test_temporary", reverse_sequential)
    assert available_strategies()[-1] == "test_temporary"
    unregister_strategy("test_temporary")
    assert "test_temporary" not in available_strategies()
    assert available_strategies()[:4] == tuple(BUILTIN)


def test_custom_strategy_receives_arguments_and_order_is_kept():
    seen = {}

    def record(n_rows, labels, ratio, seed):
        seen.update(n_rows=n_rows, labels=labels, ratio=ratio, seed=seed)
        return [3, 1], [0, 2]

    register_strategy("test_record", record, replace=True)
    try:
        s = split(4, strategy="test_record", ratio=0.5, seed=9, labels=["x", "y", "x", "y"])
    finally:
        unregister_strategy("test_record")
    assert s.train_idx.tolist() == [3, 1] and s.test_idx.tolist() == [0, 2]
    assert seen["n_rows"] == 4 and seen["ratio"] == 0.5 and seen["seed"] == 9
    assert seen["labels"].tolist() == ["x", "y", "x", "y"]


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((1,), {}, "n_rows"),
        ((0,), {}, "n_rows"),
        ((-5,), {}, "n_rows"),
        ((True,), {}, "n_rows"),
        ((10.0,), {}, "n_rows"),
        ((np.array(5),), {}, "n_rows"),
        ((object(),), {}, "n_rows"),
        (([1],), {}, "n_rows"),
        ((10,), {"ratio": 0.0}, "ratio"),
        ((10,), {"ratio": 1.0}, "ratio"),
        ((10,), {"ratio": -0.2}, "ratio"),
        ((10,), {"ratio": 1.5}, "ratio"),
        ((10,), {"ratio": float("nan")}, "ratio"),
        ((10,), {"ratio": float("inf")}, "ratio"),
        ((10,), {"ratio": True}, "ratio"),
        ((10,), {"ratio": "0.8"}, "ratio"),
        ((10,), {"seed": True}, "seed"),
        ((10,), {"seed": 1.0}, "seed"),
        ((10,), {"seed": None}, "seed"),
        ((10,), {"seed": "1"}, "seed"),
        ((10,), {"seed": -1}, "seed"),
        ((10,), {"strategy": "nope"}, "strategy"),
        ((10,), {"strategy": 3}, "strategy"),
        ((10,), {"labels": [0, 1]}, "labels"),
        ((4,), {"labels": [[0], [1], [0], [1]]}, "labels"),
        ((3,), {"labels": [[0], [1, 2], [3]]}, "labels"),
        ((3,), {"labels": [1, "a", None], "strategy": "stratified"}, "labels"),
        ((10,), {"strategy": "stratified"}, "labels"),
        ((4,), {"strategy": "stratified", "labels": [0, 1, 0, 1], "with_labels": False}, "labels"),
        ((4,), {"labels": [0, 1, 0, 1], "with_labels": False}, "labels"),
        ((4,), {"with_labels": "yes"}, "with_labels"),
    ],
)
def test_bad_input_names_the_field(args, kwargs, field):
    with pytest.raises(SegregationError) as caught:
        split(*args, **kwargs)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.field == field and error.reason
    assert str(error) == f"{field}: {error.reason}"


@pytest.mark.parametrize(
    ("result", "reason_part"),
    [
        (([0, 1, 2], [2, 3]), "overlap"),
        (([0, 1], [2]), "incomplete"),
        (([0, 1, 2], [3, 4]), "out of range"),
        (([0, -1, 2], [3]), "out of range"),
        (([0, 0, 1, 2], [3]), "repeated"),
        (([0, 1, 2, 3], []), "non-empty"),
        (([0.0, 1.0], [2.0, 3.0]), "integer"),
        (([True, False], [True, False]), "integer"),
        (([[0, 1]], [2, 3]), "1-D"),
        ([0, 1, 2, 3], "must return"),
        (None, "must return"),
    ],
)
def test_bad_custom_result_is_refused(result, reason_part):
    register_returning("test_bad", result)
    try:
        with pytest.raises(SegregationError) as caught:
            split(4, strategy="test_bad")
    finally:
        unregister_strategy("test_bad")
    assert caught.value.field == "strategy"
    assert reason_part in caught.value.reason


@pytest.mark.parametrize(
    ("name", "fn", "field"),
    [
        ("", reverse_sequential, "name"),
        (3, reverse_sequential, "name"),
        ("random", reverse_sequential, "name"),
        (CUSTOM, reverse_sequential, "name"),
        ("test_not_callable", 42, "fn"),
    ],
)
def test_bad_registration_is_refused(name, fn, field):
    with pytest.raises(SegregationError) as caught:
        register_strategy(name, fn)
    assert caught.value.field == field


def test_unregistering_an_unknown_strategy_raises():
    with pytest.raises(SegregationError) as caught:
        unregister_strategy("random")
    assert caught.value.field == "name"


@pytest.mark.parametrize(
    ("X", "y", "field"),
    [(np.zeros((5, 2)), None, "X"), (np.zeros((4, 2)), [0, 1], "y"), (3.0, None, "X")],
)
def test_take_refuses_wrong_lengths(X, y, field):
    with pytest.raises(SegregationError) as caught:
        split(4).take(X, y)
    assert caught.value.field == field


def test_train_size_validates_its_inputs():
    with pytest.raises(SegregationError):
        train_size(1, 0.5)
    with pytest.raises(SegregationError):
        train_size(10, 1.0)


# ----------------------------------------------------------------------------- warnings


def codes(s: Split) -> list[WarningCode]:
    return [w.code for w in s.warnings]


def test_healthy_split_has_no_warnings_and_never_warns_through_python():
    labels = np.arange(1000) % 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = split(1000, strategy="stratified", ratio=0.8, labels=labels)
        split(12, ratio=0.99)
    assert s.warnings == ()


@pytest.mark.parametrize("ratio", [0.3, 0.49, 0.96])
def test_extreme_ratio_warns(ratio):
    s = split(1000, ratio=ratio)
    assert codes(s) == [WarningCode.EXTREME_RATIO]
    assert s.warnings[0].code == "extreme_ratio" and str(ratio) in s.warnings[0].message


@pytest.mark.parametrize("ratio", [0.5, 0.95])
def test_ratio_on_the_bounds_does_not_warn(ratio):
    assert split(1000, ratio=ratio).warnings == ()


def test_tiny_split_warns_per_small_side():
    s = split(12, strategy="sequential", ratio=0.8)
    assert codes(s) == [WarningCode.TINY_SPLIT]
    assert "test side has 2 rows" in s.warnings[0].message
    assert codes(split(6, strategy="sequential", ratio=0.5)) == [WarningCode.TINY_SPLIT] * 2


def test_class_with_few_rows_on_a_side_warns():
    labels = ["rare"] * 10 + ["common"] * 990
    s = split(1000, strategy="stratified", ratio=0.8, labels=labels)
    assert codes(s) == [WarningCode.CLASS_UNDERREPRESENTED]
    assert s.warnings[0].message == "class 'rare' in test: 2 rows (fewer than 5)"


def test_skewed_class_share_warns():
    labels = np.array([0] * 500 + [1] * 500)
    s = split(1000, strategy="sequential", ratio=0.6, labels=labels)
    messages = [w.message for w in s.warnings]
    assert codes(s) == [WarningCode.CLASS_UNDERREPRESENTED] * 4
    assert "class 0 in train: 83.3% of train against 50.0% overall" in messages
    assert "class 0 in test: 0 rows (fewer than 5); 0.0% of test against 50.0% overall" in messages


def test_warnings_are_ordered_ratio_size_then_classes():
    s = split(8, strategy="sequential", ratio=0.3, labels=[0, 0, 0, 0, 1, 1, 1, 1])
    expected_first = [WarningCode.EXTREME_RATIO, WarningCode.TINY_SPLIT, WarningCode.TINY_SPLIT]
    assert codes(s)[:3] == expected_first
    assert set(codes(s)[3:]) == {WarningCode.CLASS_UNDERREPRESENTED}
    assert all(isinstance(w, SplitWarning) for w in s.warnings)


def test_labels_are_checked_for_warnings_with_any_strategy():
    labels = [0] * 50 + [1] * 50
    assert WarningCode.CLASS_UNDERREPRESENTED in codes(split(100, strategy=CUSTOM, labels=labels))
    assert split(100, strategy=CUSTOM).warnings == ()
