"""A large batch transformed in pieces, so the vectors of one piece can be stored while
the next is transformed; the pieces' quality reports combine into the report of the
whole batch, and their vectors, in order, are the whole batch's.

Every step transforms row by row once fitted (the same code serves single online
rows), so a piece's vectors do not depend on the other pieces.

Examples
--------
>>> from ml.features import FeatureSpec, StepSpec, fit_feature_set
>>> spec = FeatureSpec(steps=[StepSpec("x", "numeric", ["x"])])
>>> fitted = fit_feature_set(spec, [{"x": 1.0}, {"x": 2.0}])
>>> batch = BatchInChunks(fitted, [{"x": 1.0}, {"x": "bad"}, {"x": 3.0}], chunk_rows=2)
>>> [(chunk.start, chunk.X.ravel().tolist(), chunk.report.kept) for chunk in batch]
[(0, [1.0], (0,)), (2, [3.0], (2,))]
>>> report = batch.report()
>>> report.kept, [q.index for q in report.quarantined], report.type_errors
((0, 2), [1], {'x': 1})
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from ml.columns import Columns, has_mapping_row
from ml.quality import QualityReport
from ml.transforms import FeatureSpecError


@dataclass(frozen=True)
class Chunk:
    """Rows ``start .. start + n_rows`` of the batch: ``X[j]`` (and ``y[j]``) is batch row
    ``report.kept[j]``; the report's indices are positions in the whole batch."""

    start: int
    n_rows: int
    X: np.ndarray
    y: np.ndarray | None
    report: QualityReport


class BatchInChunks:
    """Iterate to transform the batch piece by piece (each piece once, in order); then
    :meth:`report` is the whole batch's report, as ``transform_batch`` of all rows gives.

    Parameters
    ----------
    fitted : FittedFeatureSet
    rows : sequence of dict, or Columns
        The raw rows of the batch.
    chunk_rows : int
        Rows per piece (the last may be shorter).
    with_label : bool, optional
        As for ``transform_batch``, decided once for the whole batch.
    """

    def __init__(self, fitted: Any, rows: Sequence[Any] | Columns, chunk_rows: int, *,
                 with_label: bool | None = None) -> None:
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise FeatureSpecError("chunk_rows", f"must be a whole number >= 1; got {chunk_rows!r}")
        self._fitted = fitted
        self._rows = rows
        self._chunk_rows = chunk_rows
        self._use_label = fitted.reads_label(rows, with_label)
        self._parts: list[tuple[QualityReport, bool]] = []   # (report, had a mapping row)

    def __iter__(self) -> Iterator[Chunk]:
        if self._parts:
            raise RuntimeError("a batch in chunks is transformed once")
        for start in range(0, len(self._rows), self._chunk_rows):
            chunk = self._rows[start:start + self._chunk_rows]
            X, y, report = self._fitted.transform_batch(chunk, with_label=self._use_label)
            report = _shifted(report, start)
            self._parts.append((report, has_mapping_row(chunk)))
            yield Chunk(start, len(chunk), X, y, report)

    def report(self) -> QualityReport:
        """The whole batch's report, once every piece was transformed."""
        done = sum(report.n_rows for report, _ in self._parts)
        if done != len(self._rows):
            raise RuntimeError(f"{done} of {len(self._rows)} rows transformed; iterate over every chunk first")
        if not self._parts:
            return self._fitted.transform_batch([], with_label=self._use_label)[2]
        return _combined(self._parts)


def _shifted(report: QualityReport, start: int) -> QualityReport:
    if not start:
        return report
    return msgspec.structs.replace(
        report, kept=tuple(i + start for i in report.kept),
        quarantined=tuple(msgspec.structs.replace(q, index=q.index + start) for q in report.quarantined))


def _combined(parts: list[tuple[QualityReport, bool]]) -> QualityReport:
    reports = [report for report, _ in parts]
    first = reports[0]
    with_rows = [report for report, has_mapping in parts if has_mapping]
    # a column is missing from the batch when every piece that has rows lacks it
    missing = tuple(c for c in first.expected_columns if with_rows and all(c in r.missing_columns for r in with_rows))
    return msgspec.structs.replace(
        first,
        n_rows=sum(r.n_rows for r in reports),
        kept=tuple(i for r in reports for i in r.kept),
        missing_columns=missing,
        unexpected_columns=tuple(sorted({c for r in reports for c in r.unexpected_columns})),
        missing_values=_summed(r.missing_values for r in reports),
        type_errors=_summed(r.type_errors for r in reports),
        out_of_range=_summed(r.out_of_range for r in reports),
        quarantined=tuple(q for r in reports for q in r.quarantined),
    )


def _summed(counts) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for column, n in part.items():
            total[column] = total.get(column, 0) + n
    return total
