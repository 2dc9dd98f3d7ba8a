"""Feature transforms: their protocol, the built-in ones and the registry (a factory by name).

A transform is a class. The feature set (:mod:`ml.features`) builds one
instance per step with ``cls(columns, params)``, fits it on the training batch
and keeps its fitted state; the same instance then serves batch (offline) and
single-row (online) requests with the same code. There are three kinds:

``extract``
    Reads raw columns (read first as the class's ``input_type``, see
    :mod:`ml.quality`) and produces new numeric features, in the order given
    by ``output_parts()``.
``transform``
    Rewrites the features it is given, in place: one output per input.
``select``
    Keeps a subset of the features it is given: ``selected()`` gives their
    positions. With ``keep_others = True`` the features it was not given stay;
    with False (``select_list``) only the selected ones remain.

The protocol (subclass :class:`Transform` to get the defaults):

- ``kind``, ``input_type`` (extract only), ``needs_label``, ``keep_others``
  (select only), ``PARAMS`` (a dict of :class:`Param`, or None to accept any
  JSON-able params unchecked) -- class attributes;
- ``__init__(columns, params)`` validates the params (raise
  :class:`FeatureSpecError` or ValueError);
- ``fit(columns, y=None)``: arrays of the training rows (float64, NaN where
  missing, or object arrays for the ``category``/``text``/``raw`` input types);
- ``transform_batch(columns) -> list of float64 arrays``;
- ``transform_one(row) -> list of float``: one row as ``{input name: value}``;
  the default runs ``transform_batch`` on one-row arrays, so both paths share
  their code and give the same numbers bit for bit;
- ``check_batch(columns) -> list of Flag``: rows the step refuses (called
  before ``fit`` at fit time, so it must not depend on fitted state);
- ``state() -> dict`` (JSON-able, finite floats), ``from_state(columns, params, state)``.

Built-in transforms
-------------------
Extraction (``kind = "extract"``):

- ``numeric``: the number itself; ``min``/``max`` bound it (outside = out of range).
- ``onehot``: one 0/1 feature per category learned at fit (the ``max_categories``
  most frequent); an unknown category gives all zeros.
- ``hashing``: ``n_features`` 0/1 features; the category text's CRC-32 picks one.
- ``datetime_parts``: ``parts`` of year, month, day, weekday (Monday=0), hour, in UTC.
- ``text_length``: number of characters.
- ``text_tokens``: number of tokens (``split``: ``words`` = runs of ``\\w``, or ``whitespace``).

Transformation (``kind = "transform"``):

- ``impute``: NaN -> training mean or median, or ``value`` (``strategy``).
- ``scale``: standard scaling (population std; a constant feature is only centred).
- ``log``: ``log1p``; a negative value is an out-of-range error.
- ``clip``: clip to the ``lower``/``upper`` quantiles learned at fit.
- ``bucketize``: bucket index 0..len(edges), with ``edges`` or ``n_bins`` quantile bins.

Selection (``kind = "select"``):

- ``select_chi2``: the ``k`` best chi-square scores against the label (non-negative features).
- ``select_variance``: the features whose variance exceeds ``threshold``.
- ``select_list``: exactly the features named in ``columns``, in that order.

Examples
--------
>>> import numpy as np
>>> from ml.transforms import get_transform
>>> onehot = get_transform("onehot")(["color"], {})
>>> onehot.fit([np.array(["red", "blue", "red"], dtype=object)])
>>> onehot.output_parts()
['blue', 'red']
>>> onehot.transform_one({"color": "green"})
[0.0, 0.0]
>>> onehot.state()
{'categories': [['blue', 'red']]}
"""

from __future__ import annotations

import math
import re
import threading
import warnings
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, ClassVar

import numpy as np

from ml.quality import INPUT_TYPES, Flag, coerce_column, show

__all__ = [
    "FEATURE_NAME_PATTERN",
    "KINDS",
    "NAME_PATTERN",
    "FeatureSpecError",
    "Param",
    "Transform",
    "available_transforms",
    "check_name",
    "check_params",
    "chi2_scores",
    "get_transform",
    "register_transform",
    "unregister_transform",
]

#: Step names, raw column names, label, key and transform names.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,62}\Z")
#: Feature names (``<step>[.<column>][.<part>]``): the same characters, longer.
FEATURE_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,254}\Z")
KINDS: tuple[str, ...] = ("extract", "transform", "select")
DATETIME_PARTS: tuple[str, ...] = ("year", "month", "day", "weekday", "hour")
_MAX_PART = 48
_WORDS = re.compile(r"\w+")


class FeatureSpecError(ValueError):
    """A bad feature spec, parameter, training batch or serialized feature set.

    Parameters
    ----------
    field : str
        Where, as a path: ``"steps[2].params.k"``, ``"label"``, ``"toml"``, ``"rows"``...
    reason : str
        Why, in words a user can act on.

    Examples
    --------
    >>> err = FeatureSpecError("steps[0].name", "duplicate step name 'age'")
    >>> str(err), isinstance(err, ValueError)
    ("steps[0].name: duplicate step name 'age'", True)
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self):  # keep field/reason across pickling (e.g. Ray)
        return (type(self), (self.field, self.reason))

    def within(self, prefix: str, note: str = "") -> FeatureSpecError:
        """The same error with ``prefix`` before its field and ``note`` before its reason."""
        return FeatureSpecError(f"{prefix}.{self.field}" if self.field else prefix, note + self.reason)


def check_name(value: Any, field: str, *, what: str = "name", feature: bool = False) -> str:
    """Return ``value`` if it is a valid name, else raise :class:`FeatureSpecError`.

    Examples
    --------
    >>> check_name("age_years", "columns[0]")
    'age_years'
    >>> check_name("x'; DROP TABLE t;--", "columns[0]", what="column name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ml.transforms.FeatureSpecError: columns[0]: "x'; DROP TABLE t;--" is not a valid column name: ...
    """
    pattern, limit = (FEATURE_NAME_PATTERN, 255) if feature else (NAME_PATTERN, 63)
    if not isinstance(value, str):
        raise FeatureSpecError(field, f"{what} must be a string; got {type(value).__name__}")
    if not pattern.match(value):
        raise FeatureSpecError(field, f"{show(value)} is not a valid {what}: it must start with a letter and "
                                      f"hold only letters, digits, '_', '.', '-' ({limit} at most)")
    return value


# --------------------------------------------------------------------------- params

_REQUIRED: Any = object()


@dataclass(frozen=True)
class Param:
    """One parameter of a transform.

    Parameters
    ----------
    kind : {"int", "float", "str", "bool", "floats", "strs"}
        ``floats``/``strs`` are non-empty lists.
    default : optional
        Omit for a required parameter.
    nullable : bool
        Whether None is allowed.
    choices : tuple of str, optional
        Allowed strings (``str`` and ``strs``).
    low, high : float, optional
        Inclusive bounds (``int``, ``float``, ``floats``).
    """

    kind: str
    default: Any = _REQUIRED
    nullable: bool = False
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    doc: str = ""

    def check(self, name: str, value: Any) -> Any:
        """The validated value; raises :class:`FeatureSpecError` on ``params.<name>``."""
        field = f"params.{name}"
        if value is None:
            if self.nullable:
                return None
            raise FeatureSpecError(field, "must not be null")
        if self.kind in ("floats", "strs"):
            if not isinstance(value, (list, tuple)) or not value:
                raise FeatureSpecError(field, f"must be a non-empty list; got {show(value)}")
            item = "float" if self.kind == "floats" else "str"
            checked = [self._scalar(item, f"{field}[{i}]", v) for i, v in enumerate(value)]
            if self.kind == "strs" and len(set(checked)) != len(checked):
                raise FeatureSpecError(field, f"has duplicates: {show(value)}")
            return checked
        return self._scalar(self.kind, field, value)

    def _scalar(self, kind: str, field: str, value: Any) -> Any:
        if kind == "bool":
            if not isinstance(value, bool):
                raise FeatureSpecError(field, f"must be a bool; got {show(value)}")
            return value
        if kind == "str":
            if not isinstance(value, str):
                raise FeatureSpecError(field, f"must be a string; got {show(value)}")
            if self.choices is not None and value not in self.choices:
                raise FeatureSpecError(field, f"must be one of {', '.join(self.choices)}; got {show(value)}")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise FeatureSpecError(field, f"must be an integer; got {show(value)}")
        elif isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise FeatureSpecError(field, f"must be a finite number; got {show(value)}")
        else:
            value = float(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise FeatureSpecError(field, f"must be in [{_bound(self.low)}, {_bound(self.high)}]; got {show(value)}")
        return value


def _bound(value: float | None) -> str:
    return "..." if value is None else (str(int(value)) if float(value).is_integer() else str(value))


def check_params(schema: Mapping[str, Param] | None, params: Any) -> dict[str, Any]:
    """Validate ``params`` against ``schema`` and fill in defaults (``schema=None``: as given).

    Examples
    --------
    >>> check_params({"k": Param("int", low=1)}, {"k": 3})
    {'k': 3}
    >>> check_params({"k": Param("int", low=1)}, {"k": 0})
    Traceback (most recent call last):
    ...
    ml.transforms.FeatureSpecError: params.k: must be in [1, ...]; got 0
    """
    if not isinstance(params, Mapping):
        raise FeatureSpecError("params", f"must be a table of parameters; got {type(params).__name__}")
    for name in params:
        if not isinstance(name, str):
            raise FeatureSpecError("params", f"parameter names must be strings; got {show(name)}")
    if schema is None:
        return dict(params)
    unknown = [name for name in params if name not in schema]
    if unknown:
        known = ", ".join(schema) or "none"
        raise FeatureSpecError(f"params.{unknown[0]}" if NAME_PATTERN.match(unknown[0]) else "params",
                               f"unknown parameter {show(unknown[0])}; known: {known}")
    out = {}
    for name, spec in schema.items():
        if name in params:
            out[name] = spec.check(name, params[name])
        elif spec.default is _REQUIRED:
            raise FeatureSpecError(f"params.{name}", "is required")
        else:
            out[name] = list(spec.default) if isinstance(spec.default, (list, tuple)) else spec.default
    return out


# --------------------------------------------------------------------------- the protocol


class Transform:
    """Base class of transforms: the defaults of the protocol (see the module docstring).

    Parameters
    ----------
    columns : list of str
        The step's inputs: raw columns (``extract``) or feature names.
    params : dict
        The step's parameters, validated against ``PARAMS``.
    """

    kind: ClassVar[str] = "transform"
    input_type: ClassVar[str] = "number"
    needs_label: ClassVar[bool] = False
    keep_others: ClassVar[bool] = True
    PARAMS: ClassVar[Mapping[str, Param] | None] = None

    def __init__(self, columns: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        self.columns = list(columns)
        self.params = check_params(type(self).PARAMS, {} if params is None else params)

    def fit(self, columns: list[np.ndarray], y: np.ndarray | None = None) -> None:
        """Learn the state from the training rows' input arrays (nothing by default)."""

    def transform_batch(self, columns: list[np.ndarray]) -> list[np.ndarray]:
        """One float64 array per output (for ``select``: the selected inputs)."""
        if self.kind == "select":
            return [columns[p] for p in self.selected()]
        raise NotImplementedError(f"{type(self).__name__}.transform_batch")

    def transform_one(self, row: Mapping[str, Any]) -> list[float]:
        """The outputs for one row ``{input name: value}``, through :meth:`transform_batch`."""
        if self.kind == "extract":
            arrays = [coerce_column([row.get(name)], self.input_type).values for name in self.columns]
        else:
            arrays = [np.array([np.nan if row.get(name) is None else row[name]], dtype=np.float64)
                      for name in self.columns]
        with np.errstate(all="ignore"):
            return [float(np.asarray(out, dtype=np.float64)[0]) for out in self.transform_batch(arrays)]

    def check_batch(self, columns: list[np.ndarray]) -> list[Flag]:
        """Rows refused as out of range (none by default)."""
        return []

    def output_parts(self) -> list[str | None]:
        """``extract``: one label per output; the feature is ``<step>.<label>``, or ``<step>`` for None.
        Default: one output per input column."""
        return [None] if len(self.columns) == 1 else [_part(c) for c in self.columns]

    def output_columns(self) -> list[list[int]]:
        """``extract``: per output, the positions of the input columns it comes from."""
        parts = self.output_parts()
        if len(parts) == len(self.columns):
            return [[p] for p in range(len(parts))]
        return [list(range(len(self.columns))) for _ in parts]

    def selected(self) -> list[int]:
        """``select``: positions of the inputs kept (all by default)."""
        return list(range(len(self.columns)))

    def state(self) -> dict[str, Any]:
        """The fitted state, JSON-able (nothing by default)."""
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        if state:
            raise FeatureSpecError("state", f"unexpected fields {', '.join(map(show, state))}")

    @classmethod
    def from_state(cls, columns: Sequence[str], params: Mapping[str, Any], state: Mapping[str, Any]) -> Transform:
        """A fitted instance from its params and :meth:`state`."""
        instance = cls(columns, params)
        instance.load_state(state)
        return instance


def _part(text: str) -> str:
    """A feature-name part from arbitrary text: other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", text)[:_MAX_PART] or "_"


def _unique_parts(texts: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for text in texts:
        base = name = _part(text)
        counter = 1
        while name in seen:
            counter += 1
            name = f"{base}_{counter}"
        seen.add(name)
        out.append(name)
    return out


def _state_field(state: Mapping[str, Any], name: str, n_columns: int, item: type) -> list:
    """``state[name]``: a list with one list of ``item`` per input column."""
    value = state.get(name) if isinstance(state, Mapping) else None
    if (not isinstance(value, list) or len(value) != n_columns
            or not all(isinstance(v, list) and all(isinstance(x, item) and not isinstance(x, bool) for x in v)
                       for v in value)):
        raise FeatureSpecError(f"state.{name}", f"must hold one list of {item.__name__} per column")
    if set(state) != {name}:
        raise FeatureSpecError("state", f"must hold exactly {name!r}")
    return value


def _finite(values: np.ndarray, name: str, what: str) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise FeatureSpecError("fit", f"feature {name!r} has no training values to learn {what} from")
    return finite


# --------------------------------------------------------------------------- extraction


class _PerColumn(Transform):
    """An extraction whose every input column yields its own block of outputs."""

    kind = "extract"
    PARAMS: ClassVar[Mapping[str, Param] | None] = {}

    def parts(self, position: int) -> list[str | None]:
        return [None]

    def extract(self, position: int, values: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def output_parts(self) -> list[str | None]:
        prefix = len(self.columns) > 1
        out: list[str | None] = []
        for p, column in enumerate(self.columns):
            for part in self.parts(p):
                pieces = [piece for piece in ((column if prefix else None), part) if piece is not None]
                out.append(".".join(pieces) if pieces else None)
        return out

    def output_columns(self) -> list[list[int]]:
        return [[p] for p in range(len(self.columns)) for _ in self.parts(p)]

    def transform_batch(self, columns: list[np.ndarray]) -> list[np.ndarray]:
        return [out for p, values in enumerate(columns) for out in self.extract(p, values)]


class NumericFeature(_PerColumn):
    """``numeric``: the number as it is; values outside ``[min, max]`` are out of range."""

    PARAMS = {"min": Param("float", None, nullable=True), "max": Param("float", None, nullable=True)}

    def __init__(self, columns: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(columns, params)
        low, high = self.params["min"], self.params["max"]
        if low is not None and high is not None and low > high:
            raise FeatureSpecError("params.min", f"must not exceed max ({low} > {high})")

    def check_batch(self, columns: list[np.ndarray]) -> list[Flag]:
        low, high = self.params["min"], self.params["max"]
        flags = []
        for p, values in enumerate(columns):
            if low is not None:
                flags.append(Flag(p, values < low, f"is below the minimum {low}"))
            if high is not None:
                flags.append(Flag(p, values > high, f"is above the maximum {high}"))
        return flags

    def extract(self, position: int, values: np.ndarray) -> list[np.ndarray]:
        return [np.array(values, dtype=np.float64)]


class OneHotEncoder(_PerColumn):
    """``onehot``: a 0/1 feature per category seen at fit (the ``max_categories`` most frequent,
    ties by text); an unknown category gives all zeros, a missing value all NaN."""

    input_type = "category"
    PARAMS = {"max_categories": Param("int", 100, low=1, high=10_000)}

    def __init__(self, columns: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(columns, params)
        self.categories: list[list[str]] | None = None

    def fit(self, columns: list[np.ndarray], y: np.ndarray | None = None) -> None:
        self.categories = []
        for name, values in zip(self.columns, columns):
            counts = Counter(v for v in values if v is not None)
            if not counts:
                raise FeatureSpecError("fit", f"column {name!r} has no training values to learn categories from")
            top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: self.params["max_categories"]]
            self.categories.append(sorted(category for category, _ in top))

    def _fitted(self) -> list[list[str]]:
        if self.categories is None:
            raise FeatureSpecError("state", "onehot is not fitted")
        return self.categories

    def parts(self, position: int) -> list[str | None]:
        return list(_unique_parts(self._fitted()[position]))

    def extract(self, position: int, values: np.ndarray) -> list[np.ndarray]:
        categories = self._fitted()[position]
        index = {category: k for k, category in enumerate(categories)}
        codes = np.array([-2 if v is None else index.get(v, -1) for v in values], dtype=np.int64)
        outs = []
        for k in range(len(categories)):
            out = (codes == k).astype(np.float64)
            out[codes == -2] = np.nan
            outs.append(out)
        return outs

    def state(self) -> dict[str, Any]:
        return {"categories": [list(c) for c in self._fitted()]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.categories = _state_field(state, "categories", len(self.columns), str)


class HashingEncoder(_PerColumn):
    """``hashing``: ``n_features`` 0/1 features per column; ``crc32(utf-8 text) % n_features``
    picks the one set (stable across processes, unlike ``hash()``)."""

    input_type = "category"
    PARAMS = {"n_features": Param("int", 16, low=1, high=65_536)}

    def parts(self, position: int) -> list[str | None]:
        return [str(j) for j in range(self.params["n_features"])]

    def extract(self, position: int, values: np.ndarray) -> list[np.ndarray]:
        n_features = self.params["n_features"]
        block = np.zeros((n_features, len(values)), dtype=np.float64)
        for i, value in enumerate(values):
            if value is None:
                block[:, i] = np.nan
            else:
                block[zlib.crc32(value.encode("utf-8", "surrogatepass")) % n_features, i] = 1.0
        return list(block)


class DatetimeParts(_PerColumn):
    """``datetime_parts``: calendar parts in UTC of an ISO date-time or epoch seconds."""

    input_type = "datetime"
    PARAMS = {"parts": Param("strs", DATETIME_PARTS, choices=DATETIME_PARTS)}

    def parts(self, position: int) -> list[str | None]:
        return list(self.params["parts"])

    def extract(self, position: int, values: np.ndarray) -> list[np.ndarray]:
        missing = np.isnan(values)
        seconds = np.floor(np.where(missing, 0.0, values)).astype(np.int64)
        days = np.floor_divide(seconds, 86_400)
        date = days.astype("datetime64[D]")
        year = date.astype("datetime64[Y]")
        month = date.astype("datetime64[M]")
        found = {
            "year": year.astype(np.int64) + 1970,
            "month": (month - year.astype("datetime64[M]")).astype(np.int64) + 1,
            "day": (date - month.astype("datetime64[D]")).astype(np.int64) + 1,
            "weekday": (days + 3) % 7,  # 1970-01-01 was a Thursday; Monday is 0
            "hour": (seconds - days * 86_400) // 3_600,
        }
        outs = []
        for part in self.params["parts"]:
            out = found[part].astype(np.float64)
            out[missing] = np.nan
            outs.append(out)
        return outs


class TextLength(_PerColumn):
    """``text_length``: the number of characters."""

    input_type = "text"

    def extract(self, position: int, values: np.ndarray) -> list[np.ndarray]:
        return [np.array([np.nan if v is None else len(v) for v in values], dtype=np.float64)]


class TextTokens(_PerColumn):
    """``text_tokens``: the number of tokens (``words``: runs of word characters;
    ``whitespace``: pieces between whitespace)."""

    input_type = "text"
    PARAMS = {"split": Param("str", "words", choices=("words", "whitespace"))}

    def extract(self, position: int, values: np.ndarray) -> list[np.ndarray]:
        count = (lambda s: len(_WORDS.findall(s))) if self.params["split"] == "words" else (lambda s: len(s.split()))
        return [np.array([np.nan if v is None else count(v) for v in values], dtype=np.float64)]


# --------------------------------------------------------------------------- transformation


class _PerFeature(Transform):
    """A transformation with one list of learned numbers per input feature."""

    kind = "transform"
    PARAMS: ClassVar[Mapping[str, Param] | None] = {}
    _FIELD: ClassVar[str] = ""

    def __init__(self, columns: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(columns, params)
        self.learned: list[list[float]] | None = None

    def learn(self, name: str, values: np.ndarray) -> list[float]:
        raise NotImplementedError

    def fit(self, columns: list[np.ndarray], y: np.ndarray | None = None) -> None:
        self.learned = [self.learn(name, np.asarray(values, dtype=np.float64))
                        for name, values in zip(self.columns, columns)]

    def _values(self) -> list[list[float]]:
        if self.learned is None:
            raise FeatureSpecError("state", f"{type(self).__name__} is not fitted")
        return self.learned

    def transform_batch(self, columns: list[np.ndarray]) -> list[np.ndarray]:
        return [self.apply(np.asarray(values, dtype=np.float64), learned)
                for values, learned in zip(columns, self._values())]

    def apply(self, values: np.ndarray, learned: list[float]) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {self._FIELD: [list(v) for v in self._values()]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.learned = [[float(x) for x in v] for v in _state_field(state, self._FIELD, len(self.columns), float)]


class Imputer(_PerFeature):
    """``impute``: NaN becomes the training mean or median, or ``value``."""

    PARAMS = {"strategy": Param("str", "mean", choices=("mean", "median", "constant")),
              "value": Param("float", 0.0)}
    _FIELD = "fill"

    def learn(self, name: str, values: np.ndarray) -> list[float]:
        strategy = self.params["strategy"]
        if strategy == "constant":
            return [self.params["value"]]
        finite = _finite(values, name, f"the {strategy}")
        return [float(np.mean(finite) if strategy == "mean" else np.median(finite))]

    def apply(self, values: np.ndarray, learned: list[float]) -> np.ndarray:
        return np.where(np.isnan(values), learned[0], values)


class StandardScaler(_PerFeature):
    """``scale``: ``(x - mean) / std`` with the training mean and population std
    (std 1 for a constant feature)."""

    _FIELD = "mean_std"

    def learn(self, name: str, values: np.ndarray) -> list[float]:
        finite = _finite(values, name, "a mean")
        std = float(np.std(finite))
        return [float(np.mean(finite)), std if std > 0 and math.isfinite(std) else 1.0]

    def apply(self, values: np.ndarray, learned: list[float]) -> np.ndarray:
        return (values - learned[0]) / learned[1]


class LogTransform(Transform):
    """``log``: ``log1p(x)``; a negative value is out of range and quarantines its row."""

    kind = "transform"
    PARAMS: ClassVar[Mapping[str, Param] | None] = {}

    def check_batch(self, columns: list[np.ndarray]) -> list[Flag]:
        return [Flag(p, values < 0, "is negative; log needs values >= 0") for p, values in enumerate(columns)]

    def transform_batch(self, columns: list[np.ndarray]) -> list[np.ndarray]:
        return [np.log1p(np.where(values < 0, np.nan, values)) for values in columns]


class QuantileClipper(_PerFeature):
    """``clip``: clip to the ``lower`` and ``upper`` quantiles of the training values."""

    PARAMS = {"lower": Param("float", 0.01, low=0.0, high=1.0), "upper": Param("float", 0.99, low=0.0, high=1.0)}
    _FIELD = "bounds"

    def __init__(self, columns: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(columns, params)
        if self.params["lower"] >= self.params["upper"]:
            lower, upper = self.params["lower"], self.params["upper"]
            raise FeatureSpecError("params.lower", f"must be below upper ({lower} >= {upper})")

    def learn(self, name: str, values: np.ndarray) -> list[float]:
        finite = _finite(values, name, "quantiles")
        low, high = np.quantile(finite, [self.params["lower"], self.params["upper"]])
        return [float(low), float(high)]

    def apply(self, values: np.ndarray, learned: list[float]) -> np.ndarray:
        return np.clip(values, learned[0], learned[1])


class Bucketizer(_PerFeature):
    """``bucketize``: the bucket index ``k`` such that ``edges[k-1] <= x < edges[k]``
    (0 below the first edge); ``edges`` given, or ``n_bins`` quantile bins learned at fit."""

    PARAMS = {"edges": Param("floats", None, nullable=True),
              "n_bins": Param("int", None, nullable=True, low=2, high=1_000)}
    _FIELD = "edges"

    def __init__(self, columns: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(columns, params)
        edges, n_bins = self.params["edges"], self.params["n_bins"]
        if (edges is None) == (n_bins is None):
            raise FeatureSpecError("params", "give exactly one of edges and n_bins")
        if edges is not None and any(b <= a for a, b in zip(edges, edges[1:])):
            raise FeatureSpecError("params.edges", f"must be strictly increasing; got {show(edges)}")

    def learn(self, name: str, values: np.ndarray) -> list[float]:
        if self.params["edges"] is not None:
            return list(self.params["edges"])
        finite = _finite(values, name, "quantile bins")
        n_bins = self.params["n_bins"]
        return [float(e) for e in np.unique(np.quantile(finite, np.arange(1, n_bins) / n_bins))]

    def apply(self, values: np.ndarray, learned: list[float]) -> np.ndarray:
        out = np.searchsorted(np.asarray(learned, dtype=np.float64), values, side="right").astype(np.float64)
        out[np.isnan(values)] = np.nan
        return out


# --------------------------------------------------------------------------- selection


class _Selector(Transform):
    kind = "select"
    PARAMS: ClassVar[Mapping[str, Param] | None] = {}

    def __init__(self, columns: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(columns, params)
        self.kept: list[int] | None = None

    def selected(self) -> list[int]:
        if self.kept is None:
            raise FeatureSpecError("state", f"{type(self).__name__} is not fitted")
        return list(self.kept)

    def state(self) -> dict[str, Any]:
        return {"selected": self.selected()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        kept = state.get("selected") if isinstance(state, Mapping) else None
        if (not isinstance(kept, list) or set(state) != {"selected"}
                or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < len(self.columns) for p in kept)
                or len(set(kept)) != len(kept)):
            raise FeatureSpecError("state.selected", "must be a list of distinct input positions")
        self.kept = list(kept)

    def _matrix(self, columns: list[np.ndarray]) -> np.ndarray:
        return np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])


def chi2_scores(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Chi-square statistic of each non-negative feature against class labels ``y``,
    computed as :func:`sklearn.feature_selection.chi2` does.

    Examples
    --------
    >>> chi2_scores(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([0, 1, 0])).round(3).tolist()
    [1.0, 0.25]
    """
    _, codes = np.unique(y, return_inverse=True)
    Y = np.zeros((len(codes), int(codes.max()) + 1 if len(codes) else 0), dtype=np.float64)
    Y[np.arange(len(codes)), codes] = 1.0
    observed = Y.T @ X
    expected = np.outer(Y.mean(axis=0), X.sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((observed - expected) ** 2 / expected).sum(axis=0)


class Chi2Selector(_Selector):
    """``select_chi2``: the ``k`` features with the best chi-square score against the label,
    as ``SelectKBest(chi2, k=k)``; rows with a NaN among the candidates are left out of the fit."""

    needs_label = True
    PARAMS = {"k": Param("int", low=1)}

    def fit(self, columns: list[np.ndarray], y: np.ndarray | None = None) -> None:
        if y is None:
            raise FeatureSpecError("fit", "select_chi2 needs labels")
        k = self.params["k"]
        if k > len(self.columns):
            raise FeatureSpecError("params.k", f"is {k} but there are only {len(self.columns)} candidate features")
        X = self._matrix(columns)
        complete = np.isfinite(X).all(axis=1)
        X, y = X[complete], np.asarray(y)[complete]
        if len(np.unique(y)) < 2:
            raise FeatureSpecError("fit", "chi-square needs at least two classes among complete training rows")
        negative = np.flatnonzero((X < 0).any(axis=0))
        if negative.size:
            raise FeatureSpecError("fit", f"chi-square needs non-negative features; {self.columns[negative[0]]!r} "
                                          "has negative values (scale puts some below zero; use bucketize or clip)")
        scores = chi2_scores(X, y)
        scores = np.where(np.isnan(scores), np.finfo(np.float64).min, scores)  # as SelectKBest
        self.kept = sorted(int(p) for p in np.argsort(scores, kind="mergesort")[-k:])


class VarianceSelector(_Selector):
    """``select_variance``: features whose training variance exceeds ``threshold``
    (with 0, also a non-zero range: as ``VarianceThreshold``)."""

    PARAMS = {"threshold": Param("float", 0.0, low=0.0)}

    def fit(self, columns: list[np.ndarray], y: np.ndarray | None = None) -> None:
        X = self._matrix(columns)
        X = np.where(np.isfinite(X), X, np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            variance = np.nanvar(X, axis=0)
            if self.params["threshold"] == 0:
                variance = np.minimum(variance, np.nanmax(X, axis=0) - np.nanmin(X, axis=0))
        self.kept = [int(p) for p in np.flatnonzero(variance > self.params["threshold"])]


class ListSelector(_Selector):
    """``select_list``: exactly the features named in ``columns``, in that order."""

    keep_others = False

    def __init__(self, columns: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(columns, params)
        if not self.columns:
            raise FeatureSpecError("columns", "select_list needs the names of the features to keep")
        self.kept = list(range(len(self.columns)))


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type] = {}
_LOCK = threading.Lock()


def register_transform(name: str, cls: type, *, replace: bool = False) -> type:
    """Register a transform class under ``name`` (the factory of :mod:`ml.features`).

    Parameters
    ----------
    name : str
        Matches :data:`NAME_PATTERN`; must be new unless ``replace=True``.
    cls : type
        A class following the protocol in the module docstring, usually a
        :class:`Transform` subclass.
    replace : bool, default False

    Returns
    -------
    type
        ``cls``, so this works as a decorator helper.

    Raises
    ------
    FeatureSpecError
        A bad or taken name, or a class that does not follow the protocol.

    Examples
    --------
    >>> import numpy as np
    >>> class Square(Transform):
    ...     kind = "transform"
    ...     def transform_batch(self, columns):
    ...         return [np.square(c) for c in columns]
    >>> _ = register_transform("doc.square", Square)
    >>> get_transform("doc.square")(["x"], {}).transform_one({"x": 3.0})
    [9.0]
    >>> unregister_transform("doc.square")
    """
    check_name(name, "name", what="transform name")
    if not isinstance(cls, type):
        raise FeatureSpecError("cls", f"must be a class; got {type(cls).__name__}")
    kind = getattr(cls, "kind", None)
    if kind not in KINDS:
        raise FeatureSpecError("cls.kind", f"must be one of {', '.join(KINDS)}; got {show(kind)}")
    needed = ["fit", "transform_batch", "transform_one", "state", "from_state"]
    needed += {"extract": ["output_parts"], "select": ["selected"], "transform": []}[kind]
    missing = [method for method in needed if not callable(getattr(cls, method, None))]
    if missing:
        raise FeatureSpecError("cls", f"{cls.__name__} lacks {', '.join(missing)}")
    if kind == "extract" and getattr(cls, "input_type", None) not in INPUT_TYPES:
        raise FeatureSpecError("cls.input_type", f"must be one of {', '.join(INPUT_TYPES)}")
    with _LOCK:
        if name in _REGISTRY and not replace:
            raise FeatureSpecError("name", f"{name!r} is already registered; pass replace=True to replace it")
        _REGISTRY[name] = cls
    return cls


def unregister_transform(name: str) -> None:
    """Remove a transform; raises :class:`FeatureSpecError` for an unknown name."""
    with _LOCK:
        if name not in _REGISTRY:
            raise FeatureSpecError("name", f"unknown transform {show(name)}")
        del _REGISTRY[name]


def get_transform(name: str) -> type:
    """The class registered under ``name``.

    Examples
    --------
    >>> get_transform("scale").kind
    'transform'
    >>> get_transform("sclae")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ml.transforms.FeatureSpecError: transform: unknown transform 'sclae'; known: bucketize, clip, ...
    """
    with _LOCK:
        cls = _REGISTRY.get(name) if isinstance(name, str) else None
        if cls is None:
            known = ", ".join(sorted(_REGISTRY))
            raise FeatureSpecError("transform", f"unknown transform {show(name)}; known: {known}")
        return cls


def available_transforms() -> dict[str, str]:
    """``{name: kind}`` of every registered transform, by name.

    Examples
    --------
    >>> available_transforms()["select_chi2"]
    'select'
    """
    with _LOCK:
        return {name: _REGISTRY[name].kind for name in sorted(_REGISTRY)}


for _name, _cls in {
    "numeric": NumericFeature,
    "onehot": OneHotEncoder,
    "hashing": HashingEncoder,
    "datetime_parts": DatetimeParts,
    "text_length": TextLength,
    "text_tokens": TextTokens,
    "impute": Imputer,
    "scale": StandardScaler,
    "log": LogTransform,
    "clip": QuantileClipper,
    "bucketize": Bucketizer,
    "select_chi2": Chi2Selector,
    "select_variance": VarianceSelector,
    "select_list": ListSelector,
}.items():
    register_transform(_name, _cls)
del _name, _cls
