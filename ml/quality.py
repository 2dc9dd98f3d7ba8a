"""Data quality of a batch of raw rows: typed reading, per-row problems, the report.

Raw rows are dicts ``{column: scalar}`` (str, int, float, bool or None), as the
raw store holds them. Before a feature transform sees a raw column, the column
is read as one of a few *input types* by :func:`coerce_column`, which finds
three kinds of problem per value (see :class:`Problem`):

``missing_value``
    ``None``, an absent key, or a float NaN. A missing value is not an error
    by itself: it becomes NaN in the features, and only a NaN that no impute
    step fills makes the row bad.
``type_error``
    A value of the wrong type, e.g. a string where a number is expected.
``out_of_range``
    A value of the right type that cannot be used: an infinite number, a
    date-time outside the years 1-9999, or a value a step refuses (a
    negative number given to ``log``, a number outside a ``numeric`` step's
    ``min``/``max``).

Input types
-----------
``number``
    int, float or bool (``True`` is 1.0) -> float64. Strings are type errors,
    even ``"3.5"``.
``category``
    str, int, bool or finite float -> its text (``str(value)``), so ``1`` and
    ``"1"`` are the same category, ``1.0`` is another.
``text``
    str only.
``datetime``
    ISO 8601 text (naive means UTC) or a number of seconds since 1970-01-01
    UTC -> float64 epoch seconds.
``raw``
    Any value, unchanged (for custom transforms that check their own input).

A row with at least one problem is *quarantined*: it leaves the batch's
output, and the :class:`QualityReport` holds a :class:`QuarantinedRow` with its
index and the reason, which names the column and the problem. Nothing is
dropped silently. This module is pure: no I/O, no project imports.

Examples
--------
>>> from ml.quality import coerce_column
>>> read = coerce_column([1, None, "abc", True], "number")
>>> read.values.tolist()
[1.0, nan, nan, 1.0]
>>> read.missing.tolist()
[False, True, False, False]
>>> read.issues
[(2, <Problem.TYPE_ERROR: 'type_error'>, "expected a number; got str 'abc'")]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from enum import Enum
from numbers import Integral, Real
from typing import Any, NamedTuple

import msgspec
import numpy as np

__all__ = [
    "INPUT_TYPES",
    "MAX_EPOCH_S",
    "MIN_EPOCH_S",
    "Coerced",
    "Flag",
    "Problem",
    "QualityCollector",
    "QualityReport",
    "QuarantineError",
    "QuarantinedRow",
    "coerce_column",
    "is_missing",
    "show",
]

#: The ways a raw column can be read; see the module docstring.
INPUT_TYPES: tuple[str, ...] = ("number", "category", "text", "datetime", "raw")
#: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z as seconds since the epoch.
MIN_EPOCH_S = -62135596800.0
MAX_EPOCH_S = 253402300799.0
_MAX_SHOWN = 40


class Problem(str, Enum):
    """What is wrong with a value."""

    MISSING_VALUE = "missing_value"
    TYPE_ERROR = "type_error"
    OUT_OF_RANGE = "out_of_range"


class QuarantinedRow(msgspec.Struct, frozen=True):
    """A row kept out of a batch's output, and why.

    Parameters
    ----------
    index : int
        Position of the row in the batch given.
    reason : str
        Every problem found in the row, ``"; "``-separated, each as
        ``"<column>: <problem>: <detail>"``.
    column : str or None
        The column of the first problem (None for a row that is not a dict).
    problem : Problem or None
        The kind of the first problem.
    key : str or int or None
        The row's entity key, when the spec has one and the row holds a valid one.
    """

    index: int
    reason: str
    column: str | None = None
    problem: Problem | None = None
    key: str | int | None = None


class QualityReport(msgspec.Struct, frozen=True, kw_only=True):
    """The data quality of one batch of rows.

    Parameters
    ----------
    n_rows : int
        Rows in the batch.
    kept : tuple of int
        Indices of the rows that produced output, in output order (row ``j`` of
        ``X`` is input row ``kept[j]``).
    expected_columns : tuple of str
        Raw columns the feature set reads (plus its key, and its label when
        labels were read).
    missing_columns : tuple of str
        Schema: expected columns that no row of the batch has.
    unexpected_columns : tuple of str
        Schema: columns present in some row that the feature set does not read
        (not an error).
    missing_values : dict of str to int
        Per expected column, the rows where it is None, absent or NaN, whether
        an impute step fills them or not.
    type_errors, out_of_range : dict of str to int
        Per column, the values with that problem (columns without any are left out).
    quarantined : tuple of QuarantinedRow
        Rows left out of the output, with their reasons, in index order.
    feature_set_id : str or None
        The feature set that produced the report.

    Examples
    --------
    >>> report = QualityReport(n_rows=3, kept=(0, 2),
    ...                        quarantined=(QuarantinedRow(1, "age: missing value: no value"),))
    >>> report.n_kept, report.n_quarantined, report.ok
    (2, 1, False)
    >>> report.summary()
    '3 rows: 2 kept, 1 quarantined'
    """

    n_rows: int
    kept: tuple[int, ...] = ()
    expected_columns: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    unexpected_columns: tuple[str, ...] = ()
    missing_values: dict[str, int] = {}
    type_errors: dict[str, int] = {}
    out_of_range: dict[str, int] = {}
    quarantined: tuple[QuarantinedRow, ...] = ()
    feature_set_id: str | None = None

    @property
    def n_kept(self) -> int:
        """Rows that produced output."""
        return len(self.kept)

    @property
    def n_quarantined(self) -> int:
        """Rows left out, each with a reason."""
        return len(self.quarantined)

    @property
    def ok(self) -> bool:
        """No quarantined row and no missing column."""
        return not self.quarantined and not self.missing_columns

    def summary(self) -> str:
        """One line for a person."""
        text = f"{self.n_rows} rows: {self.n_kept} kept, {self.n_quarantined} quarantined"
        if self.missing_columns:
            text += f"; missing columns: {', '.join(self.missing_columns)}"
        return text


class QuarantineError(ValueError):
    """The online path refused a row; ``.row`` says why.

    Parameters
    ----------
    row : QuarantinedRow

    Examples
    --------
    >>> err = QuarantineError(QuarantinedRow(0, "age: type error: expected a number; got str 'x'",
    ...                                      "age", Problem.TYPE_ERROR))
    >>> err.field, isinstance(err, ValueError)
    ('age', True)
    """

    def __init__(self, row: QuarantinedRow) -> None:
        super().__init__(row.reason)
        self.row = row
        self.field = row.column or "row"
        self.reason = row.reason

    def __reduce__(self):  # keep .row across pickling (e.g. Ray)
        return (type(self), (self.row,))


class Flag(NamedTuple):
    """Rows a transform refuses, from its ``check_batch``.

    ``position`` is the index of the step input concerned, ``mask`` a boolean
    array over the batch (True = refused), ``message`` follows the value in
    the reason (``"-3.0 is negative; log needs values >= 0"``).
    """

    position: int
    mask: np.ndarray
    message: str
    problem: Problem = Problem.OUT_OF_RANGE


class Coerced(NamedTuple):
    """A raw column read as an input type: values, missing mask, problems found."""

    values: np.ndarray
    missing: np.ndarray
    issues: list[tuple[int, Problem, str]]


def show(value: Any) -> str:
    """A short, escaped rendering of a value for a reason (``repr``, cut at 40 characters)."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def is_missing(value: Any) -> bool:
    """None or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _got(value: Any) -> str:
    return f"got {type(value).__name__} {show(value)}"


def _number(value: Any) -> tuple[float, Problem | None, str]:
    if isinstance(value, bool):
        return (1.0 if value else 0.0), None, ""
    if isinstance(value, Real):
        try:
            number = float(value)
        except (OverflowError, ValueError):
            return math.nan, Problem.OUT_OF_RANGE, f"{show(value)} does not fit a float"
        if math.isinf(number):
            return math.nan, Problem.OUT_OF_RANGE, f"{show(value)} is not finite"
        return number, None, ""
    return math.nan, Problem.TYPE_ERROR, f"expected a number; {_got(value)}"


def _category(value: Any) -> tuple[str | None, Problem | None, str]:
    if isinstance(value, str):
        return str(value), None, ""
    if isinstance(value, (bool, Integral)):
        return str(value if isinstance(value, bool) else int(value)), None, ""
    if isinstance(value, Real):
        number = float(value)
        if math.isinf(number):
            return None, Problem.OUT_OF_RANGE, f"{show(value)} is not finite"
        return repr(number), None, ""
    return None, Problem.TYPE_ERROR, f"expected a category (str or number); {_got(value)}"


def _text(value: Any) -> tuple[str | None, Problem | None, str]:
    if isinstance(value, str):
        return str(value), None, ""
    return None, Problem.TYPE_ERROR, f"expected text; {_got(value)}"


def _datetime(value: Any) -> tuple[float, Problem | None, str]:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return math.nan, Problem.TYPE_ERROR, f"expected an ISO 8601 date-time; got {show(value)}"
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            seconds = moment.timestamp()
        except (OverflowError, ValueError):  # an offset pushing it past year 1 or 9999
            return math.nan, Problem.OUT_OF_RANGE, f"{show(value)} is outside the years 1-9999"
    elif isinstance(value, Real) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except (OverflowError, ValueError):
            seconds = math.inf
    else:
        return math.nan, Problem.TYPE_ERROR, f"expected an ISO 8601 date-time or epoch seconds; {_got(value)}"
    if not MIN_EPOCH_S <= seconds <= MAX_EPOCH_S:
        return math.nan, Problem.OUT_OF_RANGE, f"{show(value)} is outside the years 1-9999"
    return seconds, None, ""


_READERS = {"number": _number, "category": _category, "text": _text, "datetime": _datetime}
_FLOAT_TYPES = ("number", "datetime")


def coerce_column(values: Sequence[Any], input_type: str) -> Coerced:
    """Read raw values as an input type.

    Parameters
    ----------
    values : sequence
        One raw value per row; None (or NaN) for a missing one.
    input_type : {"number", "category", "text", "datetime", "raw"}

    Returns
    -------
    Coerced
        ``values``: float64 (NaN where missing or bad) for ``number`` and
        ``datetime``, else an object array (None where missing or bad);
        ``missing``: bool array; ``issues``: ``(row, Problem, detail)`` for
        type errors and out-of-range values.

    Examples
    --------
    >>> coerce_column(["2024-03-01T12:00:00", 0], "datetime").values.tolist()
    [1709294400.0, 0.0]
    >>> coerce_column(["red", 3, None], "category").values.tolist()
    ['red', '3', None]
    """
    if input_type not in INPUT_TYPES:
        raise ValueError(f"unknown input type {input_type!r}; known: {', '.join(INPUT_TYPES)}")
    n = len(values)
    missing = np.zeros(n, dtype=bool)
    issues: list[tuple[int, Problem, str]] = []
    floats = input_type in _FLOAT_TYPES
    out = np.full(n, np.nan) if floats else np.full(n, None, dtype=object)
    reader = _READERS.get(input_type)
    for i, value in enumerate(values):
        if is_missing(value):
            missing[i] = True
        elif reader is None:
            out[i] = value
        else:
            converted, problem, detail = reader(value)
            if problem is None:
                out[i] = converted
            else:
                issues.append((i, problem, detail))
    return Coerced(out, missing, issues)


class QualityCollector:
    """Collects the problems of one batch, row by row, and builds its report.

    Examples
    --------
    >>> quality = QualityCollector(2)
    >>> quality.add(1, "age", Problem.TYPE_ERROR, "expected a number; got str 'x'")
    >>> quality.flagged.tolist()
    [False, True]
    >>> quality.report().quarantined[0].reason
    "age: type error: expected a number; got str 'x'"
    """

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.flagged = np.zeros(n_rows, dtype=bool)
        self._issues: dict[int, list[tuple[str | None, Problem, str]]] = {}
        self._counts: dict[Problem, dict[str, int]] = {problem: {} for problem in Problem}

    def add(self, index: int, column: str | None, problem: Problem, detail: str) -> None:
        """Record a problem of row ``index``; the row will be quarantined."""
        index = int(index)
        self.flagged[index] = True
        self._issues.setdefault(index, []).append((column, problem, detail))
        if column is not None:
            counts = self._counts[problem]
            counts[column] = counts.get(column, 0) + 1

    def first_reason(self) -> str:
        """The reason of the lowest quarantined row ('' when none)."""
        if not self._issues:
            return ""
        index = min(self._issues)
        return f"row {index}: {self._reason(self._issues[index])}"

    @staticmethod
    def _reason(issues: list[tuple[str | None, Problem, str]]) -> str:
        return "; ".join(f"{column or 'row'}: {problem.value.replace('_', ' ')}: {detail}"
                         for column, problem, detail in issues)

    def report(self, *, keys: Sequence[Any] | None = None, **fields: Any) -> QualityReport:
        """The report; ``keys`` (one valid key or None per row) label the quarantined rows;
        ``fields`` are the schema fields of :class:`QualityReport`."""
        quarantined = []
        for index in sorted(self._issues):
            issues = self._issues[index]
            column, problem, _ = issues[0]
            key = keys[index] if keys is not None else None
            quarantined.append(QuarantinedRow(index, self._reason(issues), column, problem, key))
        return QualityReport(
            n_rows=self.n_rows,
            kept=tuple(int(i) for i in np.flatnonzero(~self.flagged)),
            type_errors=dict(self._counts[Problem.TYPE_ERROR]),
            out_of_range=dict(self._counts[Problem.OUT_OF_RANGE]),
            quarantined=tuple(quarantined),
            **fields,
        )
