"""A batch of rows that all hold the same columns, kept as one list per column.

That is what a CSV batch is. The feature code reads a :class:`Columns` batch exactly as
it reads the same rows as dicts (the same vectors, the same quality report), without a
dict per row: building 200,000 of them after decoding, only for the transforms to take
them apart into columns again, cost preparation ~0.5 s, and every pass over the rows
(is each a mapping, which columns does it hold) as much again.

Examples
--------
>>> batch = Columns({"x": [1.0, 2.0, None], "color": ["red", "blue", "red"]})
>>> len(batch), batch.names, batch.column("x"), batch.column("absent")
(3, ('x', 'color'), [1.0, 2.0, None], [None, None, None])
>>> batch[1:].rows()
[{'x': 2.0, 'color': 'blue'}, {'x': None, 'color': 'red'}]
>>> Columns.from_rows([{"a": 1, "b": 2}, {"b": 4, "a": 3}]).column("a")
[1, 3]
>>> Columns.from_rows([{"a": 1}, {"b": 2}]) is None      # rows that differ in their columns
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from ml.transforms import FeatureSpecError

__all__ = ["Columns", "column_of", "has_mapping_row"]


class Columns:
    """``n`` rows ``{name: columns[name][i] for name in columns}``; every list is as long."""

    __slots__ = ("_data", "_n")

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        data = {name: value if isinstance(value, list) else list(value) for name, value in columns.items()}
        lengths = {len(values) for values in data.values()}
        if len(lengths) > 1:
            raise FeatureSpecError("rows", f"every column of a batch of columns is as long; got {sorted(lengths)}")
        if not all(isinstance(name, str) for name in data):
            raise FeatureSpecError("rows", "column names are strings")
        self._data = data
        self._n = lengths.pop() if lengths else 0

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> Columns | None:
        """The rows as columns, or None when they are not all dicts with the same keys."""
        if not rows or set(map(type, rows)) != {dict}:
            return None
        first = rows[0]
        if not first or not all(map(first.keys().__eq__, map(dict.keys, rows))):   # no column: no Columns
            return None
        return cls({name: list(map(itemgetter(name), rows)) for name in first})

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, part: slice) -> Columns:
        if not isinstance(part, slice):
            raise TypeError("a batch of columns is cut by a slice; read a row with rows()")
        return Columns({name: values[part] for name, values in self._data.items()})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._data)

    def column(self, name: str) -> list[Any]:
        """The values of column ``name`` (None for each row when the batch has no such column)."""
        values = self._data.get(name)
        return values if values is not None else [None] * self._n

    def rows(self) -> list[dict[str, Any]]:
        names = list(self._data)
        return [dict(zip(names, values)) for values in zip(*self._data.values())] if names else []

    def __repr__(self) -> str:
        return f"Columns({self._n} rows: {', '.join(self._data)})"


def column_of(rows: Sequence[Any] | Columns, name: str) -> list[Any]:
    """Column ``name`` of a batch, rows or columns: None for a row that is not a mapping or lacks it.

    >>> column_of([{"k": 1}, "not a row", {}], "k"), column_of(Columns({"k": [1, 2]}), "k")
    ([1, None, None], [1, 2])
    """
    if isinstance(rows, Columns):
        return rows.column(name)
    return [row.get(name) if isinstance(row, Mapping) else None for row in rows]


def has_mapping_row(rows: Sequence[Any] | Columns) -> bool:
    """Whether some row of the batch is a mapping (every row of a non-empty ``Columns`` is).

    >>> has_mapping_row(Columns({"k": [1]})), has_mapping_row(["x", {}]), has_mapping_row([])
    (True, True, False)
    """
    if isinstance(rows, Columns):
        return len(rows) > 0
    return any(isinstance(row, Mapping) for row in rows)
