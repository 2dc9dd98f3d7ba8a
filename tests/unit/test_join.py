import doctest

from hypothesis import given, settings
from hypothesis import strategies as st

import ml.join
from ml.join import Side, asof_join


def test_doctests():
    assert doctest.testmod(ml.join).failed == 0


def test_key_join_without_times_takes_each_entity_last_row():
    left = Side(keys=["a", "b"], vectors=[[1.0], [2.0]], labels=["0", "1"])
    right = Side(keys=["b", "a", "a"], vectors=[[5.0], [6.0], [7.0]])
    joined = asof_join(left, [right])
    assert joined.keys == ["a", "b"] and joined.vectors == [[1.0, 7.0], [2.0, 5.0]]
    assert joined.labels == ["0", "1"] and joined.n_unmatched == 0


def test_as_of_never_looks_into_the_future():
    left = Side(keys=["a", "a"], vectors=[[0.0], [0.0]], times=[1.0, 30.0])
    right = Side(keys=["a", "a"], vectors=[[10.0], [20.0]], times=[5.0, 25.0])
    joined = asof_join(left, [right])
    assert joined.vectors == [[0.0, 20.0]] and joined.left_rows == [1] and joined.n_unmatched == 1


def test_three_sources_and_missing_keys():
    left = Side(keys=["a", "b", None], vectors=[[1.0], [2.0], [3.0]])
    joined = asof_join(left, [Side(keys=["a", "b"], vectors=[[4.0], [5.0]]), Side(keys=["a"], vectors=[[6.0]])])
    assert joined.keys == ["a"] and joined.vectors == [[1.0, 4.0, 6.0]] and joined.n_unmatched == 2


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 100)), max_size=30),
       st.lists(st.tuples(st.sampled_from("abcd"), st.floats(0, 100)), max_size=30))
def test_every_left_row_is_matched_or_counted_and_matches_are_as_of(left_rows, right_rows):
    left = Side(keys=[k for k, _ in left_rows], vectors=[[t] for _, t in left_rows],
                times=[t for _, t in left_rows])
    right = Side(keys=[k for k, _ in right_rows], vectors=[[t] for _, t in right_rows],
                 times=[t for _, t in right_rows])
    joined = asof_join(left, [right])
    assert len(joined.keys) + joined.n_unmatched == len(left_rows)
    for key, (left_time, right_time) in zip(joined.keys, joined.vectors):
        candidates = [t for k, t in right_rows if k == key and t <= left_time]
        assert right_time == max(candidates)
