"""Joining the features of several datasets on entity key, as of time when there is one.

For every row of the left (first) source, each other source contributes the row of
the same entity key whose time is the latest at or before the left row's time (an
as-of join); without times, the entity's last row in that source. Rows of the left
source that some source cannot match are left out and counted.

Examples
--------
>>> left = Side(keys=["a", "b", "c"], vectors=[[1.0], [2.0], [3.0]], times=[10.0, 10.0, 10.0])
>>> right = Side(keys=["a", "a", "b"], vectors=[[7.0], [8.0], [9.0]], times=[5.0, 20.0, 1.0])
>>> result = asof_join(left, [right])
>>> result.keys, result.vectors, result.n_unmatched
(['a', 'b'], [[1.0, 7.0], [2.0, 9.0]], 1)
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Sequence


@dataclass(frozen=True)
class Side:
    """One source's rows: entity keys, feature vectors, optional times and labels."""

    keys: Sequence[str | None]
    vectors: Sequence[Sequence[float]]
    times: Sequence[float | None] | None = None
    labels: Sequence[str | None] | None = None


@dataclass(frozen=True)
class Joined:
    keys: list[str] = field(default_factory=list)
    vectors: list[list[float]] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    left_rows: list[int] = field(default_factory=list)
    n_unmatched: int = 0


class _Index:
    """Per entity key, the rows of one source sorted by time (or in row order)."""

    def __init__(self, side: Side) -> None:
        self.side = side
        grouped: dict[str, list[tuple[float, int]]] = {}
        for row, key in enumerate(side.keys):
            if key is None:
                continue
            time = side.times[row] if side.times is not None else None
            grouped.setdefault(key, []).append((float(row) if time is None else float(time), row))
        self.by_key = {k: sorted(v) for k, v in grouped.items()}
        self.timed = side.times is not None

    def match(self, key: str, time: float | None) -> int | None:
        rows = self.by_key.get(key)
        if not rows:
            return None
        if not self.timed or time is None:
            return rows[-1][1]
        at = bisect.bisect_right(rows, (time, float("inf"))) - 1
        return rows[at][1] if at >= 0 else None


def asof_join(left: Side, others: Sequence[Side]) -> Joined:
    """The left rows with every other source's matching vector appended, in left order."""
    indexes = [_Index(side) for side in others]
    out = Joined()
    unmatched = 0
    for row, key in enumerate(left.keys):
        time = left.times[row] if left.times is not None else None
        matches = [index.match(key, time) if key is not None else None for index in indexes]
        if key is None or any(m is None for m in matches):
            unmatched += 1
            continue
        vector = list(left.vectors[row])
        for index, match in zip(indexes, matches):
            vector.extend(index.side.vectors[match])
        out.keys.append(key)
        out.vectors.append(vector)
        out.labels.append(left.labels[row] if left.labels is not None else None)
        out.left_rows.append(row)
    return Joined(out.keys, out.vectors, out.labels, out.left_rows, unmatched)
