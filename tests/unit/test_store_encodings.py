"""Stored forms the feature stores lay out from a matrix are exactly the forms their
per-row encoders write."""

from __future__ import annotations

import doctest

import msgspec
import numpy as np
import pytest

import storage.feature_store
from storage.copy_binary import COLUMNS, SIGNATURE, TRAILER, encode_vector_rows
from storage.feature_store import OnlineVector, msgpack_vectors


def test_doctests():
    assert doctest.testmod(storage.feature_store).failed == 0


def test_online_values_laid_out_from_a_matrix_are_the_encoder_s_bytes():
    encode = msgspec.msgpack.Encoder().encode
    rng = np.random.default_rng(0)
    for n_features in (0, 1, 15, 16, 300, 70_000):
        for fsid in ("", "a" * 20, "é" * 200):
            X = rng.normal(size=(3, n_features))
            values, width = msgpack_vectors(fsid, X, 1234.5)
            assert len(values) == 3 * width
            for i in range(3):
                assert values[i * width:(i + 1) * width] == encode(OnlineVector(fsid, X[i].tolist(), 1234.5))


def test_binary_copy_pieces_frame_every_row_with_its_fields():
    X = np.arange(6, dtype=np.float64).reshape(3, 2)
    pieces = list(encode_vector_rows("fs", "b", [2, 3, 4], ["k", None, "é"], X, ["1", None, "1"], chunk=2))
    assert pieces[0] == SIGNATURE and pieces[-1] == TRAILER and len(pieces) == 4   # two pieces of rows
    body = b"".join(pieces[1:-1])
    row_fixed = 2 + (4 + 2) + (4 + 1) + (4 + 4) + (4 + 20 + 2 * 12)
    first = body[:row_fixed + 4 + 1 + 4 + 1]
    assert first.startswith(len(COLUMNS).to_bytes(2, "big") + (2).to_bytes(4, "big") + b"fs")
    assert first.endswith((1).to_bytes(4, "big") + b"k" + (1).to_bytes(4, "big") + b"1")
    assert (-1).to_bytes(4, "big", signed=True) * 2 in body                     # NULL key, NULL label
    assert "é".encode() in body


def test_binary_copy_refuses_mismatched_lengths_and_line_numbers_beyond_integer():
    with pytest.raises(ValueError, match="one vector per line"):
        list(encode_vector_rows("fs", "b", [1, 2], ["a", "b"], np.zeros((3, 1)), [None, None]))
    with pytest.raises(ValueError, match="lines"):
        list(encode_vector_rows("fs", "b", [2**31], ["a"], np.zeros((1, 1)), [None]))
