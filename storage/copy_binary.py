"""Feature vectors in PostgreSQL's binary COPY format, encoded from their matrix.

``copy_records_to_table`` encodes every field of every row through asyncpg's
codecs: ~0.8 s of CPU for 200,000 rows of a ``float8[]`` and four scalars. Here
the fixed part of each row (the feature set and batch ids, the line number and
the whole vector with its array header) is laid out for all rows at once by one
numpy structured array; only the entity key and the label, of varying length,
are encoded row by row.

Format (PostgreSQL docs, "COPY", Binary Format): a signature, flags and header
extension; per row an int16 field count, then per field an int32 length (-1 for
NULL) and the field's binary form (``int4``: big-endian; ``text``: UTF-8;
``float8[]``: ndim, has-null flag, element type oid, per dimension its size and
lower bound, then per element its length and big-endian float8); an int16 -1 at
the end.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from itertools import chain

import numpy as np

__all__ = ["COLUMNS", "SIGNATURE", "TRAILER", "encode_rows", "encode_vector_rows"]

#: The order of the fields in every encoded row.
COLUMNS = ("feature_set_id", "batch_id", "line_no", "vector", "entity_key", "label")
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
FLOAT8_OID = 701
_NULL = struct.pack(">i", -1)
_INT4 = struct.Struct(">i")


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _INT4.pack(len(data)) + data


def _fixed_part(feature_set_id: str, batch_id: str, n_features: int) -> tuple[np.dtype, bytes, bytes]:
    """The dtype of a row's fixed part (up to the entity key's length, its bytes follow),
    its constant head (field count, the two ids, the line number's length) and the
    vector's length and array header."""
    head = struct.pack(">h", len(COLUMNS)) + _text(feature_set_id) + _text(batch_id) + _INT4.pack(4)
    if n_features:
        array_header = struct.pack(">iiiii", 1, 0, FLOAT8_OID, n_features, 1)
    else:   # an empty array has no dimensions
        array_header = struct.pack(">iii", 0, 0, FLOAT8_OID)
    vector_head = _INT4.pack(len(array_header) + 12 * n_features) + array_header
    dtype = np.dtype([("head", "u1", (len(head),)), ("line", ">i4"), ("vector_head", "u1", (len(vector_head),)),
                      ("elements", [("size", ">i4"), ("value", ">f8")], (n_features,)), ("key_size", ">i4")])
    return dtype, head, vector_head


def encode_vector_rows(feature_set_id: str, batch_id: str, lines: Sequence[int], keys: Sequence[str | None],
                       X: np.ndarray, labels: Sequence[str | None], chunk: int = 20_000) -> Iterator[bytes]:
    """The rows ``(feature_set_id, batch_id, lines[j], X[j], keys[j], labels[j])`` in
    binary COPY format (:data:`COLUMNS` order), signature and trailer included, as
    pieces of about ``chunk`` rows each: :data:`SIGNATURE`, :func:`encode_rows`,
    :data:`TRAILER` (a COPY fed in parts sends the rows of every part between one
    signature and one trailer).

    Raises
    ------
    ValueError
        As :func:`encode_rows`.
    """
    yield SIGNATURE
    yield from encode_rows(feature_set_id, batch_id, lines, keys, X, labels, chunk)
    yield TRAILER


def encode_rows(feature_set_id: str, batch_id: str, lines: Sequence[int], keys: Sequence[str | None],
                X: np.ndarray, labels: Sequence[str | None], chunk: int = 20_000) -> Iterator[bytes]:
    """The rows alone, without signature and trailer, as pieces of about ``chunk`` rows.

    Raises
    ------
    ValueError
        ``X`` is not a 2-D array with one row per line, the lengths differ, or a line
        number does not fit an ``integer``.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or not (X.shape[0] == len(lines) == len(keys) == len(labels)):
        raise ValueError(f"X: expected one vector per line; got shape {X.shape} for {len(lines)} lines, "
                         f"{len(keys)} keys, {len(labels)} labels")
    line_numbers = np.asarray(lines, dtype=np.int64)
    if line_numbers.size and not (-2**31 <= line_numbers.min() and line_numbers.max() < 2**31):
        raise ValueError("lines: a line number does not fit a PostgreSQL integer")
    dtype, head, vector_head = _fixed_part(feature_set_id, batch_id, X.shape[1])
    width = dtype.itemsize
    label_fields: dict[str | None, bytes] = {}
    for start in range(0, len(lines), chunk):
        stop = min(start + chunk, len(lines))
        key_bytes = [b"" if key is None else key.encode() for key in keys[start:stop]]
        fixed = np.empty(stop - start, dtype=dtype)
        fixed["head"] = np.frombuffer(head, dtype="u1")
        fixed["line"] = line_numbers[start:stop]
        fixed["vector_head"] = np.frombuffer(vector_head, dtype="u1")
        fixed["elements"]["size"] = 8
        fixed["elements"]["value"] = X[start:stop]
        fixed["key_size"] = np.fromiter(map(len, key_bytes), dtype=np.int64, count=stop - start)
        fixed["key_size"][[j for j, key in enumerate(keys[start:stop]) if key is None]] = -1
        for label in set(labels[start:stop]) - label_fields.keys():
            label_fields[label] = _text(label)
        rows = fixed.tobytes()
        pieces = [rows[j:j + width] for j in range(0, len(rows), width)]
        yield b"".join(chain.from_iterable(zip(pieces, key_bytes, map(label_fields.__getitem__, labels[start:stop]))))
