"""CSV text typed a column at a time gives exactly what typing it field by field gives."""

from __future__ import annotations

import doctest
import math

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

import actors.raw_values
from actors.raw_values import decode_batch, decode_rows, typed_column, typed_value
from ml.columns import Columns

SPELLINGS = ["0", "-3", "+7", " 42 ", "007", "1_000", "2.5", "-0.0", ".5", "5.", "1e3", "1E-2", "inf", "-Infinity",
             "nan", "NaN", "1" * 400, "1" * 400 + ".0", "1e999", "٣", "red", "e7", "0x10", "1,5", "", "true", " "]


def same(a: list, b: list) -> bool:
    """Equal values of equal types (NaN never occurs: a NaN spelling stays text)."""
    return len(a) == len(b) and all(type(x) is type(y) and x == y for x, y in zip(a, b))


def test_doctests():
    assert doctest.testmod(actors.raw_values).failed == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(SPELLINGS), st.integers().map(str),
                          st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=6)),
                max_size=40))
def test_a_column_is_typed_as_each_of_its_fields(texts):
    assert same(typed_column(texts), [typed_value(t) for t in texts])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(), st.floats(allow_nan=False), st.none()).map(str), min_size=1, max_size=30))
def test_numeric_columns_with_gaps_take_the_fast_paths_and_agree(texts):
    texts = [t if i % 3 else "" for i, t in enumerate(texts)]
    assert same(typed_column(texts), [typed_value(t) for t in texts])


def test_values_that_are_not_text_are_kept_as_they_are():
    assert same(typed_column([1, "2", None, 2.5, True]), [1, 2, None, 2.5, True])


def test_each_kind_of_column_is_typed_like_the_fields():
    ints, floats = [str(i) for i in range(1000)], [f"{i / 7:.4f}" for i in range(1000)]
    mixed = [str(i) if i % 2 else f"{i}.5" for i in range(1000)]
    cities = ["Paris", "Oslo", "", "7", "nan"] * 200
    for column in (ints, floats, mixed, cities, floats[:-1] + ["inf"], ints[:-1] + [""]):
        assert same(typed_column(column), [typed_value(v) for v in column])
    assert type(typed_column(mixed)[1]) is int and type(typed_column(mixed)[0]) is float
    assert math.isclose(typed_column(floats)[1], 1 / 7, abs_tol=1e-4)


def test_rows_of_a_batch_are_decoded_and_typed_as_one_by_one():
    rows = [{"id": str(i), "x": "" if i % 4 == 0 else f"{i * 0.5}", "color": ["red", "blue"][i % 2], "n": "x" * i}
            for i in range(50)]
    stored = [msgspec.json.encode(r).decode() for r in rows]
    expected = [{k: typed_value(v) for k, v in r.items()} for r in rows]
    got = decode_rows(stored, typed=True)
    assert got == expected and all(same(list(g.values()), list(e.values())) for g, e in zip(got, expected))
    assert decode_rows(stored, typed=False) == rows


def test_rows_with_different_columns_are_typed_one_by_one():
    stored = ['{"a": "1", "b": "x"}', '{"a": "2.5"}', '{"b": "", "c": "3"}']
    assert decode_rows(stored, typed=True) == [{"a": 1, "b": "x"}, {"a": 2.5}, {"b": None, "c": 3}]
    assert decode_rows([], typed=True) == []



def test_only_the_columns_named_are_typed_the_others_stay_as_stored():
    stored = ['{"id": "1", "x": "2.5", "note": "7"}', '{"id": "2", "x": "", "note": "x"}']
    assert decode_rows(stored, typed=True, only={"id", "x"}) == [{"id": 1, "x": 2.5, "note": "7"},
                                                                 {"id": 2, "x": None, "note": "x"}]
    ragged = ['{"id": "1", "note": "7"}', '{"x": "3"}']
    assert decode_rows(ragged, typed=True, only={"x"}) == [{"id": "1", "note": "7"}, {"x": 3}]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({"id": st.integers().map(str), "x": st.sampled_from(SPELLINGS),
                                       "note": st.text(max_size=4)}), min_size=1, max_size=20),
       st.sampled_from([None, {"x"}, {"id", "x", "note"}]), st.booleans())
def test_a_batch_whose_rows_hold_the_same_columns_decodes_to_columns_of_the_same_values(rows, only, typed):
    stored = [msgspec.json.encode(r).decode() for r in rows]
    got = decode_batch(stored, typed=typed, only=only)
    expected = decode_rows(stored, typed=typed, only=only)
    assert isinstance(got, Columns) and got.rows() == expected
    assert all(same([g[k] for k in e], list(e.values())) for g, e in zip(got.rows(), expected))   # types too


def test_a_batch_whose_rows_differ_decodes_to_rows():
    stored = ['{"a": "1", "b": "x"}', '{"a": "2.5"}', '[1, 2]']
    assert decode_batch(stored, typed=True) == decode_rows(stored, typed=True) == [{"a": 1, "b": "x"}, {"a": 2.5},
                                                                                    [1, 2]]
    assert decode_batch([], typed=True) == []
