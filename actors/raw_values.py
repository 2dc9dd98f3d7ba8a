"""Raw rows as preparation reads them: JSON values decoded, and CSV text typed.

The raw store keeps CSV fields as the text of the file (``"3"``, ``"2.5"``, ``""``).
Before the feature transforms see them they are *typed*, each field as the value
it spells (:func:`typed_value`). :func:`typed_column` gives exactly the same values
for a whole column at once, with one C-level pass (``map(int, ...)``,
``map(float, ...)``) where the column allows it, instead of one Python call and
two caught exceptions per field; :func:`decode_rows` decodes and types a batch a
column at a time.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from operator import itemgetter
from typing import Any

import msgspec
import numpy as np

from ml.columns import Columns

__all__ = ["decode_batch", "decode_rows", "type_rows", "typed_column", "typed_value"]

_decoder = msgspec.json.Decoder()


def typed_value(value):
    """A CSV field as the value it spells: int, finite float, empty -> None, else the string.

    >>> [typed_value(v) for v in ["3", "2.5", "", "red", "nan"]]
    [3, 2.5, None, 'red', 'nan']
    """
    if not isinstance(value, str):
        return value
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def _typed_numbers(texts: list[str]) -> list | None:
    """:func:`typed_value` of non-empty texts that all read as numbers; None when one does not."""
    try:
        return list(map(int, texts))
    except ValueError:
        pass
    try:
        numbers: list = list(map(float, texts))
    except ValueError:
        return None
    finite = all(map(math.isfinite, numbers))
    # A text that float() reads and int() cannot has a point, an exponent, or an infinity /
    # NaN spelling (all of which hold an "n"); the others are ints, as typed_value reads them.
    # An int's text reads as a whole float (or an infinite one, past float's range): only
    # those texts are looked at.
    floats = np.asarray(numbers, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        whole = np.flatnonzero(~np.isfinite(floats) | (floats == np.floor(floats))).tolist()
    for i in [i for i in whole if not ("." in (t := texts[i]) or "e" in t or "E" in t or "n" in t or "N" in t)]:
        try:
            numbers[i] = int(texts[i])
        except ValueError:
            pass
    if not finite:   # inf and nan stay text
        numbers = [t if type(n) is float and not math.isfinite(n) else n for n, t in zip(numbers, texts)]
    return numbers


def typed_column(values: Sequence[Any]) -> list:
    """``[typed_value(v) for v in values]``, computed a column at a time.

    A column of numbers is converted by ``int`` or ``float`` over the whole column; any
    other column of text is typed once per distinct value.

    >>> typed_column(["1", "", "3"]), typed_column(["1", "2.5", "1e3", "inf"]), typed_column(["red", "7", ""])
    ([1, None, 3], [1, 2.5, 1000.0, 'inf'], ['red', 7, None])
    """
    values = list(values)
    if values and set(map(type, values)) != {str}:
        return [typed_value(v) for v in values]
    n_empty = values.count("")
    texts = [v for v in values if v] if n_empty else values
    typed = _typed_numbers(texts)
    if typed is None:
        table = {text: typed_value(text) for text in set(texts)}
        typed = [table[text] for text in texts]
    if not n_empty:
        return typed
    found = iter(typed)
    return [next(found) if v else None for v in values]


def decode_rows(values: Sequence[str | bytes], typed: bool, only: Collection[str] | None = None) -> list[Any]:
    """The raw rows of a batch from their stored JSON, CSV text typed when ``typed`` (the
    columns in ``only``, when given: a column nothing reads needs no typing).

    >>> decode_rows(['{"id": "1", "x": "2.5"}', '{"id": "2", "x": ""}'], typed=True)
    [{'id': 1, 'x': 2.5}, {'id': 2, 'x': None}]
    >>> decode_rows(['{"id": "1", "x": "2.5"}'], typed=True, only=["x"])
    [{'id': '1', 'x': 2.5}]
    """
    decode = _decoder.decode
    return type_rows([decode(v) for v in values], typed, only)


def decode_batch(values: Sequence[str | bytes], typed: bool, only: Collection[str] | None = None
                 ) -> list[Any] | Columns:
    """:func:`decode_rows`, but rows that all hold the same columns (a CSV batch's do) come
    back as :class:`ml.columns.Columns`, typed a column at a time, without a dict per row.

    >>> decode_batch(['{"id": "1", "x": "2.5"}', '{"id": "2", "x": ""}'], typed=True, only=["x"]).column("x")
    [2.5, None]
    >>> decode_batch(['{"id": "1"}', '{"x": "2"}'], typed=True)
    [{'id': 1}, {'x': 2}]
    """
    decode = _decoder.decode
    rows = [decode(v) for v in values]
    columns = Columns.from_rows(rows)
    if columns is None:
        return type_rows(rows, typed, only)
    if not typed:
        return columns
    return Columns({name: typed_column(values) if only is None or name in only else values
                    for name, values in ((name, columns.column(name)) for name in columns.names)})


def type_rows(rows: list[Any], typed: bool, only: Collection[str] | None = None) -> list[Any]:
    """``rows`` (decoded JSON objects) with CSV text typed when ``typed``: new rows, the
    columns in ``only`` typed when given, the others as they were.

    The rows of a CSV batch all hold the same columns: they are taken apart into columns,
    typed a column at a time and put together again, each step one C-level pass.
    Rows that differ in their columns (or are not objects) are typed one by one.

    >>> type_rows([{"a": "1", "b": "x"}, {"b": "", "a": "2.5"}], typed=True)
    [{'a': 1, 'b': 'x'}, {'a': 2.5, 'b': None}]
    """
    if not typed or not rows:
        return rows
    first = rows[0]
    if set(map(type, rows)) != {dict} or not all(map(first.keys().__eq__, map(dict.keys, rows))):
        return [{k: typed_value(v) if only is None or k in only else v for k, v in row.items()}
                if isinstance(row, dict) else row for row in rows]
    names = list(first)
    columns = []
    for name in names:
        column = list(map(itemgetter(name), rows))
        columns.append(typed_column(column) if only is None or name in only else column)
    return [dict(zip(names, values)) for values in zip(*columns)]
