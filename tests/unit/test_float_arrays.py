"""float8_matrix reads what PostgreSQL's array_send writes, and refuses what is not a
vector of the expected length."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.float_arrays import float8_matrix


def sent(values, nulls=(), oid=701, ndim=1):
    head = struct.pack(">iiiii", ndim, 1 if nulls else 0, oid, len(values), 1)
    return head + b"".join(struct.pack(">i", -1) if i in nulls else struct.pack(">id", 8, v)
                           for i, v in enumerate(values))


@given(st.lists(st.lists(st.floats(allow_nan=False), min_size=3, max_size=3), max_size=20))
def test_rows_of_one_length_are_read_exactly(rows):
    got = float8_matrix([sent(r) for r in rows], 3)
    assert got.shape == (len(rows), 3) and got.tolist() == rows


def test_a_null_element_is_read_as_nan_and_the_other_rows_unchanged():
    got = float8_matrix([sent([1.0, 2.0]), sent([3.0, 0.0], nulls={1})], 2)
    assert got[0].tolist() == [1.0, 2.0] and got[1, 0] == 3.0 and np.isnan(got[1, 1])


@pytest.mark.parametrize("blob, reason", [
    (sent([1.0, 2.0, 3.0]), "found a 1-dimensional array of 3 values"),
    (sent([1.0, 2.0], oid=700), "of type 700"),
])
def test_a_row_that_is_not_a_float8_vector_of_the_expected_length_is_refused(blob, reason):
    with pytest.raises(ValueError, match=reason):
        float8_matrix([sent([0.0, 0.0]), blob], 2)
