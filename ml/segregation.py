"""Data segregation: split row indices into a train side and a test side.

This is an API, not a pipeline stage (DESIGN §1, row 3). It works on row
*indices* only: :func:`split` returns a :class:`Split` holding two int64 index
arrays, and :meth:`Split.take` applies them to any arrays ``X`` (and ``y``).
The module is pure: no I/O, no Ray, no project imports.

Strategies (see :class:`SplitStrategy`):

``sequential``
    The first rows go to train, the rest to test; both sides keep row order.
``random``
    A seeded permutation picks the train rows; both sides are then *sorted*,
    so each side keeps the original relative order of its rows.
``shuffled``
    The same seeded permutation, cut sequentially; both sides keep the
    *permuted* order (rows come out shuffled). With equal seeds, ``shuffled``
    and ``random`` select the same rows, in a different order.
``stratified``
    Each class is permuted and cut on its own, so class proportions are kept;
    every class with at least two rows lands on both sides. Both sides sorted.
custom
    Any function registered with :func:`register_strategy`.

Size rule: the train side gets ``train_size(n_rows, ratio)`` rows, that is
``ratio * n_rows`` rounded to the nearest integer (halves up), clipped to
``[1, n_rows - 1]`` so neither side is empty. ``stratified`` applies that rule
per class, so its train side is within ``n_classes`` rows of ``ratio * n_rows``.

Problems that do not stop the split (a tiny side, an extreme ratio, a class
under-represented on one side) travel with it in :attr:`Split.warnings`; they
are neither raised nor logged. Bad input raises :class:`SegregationError`,
which names the offending field and the reason.

Examples
--------
>>> from ml.segregation import split
>>> s = split(10, strategy="sequential", ratio=0.7)
>>> s.train_idx
array([0, 1, 2, 3, 4, 5, 6])
>>> s.test_idx
array([7, 8, 9])
>>> [w.code.value for w in s.warnings]
['tiny_split', 'tiny_split']

"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from numbers import Integral, Real
from typing import Any, overload

import numpy as np

__all__ = [
    "MAX_CLASS_SHARE_GAP",
    "MIN_CLASS_ROWS_PER_SIDE",
    "MIN_ROWS_PER_SIDE",
    "SegregationError",
    "Split",
    "SplitStrategy",
    "SplitWarning",
    "StrategyFn",
    "USUAL_RATIO_RANGE",
    "WarningCode",
    "available_strategies",
    "register_strategy",
    "split",
    "train_size",
    "unregister_strategy",
]

#: A side with fewer rows than this gets a ``tiny_split`` warning.
MIN_ROWS_PER_SIDE = 10
#: A class with fewer rows than this on a side gets a ``class_underrepresented`` warning.
MIN_CLASS_ROWS_PER_SIDE = 5
#: A class whose share of a side differs from its overall share by more than
#: this (a fraction: 0.10 is 10 percentage points) gets a ``class_underrepresented`` warning.
MAX_CLASS_SHARE_GAP = 0.10
#: A ratio outside this closed range gets an ``extreme_ratio`` warning.
USUAL_RATIO_RANGE = (0.5, 0.95)

_MAX_ROWS_SHOWN = 5

#: ``fn(n_rows, labels, ratio, seed) -> (train_idx, test_idx)``; ``labels`` is a
#: 1-D numpy array of length ``n_rows``, or None when the split has no labels.
StrategyFn = Callable[[int, "np.ndarray | None", float, int], tuple[Any, Any]]


class SplitStrategy(str, Enum):
    """The built-in strategy names; :func:`split` also accepts plain strings."""

    SEQUENTIAL = "sequential"
    RANDOM = "random"
    SHUFFLED = "shuffled"
    STRATIFIED = "stratified"


class WarningCode(str, Enum):
    """What a :class:`SplitWarning` is about."""

    TINY_SPLIT = "tiny_split"
    CLASS_UNDERREPRESENTED = "class_underrepresented"
    EXTREME_RATIO = "extreme_ratio"


@dataclass(frozen=True)
class SplitWarning:
    """A problem with a split that does not prevent it.

    Parameters
    ----------
    code : WarningCode
        Machine-readable kind of problem.
    message : str
        What is wrong, for a person.
    """

    code: WarningCode
    message: str


class SegregationError(ValueError):
    """Bad input to the segregation API.

    Parameters
    ----------
    field : str
        The argument (or result) at fault, e.g. ``"ratio"`` or ``"strategy"``.
    reason : str
        Why it was refused.

    Examples
    --------
    >>> try:
    ...     split(100, ratio=1.5)
    ... except SegregationError as error:
    ...     print(error.field, "|", error.reason)
    ratio | must be strictly between 0 and 1, got 1.5
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices of a train side and a test side that partition ``range(n_rows)``.

    The index arrays are copied to read-only int64 arrays. Construction checks
    that both sides are non-empty and that together they hold each row of
    ``0 .. n_rows - 1`` exactly once. Two splits are equal when all their
    fields are equal (index arrays compared element-wise, order included).

    Parameters
    ----------
    train_idx, test_idx : array-like of int
        Row indices of each side, in the order the strategy documents.
    strategy : str
        Name of the strategy that produced the split.
    ratio : float
        The requested share of rows in train.
    seed : int
        The seed the strategy was given.
    warnings : tuple of SplitWarning
        Problems found with this split (empty when none).

    Examples
    --------
    >>> s = split(4, strategy="sequential", ratio=0.5)
    >>> s.n_train, s.n_test, s.n_rows
    (2, 2, 4)
    >>> s == split(4, strategy="sequential", ratio=0.5)
    True
    """

    train_idx: np.ndarray
    test_idx: np.ndarray
    strategy: str
    ratio: float
    seed: int
    warnings: tuple[SplitWarning, ...] = field(default=())

    def __post_init__(self) -> None:
        train = _frozen_copy(_as_index_array(self.train_idx, "train_idx"))
        test = _frozen_copy(_as_index_array(self.test_idx, "test_idx"))
        _check_partition(train, test, train.size + test.size, "train_idx/test_idx")
        object.__setattr__(self, "train_idx", train)
        object.__setattr__(self, "test_idx", test)
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @property
    def n_train(self) -> int:
        """Number of rows on the train side."""
        return int(self.train_idx.size)

    @property
    def n_test(self) -> int:
        """Number of rows on the test side."""
        return int(self.test_idx.size)

    @property
    def n_rows(self) -> int:
        """Number of rows split."""
        return self.n_train + self.n_test

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        same_fields = (self.strategy, self.ratio, self.seed, self.warnings) == (
            other.strategy,
            other.ratio,
            other.seed,
            other.warnings,
        )
        return (
            same_fields
            and np.array_equal(self.train_idx, other.train_idx)
            and np.array_equal(self.test_idx, other.test_idx)
        )

    __hash__ = None  # type: ignore[assignment]  # compared by value; arrays are not hashable

    @overload
    def take(self, X: Any, y: None = None) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def take(
        self, X: Any, y: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...

    def take(self, X: Any, y: Any = None) -> tuple[np.ndarray, ...]:
        """Select the train and test rows of ``X`` (and of ``y``).

        Parameters
        ----------
        X : array-like
            Data with ``n_rows`` rows (first axis).
        y : array-like, optional
            Labels or targets with ``n_rows`` entries.

        Returns
        -------
        tuple of numpy.ndarray
            ``(X_train, X_test)`` without ``y``, ``(X_train, X_test, y_train,
            y_test)`` with it (the order of ``sklearn.model_selection.train_test_split``).

        Raises
        ------
        SegregationError
            If ``X`` or ``y`` does not have ``n_rows`` rows.

        Examples
        --------
        >>> import numpy as np
        >>> s = split(4, strategy="sequential", ratio=0.75)
        >>> X = np.array([[0, 0], [1, 1], [2, 2], [3, 3]])
        >>> X_train, X_test = s.take(X)
        >>> X_test
        array([[3, 3]])
        >>> X_train, X_test, y_train, y_test = s.take(X, ["a", "b", "c", "d"])
        >>> y_train.tolist(), y_test.tolist()
        (['a', 'b', 'c'], ['d'])
        """
        taken = self._take_rows(X, "X")
        if y is None:
            return taken
        return taken + self._take_rows(y, "y")

    def _take_rows(self, values: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
        array = np.asarray(values)
        if array.ndim == 0 or array.shape[0] != self.n_rows:
            found = "a scalar" if array.ndim == 0 else f"{array.shape[0]} rows"
            raise SegregationError(name, f"must have {self.n_rows} rows, got {found}")
        return array[self.train_idx], array[self.test_idx]


# --------------------------------------------------------------------------- sizes


def train_size(n_rows: int, ratio: float) -> int:
    """Number of train rows for a split of ``n_rows`` rows at ``ratio``.

    ``ratio * n_rows`` rounded to the nearest integer (halves up), clipped to
    ``[1, n_rows - 1]`` so that neither side is empty.

    Examples
    --------
    >>> train_size(10, 0.75), train_size(10, 0.74), train_size(10, 0.99)
    (8, 7, 9)
    """
    n_rows = _check_n_rows(n_rows)
    ratio = _check_ratio(ratio)
    return min(max(_round_half_up(ratio * n_rows), 1), n_rows - 1)


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _cut(rows: np.ndarray, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    return rows[:n_train], rows[n_train:]


# ---------------------------------------------------------------- built-in strategies


def _sequential(n_rows: int, labels: np.ndarray | None, ratio: float, seed: int):
    return _cut(np.arange(n_rows, dtype=np.int64), train_size(n_rows, ratio))


def _shuffled(n_rows: int, labels: np.ndarray | None, ratio: float, seed: int):
    permuted = np.random.default_rng(seed).permutation(n_rows)
    return _cut(permuted, train_size(n_rows, ratio))


def _random(n_rows: int, labels: np.ndarray | None, ratio: float, seed: int):
    train, test = _shuffled(n_rows, labels, ratio, seed)
    return np.sort(train), np.sort(test)


def _stratified(n_rows: int, labels: np.ndarray | None, ratio: float, seed: int):
    """Each class with two rows or more is cut by :func:`train_size`; ``split`` ensures labels."""
    rng = np.random.default_rng(seed)
    classes = _rows_by_class(_encode_classes(labels)[1])
    groups = [rows for rows in classes if rows.size >= 2]
    singletons = np.concatenate([rows for rows in classes if rows.size == 1] or [[]])
    parts = [_cut(rng.permutation(rows), train_size(rows.size, ratio)) for rows in groups]
    if singletons.size:
        parts.append(_split_singletons(rng, singletons.astype(np.int64), ratio, bool(groups)))
    train = np.sort(np.concatenate([train for train, _ in parts]))
    test = np.sort(np.concatenate([test for _, test in parts]))
    return train, test


def _split_singletons(
    rng: np.random.Generator, rows: np.ndarray, ratio: float, has_other_classes: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of classes seen once are pooled and split by the same ratio.

    When they are all the data, the pool must leave both sides non-empty.
    """
    if has_other_classes:
        return _cut(rng.permutation(rows), _round_half_up(ratio * rows.size))
    return _cut(rng.permutation(rows), train_size(rows.size, ratio))


def _encode_classes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels and, for each row, the index of its label."""
    try:
        classes, codes = np.unique(labels, return_inverse=True)
    except TypeError as error:
        raise SegregationError("labels", f"must be mutually comparable ({error})") from None
    return classes, codes.reshape(-1)


def _rows_by_class(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices of each class, in class order, ascending within a class."""
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes))[:-1])


_BUILTIN_STRATEGIES: dict[str, StrategyFn] = {
    SplitStrategy.SEQUENTIAL.value: _sequential,
    SplitStrategy.RANDOM.value: _random,
    SplitStrategy.SHUFFLED.value: _shuffled,
    SplitStrategy.STRATIFIED.value: _stratified,
}
_custom_strategies: dict[str, StrategyFn] = {}


# --------------------------------------------------------------------------- registry


def register_strategy(name: str, fn: StrategyFn, *, replace: bool = False) -> None:
    """Register a custom strategy under ``name``.

    Parameters
    ----------
    name : str
        Non-empty; not a built-in name.
    fn : callable
        ``fn(n_rows, labels, ratio, seed) -> (train_idx, test_idx)``. ``labels``
        is a 1-D numpy array or None. The two index sequences must be integer,
        non-empty, disjoint, and together hold each row ``0 .. n_rows - 1``
        exactly once; :func:`split` checks this and keeps their order.
    replace : bool, default False
        Allow replacing a custom strategy already registered under ``name``.

    Raises
    ------
    SegregationError
        For a bad name, a non-callable ``fn``, or a name already taken.

    Examples
    --------
    >>> def evens_train(n_rows, labels, ratio, seed):
    ...     return list(range(0, n_rows, 2)), list(range(1, n_rows, 2))
    >>> register_strategy("evens_train", evens_train)
    >>> split(6, strategy="evens_train").test_idx
    array([1, 3, 5])
    >>> unregister_strategy("evens_train")
    """
    if not isinstance(name, str) or not name:
        raise SegregationError("name", f"must be a non-empty string, got {name!r}")
    if name in _BUILTIN_STRATEGIES:
        raise SegregationError("name", f"{name!r} is a built-in strategy and cannot be replaced")
    if name in _custom_strategies and not replace:
        raise SegregationError("name", f"{name!r} is already registered (pass replace=True)")
    if not callable(fn):
        raise SegregationError("fn", f"must be callable, got {type(fn).__name__}")
    _custom_strategies[name] = fn


def unregister_strategy(name: str) -> None:
    """Remove a custom strategy; raises :class:`SegregationError` if it is not registered."""
    if name not in _custom_strategies:
        raise SegregationError("name", f"no custom strategy named {name!r}")
    del _custom_strategies[name]


def available_strategies() -> tuple[str, ...]:
    """Built-in strategy names, then custom ones in registration order.

    Examples
    --------
    >>> available_strategies()[:4]  # custom names, if any, follow
    ('sequential', 'random', 'shuffled', 'stratified')
    """
    return (*_BUILTIN_STRATEGIES, *_custom_strategies)


def _resolve_strategy(strategy: object) -> tuple[str, StrategyFn]:
    name = strategy.value if isinstance(strategy, SplitStrategy) else strategy
    if not isinstance(name, str):
        raise SegregationError("strategy", f"must be a string, got {type(strategy).__name__}")
    fn = _BUILTIN_STRATEGIES.get(name) or _custom_strategies.get(name)
    if fn is None:
        known = ", ".join(available_strategies())
        raise SegregationError("strategy", f"unknown strategy {name!r} (known: {known})")
    return name, fn


# ------------------------------------------------------------------------- validation


def _count_rows(n_rows: object) -> int:
    if isinstance(n_rows, Integral) and not isinstance(n_rows, (bool, np.bool_)):
        return int(n_rows)
    if isinstance(n_rows, (bool, np.bool_, Real)):
        raise SegregationError("n_rows", f"must be an int or sized data, got {n_rows!r}")
    shape = getattr(n_rows, "shape", None)
    if shape is not None:
        if len(shape) == 0:
            raise SegregationError("n_rows", "data must have at least one dimension")
        return int(shape[0])
    try:
        return len(n_rows)  # type: ignore[arg-type]
    except TypeError:
        raise SegregationError(
            "n_rows", f"must be an int or sized data, got {type(n_rows).__name__}"
        ) from None


def _check_n_rows(n_rows: object) -> int:
    count = _count_rows(n_rows)
    if count < 2:
        raise SegregationError("n_rows", f"must be at least 2 to split, got {count}")
    return count


def _check_ratio(ratio: object) -> float:
    if isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, Real):
        raise SegregationError("ratio", f"must be a real number, got {ratio!r}")
    value = float(ratio)
    if math.isnan(value):
        raise SegregationError("ratio", "must be a number, got NaN")
    if not 0.0 < value < 1.0:
        raise SegregationError("ratio", f"must be strictly between 0 and 1, got {value:g}")
    return value


def _check_seed(seed: object) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, Integral):
        raise SegregationError("seed", f"must be an int, got {seed!r}")
    if seed < 0:
        raise SegregationError("seed", f"must be non-negative, got {seed}")
    return int(seed)


def _check_labels(labels: object, n_rows: int, with_labels: object) -> np.ndarray | None:
    if not isinstance(with_labels, (bool, np.bool_)):
        raise SegregationError("with_labels", f"must be a bool, got {with_labels!r}")
    if labels is None:
        return None
    if not with_labels:
        raise SegregationError("labels", "given while with_labels=False")
    try:
        array = np.asarray(labels)
    except ValueError as error:
        raise SegregationError("labels", f"cannot be read as an array ({error})") from None
    if array.ndim != 1:
        raise SegregationError("labels", f"must be one-dimensional, got shape {array.shape}")
    if array.size != n_rows:
        raise SegregationError("labels", f"has {array.size} entries for {n_rows} rows")
    return array


def _as_index_array(values: object, field_name: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except ValueError as error:
        raise SegregationError(field_name, f"cannot be read as indices ({error})") from None
    if array.ndim != 1:
        raise SegregationError(field_name, f"must be 1-D indices, got shape {array.shape}")
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise SegregationError(field_name, f"must be integer indices, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _frozen_copy(array: np.ndarray) -> np.ndarray:
    copy = np.array(array, dtype=np.int64)
    copy.flags.writeable = False
    return copy


def _shown(rows: np.ndarray) -> str:
    listed = ", ".join(str(row) for row in rows[:_MAX_ROWS_SHOWN])
    return f"[{listed}{', ...' if rows.size > _MAX_ROWS_SHOWN else ''}]"


def _check_partition(train: np.ndarray, test: np.ndarray, n_rows: int, field_name: str) -> None:
    """Both sides non-empty, every row of ``0 .. n_rows - 1`` exactly once."""
    if train.size == 0 or test.size == 0:
        sizes = f"got {train.size} train and {test.size} test rows"
        raise SegregationError(field_name, f"both sides must be non-empty, {sizes}")
    rows = np.concatenate([train, test])
    outside = rows[(rows < 0) | (rows >= n_rows)]
    if outside.size:
        raise SegregationError(field_name, f"rows out of range 0..{n_rows - 1}: {_shown(outside)}")
    overlap = np.intersect1d(train, test)
    if overlap.size:
        raise SegregationError(field_name, f"train and test overlap at rows {_shown(overlap)}")
    counts = np.bincount(rows, minlength=n_rows)
    if (counts > 1).any():
        raise SegregationError(field_name, f"rows repeated: {_shown(np.flatnonzero(counts > 1))}")
    if (counts == 0).any():
        missing = _shown(np.flatnonzero(counts == 0))
        raise SegregationError(field_name, f"incomplete, rows missing: {missing}")


def _run_strategy(
    name: str, fn: StrategyFn, n_rows: int, labels: np.ndarray | None, ratio: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    result = fn(n_rows, labels, ratio, seed)
    try:
        train_values, test_values = result
    except (TypeError, ValueError):
        raise SegregationError(
            "strategy", f"{name!r} must return (train_idx, test_idx), got {type(result).__name__}"
        ) from None
    train = _as_index_array(train_values, "strategy")
    test = _as_index_array(test_values, "strategy")
    _check_partition(train, test, n_rows, "strategy")
    return train, test


# --------------------------------------------------------------------------- warnings


def _ratio_warnings(ratio: float) -> list[SplitWarning]:
    low, high = USUAL_RATIO_RANGE
    if low <= ratio <= high:
        return []
    message = f"ratio {ratio:g} is outside the usual range [{low:g}, {high:g}]"
    return [SplitWarning(WarningCode.EXTREME_RATIO, message)]


def _size_warnings(train: np.ndarray, test: np.ndarray) -> list[SplitWarning]:
    return [
        SplitWarning(
            WarningCode.TINY_SPLIT,
            f"the {side} side has {rows.size} rows (fewer than {MIN_ROWS_PER_SIDE})",
        )
        for side, rows in (("train", train), ("test", test))
        if rows.size < MIN_ROWS_PER_SIDE
    ]


def _class_warnings(labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> list[SplitWarning]:
    classes, codes = _encode_classes(labels)
    overall_share = np.bincount(codes, minlength=classes.size) / codes.size
    found = []
    for side, rows in (("train", train), ("test", test)):
        counts = np.bincount(codes[rows], minlength=classes.size)
        for label, count, share, overall in zip(classes, counts, counts / rows.size, overall_share):
            problems = list(_class_problems(side, int(count), float(share), float(overall)))
            if problems:
                message = f"class {_label_repr(label)} in {side}: " + "; ".join(problems)
                found.append(SplitWarning(WarningCode.CLASS_UNDERREPRESENTED, message))
    return found


def _class_problems(side: str, count: int, share: float, overall: float) -> Iterator[str]:
    if count < MIN_CLASS_ROWS_PER_SIDE:
        yield f"{count} rows (fewer than {MIN_CLASS_ROWS_PER_SIDE})"
    if abs(share - overall) > MAX_CLASS_SHARE_GAP:
        yield f"{share:.1%} of {side} against {overall:.1%} overall"


def _label_repr(label: object) -> str:
    return repr(label.item() if isinstance(label, np.generic) else label)


def _collect_warnings(
    ratio: float, labels: np.ndarray | None, train: np.ndarray, test: np.ndarray
) -> tuple[SplitWarning, ...]:
    found = _ratio_warnings(ratio) + _size_warnings(train, test)
    if labels is not None:
        found += _class_warnings(labels, train, test)
    return tuple(found)


# ------------------------------------------------------------------------ entry point


def split(
    n_rows: int | Sequence[Any] | np.ndarray,
    /,
    *,
    strategy: str = "random",
    ratio: float = 0.8,
    seed: int = 0,
    labels: Sequence[Any] | np.ndarray | None = None,
    with_labels: bool = True,
) -> Split:
    """Split ``n_rows`` rows into train and test row indices.

    Parameters
    ----------
    n_rows : int or array-like
        The number of rows (at least 2), or the data itself: its ``shape[0]``
        or ``len()`` is used.
    strategy : str, default "random"
        ``"sequential"``, ``"random"``, ``"shuffled"``, ``"stratified"`` (see the
        module docstring for order rules) or a name given to :func:`register_strategy`.
    ratio : float, default 0.8
        Share of rows in train, strictly between 0 and 1. The train side gets
        :func:`train_size` rows (per class for ``"stratified"``).
    seed : int, default 0
        Non-negative seed for ``numpy.random.default_rng``: the same seed gives
        the same split.
    labels : array-like, optional
        One label per row. Required by ``"stratified"``; with any strategy they
        are used to warn about under-represented classes.
    with_labels : bool, default True
        False declares unlabelled data: ``labels`` must then be None, and
        ``"stratified"`` is refused.

    Returns
    -------
    Split
        The indices of both sides and the warnings found.

    Raises
    ------
    SegregationError
        For any invalid argument, or a custom strategy whose result is not a
        partition of ``range(n_rows)`` into two non-empty sides.

    Examples
    --------
    >>> s = split(1000, strategy="random", ratio=0.8, seed=7)
    >>> s.n_train, s.n_test, s.warnings
    (800, 200, ())
    >>> bool((s.train_idx[1:] > s.train_idx[:-1]).all())  # random: sides sorted
    True
    >>> s == split(1000, strategy="random", ratio=0.8, seed=7)
    True

    Stratified splits keep class shares; warnings report what went wrong:

    >>> labels = ["spam"] * 20 + ["ham"] * 80
    >>> s = split(100, strategy="stratified", ratio=0.8, seed=1, labels=labels)
    >>> list(s.take(labels)[1]).count("spam")
    4
    >>> [w.message for w in s.warnings]
    ["class 'spam' in test: 4 rows (fewer than 5)"]

    Splitting data directly, without labels:

    >>> import numpy as np
    >>> X = np.arange(20).reshape(10, 2)
    >>> s = split(X, strategy="sequential", ratio=0.6, with_labels=False)
    >>> s.take(X)[1]
    array([[12, 13],
           [14, 15],
           [16, 17],
           [18, 19]])
    """
    count = _check_n_rows(n_rows)
    ratio = _check_ratio(ratio)
    seed = _check_seed(seed)
    name, fn = _resolve_strategy(strategy)
    label_array = _check_labels(labels, count, with_labels)
    if name == SplitStrategy.STRATIFIED.value and label_array is None:
        needs = "with_labels=True and labels" if not with_labels else "labels"
        raise SegregationError("labels", f"the stratified strategy needs {needs}")
    train, test = _run_strategy(name, fn, count, label_array, ratio, seed)
    warnings = _collect_warnings(ratio, label_array, train, test)
    return Split(train, test, strategy=name, ratio=ratio, seed=seed, warnings=warnings)
