"""Feature sets: a spec of named steps, fitted on a training batch, applied offline and online.

A :class:`FeatureSpec` is an ordered list of :class:`StepSpec` (``name``,
``transform``, ``columns``, ``params``) plus an optional ``label`` and ``key``
column, written in TOML (:meth:`FeatureSpec.from_toml`) or built in Python.
Each step names a transform of the registry in :mod:`ml.transforms` (custom
ones are added with :func:`~ml.transforms.register_transform`).

The model: a table of named numeric features, rewritten step by step
--------------------------------------------------------------------
- An **extraction** step (``numeric``, ``onehot``, ``hashing``,
  ``datetime_parts``, ``text_length``, ``text_tokens``) reads *raw columns*
  and appends new features named after the step: ``<step>`` when it reads one
  column into one value, ``<step>.<part>`` for several values of one column
  (``color.red``, ``ts.hour``), ``<step>.<column>[.<part>]`` when it reads
  several columns. Parts made from data (one-hot categories) keep only
  letters, digits, ``_`` and ``-``.
- A **transformation** step (``impute``, ``scale``, ``log``, ``clip``,
  ``bucketize``) rewrites, *in place*, the features named in its ``columns``:
  names and order do not change.
- A **selection** step (``select_chi2``, ``select_variance``) keeps a subset
  of its candidates (``columns``; empty = every current feature), and the
  features that were not candidates stay; ``select_list`` keeps exactly the
  features it names, in that order, and drops the rest.
- In ``columns`` of a transformation or selection step, a name is a feature
  produced by an earlier step or, when no feature has that name, an earlier
  step's name, which stands for all the features that step produced and that
  are still there. A step must not refer to anything later, nor to the label.
- The final table is ``X``, in :attr:`FittedFeatureSet.feature_names` order.

Fitting (:func:`fit_feature_set`) runs the steps in order on the training
rows: each step is fitted on the rows without a problem so far (statistics skip
missing values), then transforms every row for the next step. The fitted state
of every step is JSON; :attr:`FittedFeatureSet.feature_set_id` is the SHA-256
of the canonical JSON of the spec and all fitted states. Batch and single-row
requests run the very same code (a single row is a batch of one), so
:meth:`FittedFeatureSet.transform_one` gives bit-for-bit the numbers of
:meth:`FittedFeatureSet.transform_batch`.

Data quality (see :mod:`ml.quality`): a row with a type error, an
out-of-range value, a missing key or label, or a missing value that no impute
step fills, is quarantined with its reason in the :class:`~ml.quality.QualityReport`,
and left out of ``X``; the other rows still produce output.

Examples
--------
>>> from ml.features import FeatureSpec, fit_feature_set
>>> spec = FeatureSpec.from_toml('''
... label = "target"
... [[steps]]
... name = "age"
... transform = "numeric"
... columns = ["age"]
... [[steps]]
... name = "color"
... transform = "onehot"
... columns = ["color"]
... [[steps]]
... name = "age_scaled"
... transform = "scale"
... columns = ["age"]
... ''')
>>> rows = [{"age": 20, "color": "red", "target": 0}, {"age": 40, "color": "blue", "target": 1}]
>>> fs = fit_feature_set(spec, rows)
>>> fs.feature_names
('age', 'color.blue', 'color.red')
>>> X, y, report = fs.transform_batch(rows + [{"age": "old", "color": "red", "target": 1}])
>>> X.tolist(), y.tolist()
([[-1.0, 0.0, 1.0], [1.0, 1.0, 0.0]], [0, 1])
>>> report.quarantined[0].reason
"age: type error: expected a number; got str 'old'"
>>> fs.transform_one({"age": 30, "color": "green"}).tolist()
[0.0, 0.0, 0.0]
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import msgspec
import numpy as np

from ml.columns import Columns
from ml.quality import (Flag, Problem, QualityCollector, QualityReport, QuarantineError, QuarantinedRow,
                        coerce_column, is_missing, show)
from ml.transforms import (FeatureSpecError, Transform, available_transforms, check_name, get_transform,
                           register_transform, unregister_transform)

__all__ = [
    "FORMAT",
    "FeatureSpec",
    "FeatureSpecError",
    "FittedFeatureSet",
    "FittedStep",
    "QualityReport",
    "QuarantineError",
    "QuarantinedRow",
    "StepSpec",
    "Transform",
    "available_transforms",
    "fit_feature_set",
    "register_transform",
    "unregister_transform",
]

#: Version of the serialized form (part of every feature_set_id).
FORMAT = 1
_ID_HEX = 20
_MAX_DEPTH = 16
_LABEL_KINDS = ("bool", "int", "float", "str")


# --------------------------------------------------------------------------- spec


class StepSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One step of a feature spec.

    Parameters
    ----------
    name : str
        Unique in the spec; matches :data:`~ml.transforms.NAME_PATTERN`.
    transform : str
        A registered transform name.
    columns : list of str
        Raw columns (extraction), or features or earlier step names (others).
    params : dict
        The transform's parameters.
    """

    name: str
    transform: str
    columns: list[str] = []
    params: dict[str, Any] = {}


class FeatureSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An ordered list of steps, with the label and entity-key columns.

    Construction validates everything that does not need data (names,
    duplicates, transforms, parameters, references to earlier steps) and raises
    :class:`~ml.transforms.FeatureSpecError` naming the field.

    Parameters
    ----------
    steps : list of StepSpec
    label : str, optional
        The target column; read at fit, and by ``transform_batch`` when present.
    key : str, optional
        The entity-key column (str or int values); required in every row.

    Examples
    --------
    >>> spec = FeatureSpec(steps=[StepSpec("age", "numeric", ["age"]),
    ...                           StepSpec("age_log", "log", ["age"])], key="id")
    >>> spec.raw_columns
    ('age',)
    >>> FeatureSpec(steps=[StepSpec("age", "numeric", ["age"]), StepSpec("age", "log", ["age"])])
    Traceback (most recent call last):
    ...
    ml.transforms.FeatureSpecError: steps[1].name: duplicate step name 'age' (also steps[0])
    """

    steps: list[StepSpec]
    label: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        _validate_spec(self)

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """The raw columns read by extraction steps, in order of first use."""
        seen: dict[str, None] = {}
        for step in self.steps:
            if get_transform(step.transform).kind == "extract":
                seen.update(dict.fromkeys(step.columns))
        return tuple(seen)

    @classmethod
    def from_dict(cls, data: Any) -> FeatureSpec:
        """A spec from plain data (``{"steps": [...], "label": ..., "key": ...}``).

        Raises
        ------
        FeatureSpecError
            Wrong structure or types, unknown fields, or anything construction refuses.
        """
        if not isinstance(data, Mapping):
            raise FeatureSpecError("spec", f"must be a table; got {type(data).__name__}")
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as err:
            cause = err.__cause__ or err.__context__
            if isinstance(cause, FeatureSpecError):
                raise FeatureSpecError(cause.field, cause.reason) from None
            message, _, path = str(err).partition(" - at `")
            field = path.rstrip("`").removeprefix("$").lstrip(".")
            missing = message.partition("missing required field `")[2].rstrip("`")
            if missing:
                field = f"{field}.{missing}" if field else missing
            field = field or "spec"
            if "unknown field" in message and field.startswith("steps["):
                message += " (transform parameters go under params)"
            raise FeatureSpecError(field, message) from None

    @classmethod
    def from_toml(cls, text: str) -> FeatureSpec:
        """A spec from TOML: top-level ``label`` and ``key``, one ``[[steps]]`` table per step,
        parameters in ``params = {...}`` or a ``[steps.params]`` table.

        Raises
        ------
        FeatureSpecError
            ``field="toml"`` for text that is not TOML; see :meth:`from_dict` otherwise.

        Examples
        --------
        >>> spec = FeatureSpec.from_toml('''
        ... [[steps]]
        ... name = "city"
        ... transform = "hashing"
        ... columns = ["city"]
        ... params = { n_features = 4 }
        ... ''')
        >>> spec.steps[0].params
        {'n_features': 4}
        >>> bad = '[[steps]]\\nname = "x"\\ntransform = "numeric"\\ncolumns = ["../etc"]'
        >>> FeatureSpec.from_toml(bad)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ml.transforms.FeatureSpecError: steps[0].columns[0]: '../etc' is not a valid column name: ...
        """
        if not isinstance(text, str):
            raise FeatureSpecError("toml", f"must be a str; got {type(text).__name__}")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise FeatureSpecError("toml", f"not valid TOML: {err}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` reads back."""
        return msgspec.to_builtins(self)


def _plain(value: Any, field: str, depth: int = 0) -> Any:
    """``value`` as plain JSON data (str keys, finite floats), or FeatureSpecError."""
    if depth > _MAX_DEPTH:
        raise FeatureSpecError(field, "is nested too deeply")
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Integral):
        if not -(2**63) <= int(value) < 2**63:
            raise FeatureSpecError(field, f"integer {show(value)} does not fit 64 bits")
        return int(value)
    if isinstance(value, Real):
        if not math.isfinite(value):
            raise FeatureSpecError(field, f"must be finite; got {show(value)}")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{field}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise FeatureSpecError(field, f"keys must be strings; got {show(k)}")
            out[k] = _plain(v, f"{field}.{k}", depth + 1)
        return out
    raise FeatureSpecError(field, f"must be JSON data (str, number, bool, list, table); got {type(value).__name__}")


def _construct(cls: type, columns: Sequence[str], params: Mapping[str, Any], where: str, name: str) -> Any:
    try:
        return cls(list(columns), dict(params))
    except FeatureSpecError as err:
        raise err.within(where, f"step {name!r}: ") from None
    except (TypeError, ValueError) as err:
        raise FeatureSpecError(f"{where}.params", f"step {name!r}: {err}") from None


def _validate_spec(spec: FeatureSpec) -> None:
    for field in ("label", "key"):
        value = getattr(spec, field)
        if value is not None:
            check_name(value, field, what=f"{field} column name")
    if spec.label is not None and spec.label == spec.key:
        raise FeatureSpecError("key", "must differ from the label")
    if not isinstance(spec.steps, (list, tuple)) or not spec.steps:
        raise FeatureSpecError("steps", "a spec needs at least one step")
    seen: dict[str, int] = {}
    extractions: list[str] = []
    for i, step in enumerate(spec.steps):
        where = f"steps[{i}]"
        if not isinstance(step, StepSpec):
            raise FeatureSpecError(where, f"must be a StepSpec; got {type(step).__name__}")
        name = check_name(step.name, f"{where}.name", what="step name")
        if name in seen:
            raise FeatureSpecError(f"{where}.name", f"duplicate step name {name!r} (also steps[{seen[name]}])")
        check_name(step.transform, f"{where}.transform", what="transform name")
        try:
            cls = get_transform(step.transform)
        except FeatureSpecError as err:
            raise err.within(where, f"step {name!r}: ") from None
        kind = cls.kind
        if not isinstance(step.columns, (list, tuple)):
            raise FeatureSpecError(f"{where}.columns", f"must be a list of names; got {type(step.columns).__name__}")
        for j, column in enumerate(step.columns):
            what = "column name" if kind == "extract" else "feature name"
            check_name(column, f"{where}.columns[{j}]", what=what, feature=kind != "extract")
            if column in step.columns[:j]:
                raise FeatureSpecError(f"{where}.columns[{j}]", f"step {name!r}: {column!r} is listed twice")
            if column == spec.label:
                reason = "must not read the label (it would leak the target into the features)" \
                    if kind == "extract" else "the label is not a feature"
                raise FeatureSpecError(f"{where}.columns[{j}]", f"step {name!r}: {reason}")
            if kind != "extract" and column not in seen and not any(column.startswith(s + ".") for s in extractions):
                raise FeatureSpecError(f"{where}.columns[{j}]", f"step {name!r}: {column!r} is not produced by an "
                                       "earlier step (name an earlier step, or one of its features)")
        if not step.columns and kind != "select":
            raise FeatureSpecError(f"{where}.columns", f"step {name!r}: {kind} steps need at least one column")
        if getattr(cls, "needs_label", False) and spec.label is None:
            raise FeatureSpecError(f"{where}.transform", f"step {name!r}: {step.transform} needs the spec's label")
        _plain(step.params, f"{where}.params")
        _construct(cls, step.columns, step.params, where, name)
        seen[name] = i
        if kind == "extract":
            extractions.append(name)


# --------------------------------------------------------------------------- fitted form


class FittedStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A step after fitting: its resolved inputs, its outputs and its fitted state.

    ``outputs`` are the features the step created (extract), rewrote
    (transform) or kept among its inputs (select).
    """

    name: str
    transform: str
    inputs: list[str]
    outputs: list[str]
    state: dict[str, Any]


class _Fitted(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: int
    spec: FeatureSpec
    label_kind: str | None
    steps: list[FittedStep]
    feature_names: list[str]


class _Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    feature_set_id: str
    fitted: _Fitted


def _feature_id(fitted: _Fitted) -> str:
    return hashlib.sha256(msgspec.json.encode(fitted, order="sorted")).hexdigest()[:_ID_HEX]


# --------------------------------------------------------------------------- running a batch


class _Batch:
    """The rows of one request (dicts, or :class:`Columns`), their quality collector and
    their raw columns."""

    def __init__(self, rows: list[Any] | Columns) -> None:
        self.rows = rows
        self.n = len(rows)
        self.quality = QualityCollector(self.n)
        self._columns = rows if isinstance(rows, Columns) else None
        if self._columns is not None:   # every row is a mapping with the same columns
            self.maps = np.ones(self.n, dtype=bool)
        else:
            self.maps = np.array([isinstance(row, Mapping) for row in rows], dtype=bool)
        self.keys: list[Any] = [None] * self.n
        for i in np.flatnonzero(~self.maps):
            self.quality.add(i, None, Problem.TYPE_ERROR,
                             f"expected a mapping of column names to values; got {type(rows[i]).__name__}")
        self._raw: dict[str, list[Any]] = {}
        self._read: dict[tuple[str, str], np.ndarray] = {}

    def raw(self, column: str) -> list[Any]:
        if column not in self._raw:
            if self._columns is not None:
                self._raw[column] = self._columns.column(column)
            else:
                self._raw[column] = [row.get(column) if ok else None for row, ok in zip(self.rows, self.maps)]
        return self._raw[column]

    def present(self, column: str) -> bool:
        if self._columns is not None:
            return self.n > 0 and column in self._columns.names
        return any(ok and column in row for row, ok in zip(self.rows, self.maps))

    def present_columns(self) -> set[str]:
        """The name of every column some mapping row holds."""
        if self._columns is not None:
            return set(self._columns.names) if self.n else set()
        present: set[str] = set()
        for row, ok in zip(self.rows, self.maps):
            if ok:
                present.update(str(k) for k in row)
        return present

    def read(self, column: str, input_type: str) -> np.ndarray:
        """The column read as ``input_type``; its problems are recorded once."""
        if (column, input_type) not in self._read:
            read = coerce_column(self.raw(column), input_type)
            for i, problem, detail in read.issues:
                self.quality.add(i, column, problem, detail)
            self._read[(column, input_type)] = read.values
        return self._read[(column, input_type)]


class _Table:
    """The current features: names in order, arrays, raw source columns, outputs by step."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.sources: dict[str, list[str]] = {}
        self.by_step: dict[str, list[str]] = {}
        self.dropped: dict[str, str] = {}


def _label_kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Integral):
        return "int"
    if isinstance(value, Real):
        return "float"
    return "str" if isinstance(value, str) else "other"


def _learn_label_kind(values: list[Any]) -> str:
    kinds = [_label_kind_of(v) for v in values if not is_missing(v)]
    if not kinds:
        raise FeatureSpecError("label", "no training row has a label")
    groups = {"number": sum(k in ("int", "float") for k in kinds),
              "str": kinds.count("str"), "bool": kinds.count("bool")}
    group = max(groups, key=lambda g: groups[g])  # ties: number, str, bool
    if group == "number":
        return "float" if "float" in kinds else "int"
    return group


def _convert_label(value: Any, kind: str) -> tuple[Any, Problem | None, str]:
    got = f"got {type(value).__name__} {show(value)}"
    if kind in ("str", "bool"):
        ok = isinstance(value, str if kind == "str" else bool)
        return (value, None, "") if ok else (None, Problem.TYPE_ERROR, f"expected a {kind} label; {got}")
    if isinstance(value, bool) or not isinstance(value, Real):
        return None, Problem.TYPE_ERROR, f"expected a numeric label; {got}"
    if kind == "float":
        number = float(value)
        if math.isfinite(number):
            return number, None, ""
        return None, Problem.OUT_OF_RANGE, f"{show(value)} is not finite"
    if isinstance(value, Integral) or (math.isfinite(value) and float(value).is_integer()):
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number, None, ""
        return None, Problem.OUT_OF_RANGE, f"{show(value)} does not fit 64 bits"
    return None, Problem.TYPE_ERROR, f"expected an integer label; {got}"


def _read_labels(batch: _Batch, label: str, kind: str) -> np.ndarray:
    fill = {"str": "", "bool": False, "int": 0, "float": 0.0}[kind]
    out = []
    for i, value in enumerate(batch.raw(label)):
        converted = fill
        if batch.maps[i]:
            if is_missing(value):
                batch.quality.add(i, label, Problem.MISSING_VALUE, "no label")
            else:
                converted, problem, detail = _convert_label(value, kind)
                if problem is not None:
                    batch.quality.add(i, label, problem, detail)
                    converted = fill
        out.append(converted)
    dtype = {"str": np.str_, "bool": np.bool_, "int": np.int64, "float": np.float64}[kind]
    return np.array(out, dtype=dtype)


def _check_keys(batch: _Batch, key: str) -> None:
    for i, value in enumerate(batch.raw(key)):
        if not batch.maps[i]:
            continue
        if is_missing(value):
            batch.quality.add(i, key, Problem.MISSING_VALUE, "no key")
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            batch.quality.add(i, key, Problem.TYPE_ERROR,
                              f"expected a str or int key; got {type(value).__name__} {show(value)}")
        else:
            batch.keys[i] = value


def _inputs(batch: _Batch, table: _Table, t: Any, kind: str) -> list[np.ndarray]:
    if kind == "extract":
        return [batch.read(column, t.input_type) for column in t.columns]
    return [table.arrays[name] for name in t.columns]


def _run_checks(batch: _Batch, table: _Table, step: str, t: Any, kind: str, arrays: list[np.ndarray]) -> None:
    for flag in t.check_batch(arrays) or ():
        position, mask, message, problem = Flag(*flag)
        name = t.columns[position]
        column = name if kind == "extract" else table.sources[name][0]
        where = f"step {step!r}" + ("" if name == column else f", feature {name!r}")
        mask = np.asarray(mask, dtype=bool).reshape(batch.n) & batch.maps
        for i in np.flatnonzero(mask):
            value = arrays[position][i]
            value = value.item() if isinstance(value, np.generic) else value
            batch.quality.add(i, column, Problem(problem), f"{show(value)} {message} ({where})")


def _outputs(step: str, where: str, t: Any, kind: str, arrays: list[np.ndarray], n: int,
             count: int) -> list[np.ndarray]:
    if kind == "select":
        return [arrays[p] for p in t.selected()]
    with np.errstate(all="ignore"):
        outs = t.transform_batch(arrays)
    if not isinstance(outs, (list, tuple)) or len(outs) != count:
        raise FeatureSpecError(f"{where}.transform", f"step {step!r}: transform_batch must return {count} arrays")
    checked = []
    for out in outs:
        out = np.asarray(out, dtype=np.float64)
        if out.shape != (n,):
            raise FeatureSpecError(f"{where}.transform", f"step {step!r}: transform_batch returned shape {out.shape}; "
                                   f"expected ({n},)")
        checked.append(out)
    return checked


def _feature_names(step: str, parts: Sequence[str | None]) -> list[str]:
    return [step if part is None else f"{step}.{part}" for part in parts]


def _update(table: _Table, step: str, where: str, t: Any, kind: str, outputs: list[str], arrays: list[np.ndarray],
            *, fitting: bool = False) -> None:
    if kind == "extract":
        origins = getattr(t, "output_columns", lambda: [list(range(len(t.columns)))] * len(outputs))()
        for name, array, origin in zip(outputs, arrays, origins):
            if fitting:
                if name in table.sources:
                    raise FeatureSpecError(f"{where}.name",
                                           f"step {step!r} makes feature {name!r}, which exists already")
                check_name(name, f"{where}.name", what="feature name", feature=True)
            table.names.append(name)
            table.arrays[name] = array
            table.sources[name] = [t.columns[p] for p in origin] or list(t.columns)
    elif kind == "transform":
        for name, array in zip(outputs, arrays):
            table.arrays[name] = array
    else:
        candidates, kept = set(t.columns), set(outputs)
        names = [n for n in table.names if n not in candidates or n in kept] if getattr(t, "keep_others", True) \
            else list(outputs)
        for name in set(table.names) - set(names):
            table.dropped[name] = step
            del table.arrays[name]
        table.names = names
    table.by_step[step] = list(outputs)


def _resolve(step: StepSpec, where: str, table: _Table) -> list[str]:
    if not step.columns:
        return list(table.names)
    out: list[str] = []
    for j, ref in enumerate(step.columns):
        if ref in table.arrays:
            names = [ref]
        else:
            names = [n for n in table.by_step.get(ref, []) if n in table.arrays]
        if not names:
            if ref in table.dropped:
                reason = f"{ref!r} was dropped by step {table.dropped[ref]!r}"
            else:
                shown = ", ".join(table.names[:10]) + (", ..." if len(table.names) > 10 else "")
                reason = f"{ref!r} is not a feature produced by an earlier step (features so far: {shown})"
            raise FeatureSpecError(f"{where}.columns[{j}]", f"step {step.name!r}: {reason}")
        out.extend(n for n in names if n not in out)
    return out


def _finish(batch: _Batch, table: _Table) -> tuple[np.ndarray, np.ndarray]:
    """``X`` of every row, and the rows kept: NaN or inf left in a feature quarantines a row."""
    X = np.empty((batch.n, len(table.names)), dtype=np.float64)
    for j, name in enumerate(table.names):
        X[:, j] = table.arrays[name]
    for i in np.flatnonzero(~np.isfinite(X).all(axis=1) & ~batch.quality.flagged):
        reported: set[str] = set()
        for j in np.flatnonzero(~np.isfinite(X[i])):
            name = table.names[j]
            sources = table.sources[name]
            missing = [c for c in sources if is_missing(batch.raw(c)[i])]
            for column in missing:
                if column not in reported:
                    reported.add(column)
                    batch.quality.add(i, column, Problem.MISSING_VALUE,
                                      f"no value, and no impute step fills feature {name!r}")
            if not missing:
                batch.quality.add(i, sources[0], Problem.OUT_OF_RANGE, f"feature {name!r} is not a finite number")
    return X, np.flatnonzero(~batch.quality.flagged)


def _report(batch: _Batch, spec: FeatureSpec, raw_columns: Sequence[str], use_label: bool,
            feature_set_id: str | None) -> QualityReport:
    expected = list(raw_columns)
    expected += [c for c in (spec.key, spec.label if use_label else None) if c is not None and c not in expected]
    present = batch.present_columns()
    if batch.maps.all():
        missing_values = {c: sum(map(is_missing, batch.raw(c))) for c in expected}
    else:
        missing_values = {c: sum(bool(ok) and is_missing(v) for v, ok in zip(batch.raw(c), batch.maps))
                          for c in expected}
    return batch.quality.report(
        keys=batch.keys,
        expected_columns=tuple(expected),
        missing_columns=tuple(c for c in expected if c not in present) if batch.maps.any() else (),
        unexpected_columns=tuple(sorted(present - set(expected) - {spec.label, spec.key})),
        missing_values=missing_values,
        feature_set_id=feature_set_id,
    )


def _as_rows(rows: Any) -> list[Any] | Columns:
    if isinstance(rows, Columns):
        return rows
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise FeatureSpecError("rows", f"must be a list of rows (dicts); got {type(rows).__name__}")
    return list(rows)


# --------------------------------------------------------------------------- the fitted feature set


class FittedFeatureSet:
    """A feature spec with the fitted state of every step: the same object serves
    training batches, scoring batches and single online rows.

    Build one with :func:`fit_feature_set` or :meth:`from_bytes`.
    """

    def __init__(self, fitted: _Fitted, transforms: list[Any] | None = None,
                 fit_report: QualityReport | None = None) -> None:
        if transforms is None:
            transforms = [self._rebuild(i, step, fitted) for i, step in enumerate(fitted.steps)]
        self._fitted = fitted
        self._transforms = transforms
        self._kinds = [t.kind for t in transforms]
        self._raw_columns = fitted.spec.raw_columns
        self._id = _feature_id(fitted)
        self._fit_report = None if fit_report is None else msgspec.structs.replace(fit_report, feature_set_id=self._id)

    @staticmethod
    def _rebuild(i: int, step: FittedStep, fitted: _Fitted) -> Any:
        where = f"steps[{i}]"
        spec_step = fitted.spec.steps[i] if i < len(fitted.spec.steps) else None
        if spec_step is None or (spec_step.name, spec_step.transform) != (step.name, step.transform):
            raise FeatureSpecError(where, "the fitted steps do not match the spec")
        cls = get_transform(step.transform)
        try:
            t = cls.from_state(list(step.inputs), dict(spec_step.params), step.state)
        except FeatureSpecError as err:
            raise err.within(where, f"step {step.name!r}: ") from None
        except (LookupError, TypeError, ValueError) as err:
            raise FeatureSpecError(f"{where}.state", f"step {step.name!r}: {err}") from None
        expected = {"extract": lambda: _feature_names(step.name, t.output_parts()),
                    "transform": lambda: list(step.inputs),
                    "select": lambda: [step.inputs[p] for p in t.selected()]}[cls.kind]()
        if expected != step.outputs:
            raise FeatureSpecError(f"{where}.outputs", f"step {step.name!r}: the outputs do not match its state")
        return t

    # ------------------------------------------------------------------ views

    @property
    def spec(self) -> FeatureSpec:
        """The spec this set was fitted from (a copy)."""
        return msgspec.json.decode(msgspec.json.encode(self._fitted.spec), type=FeatureSpec)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The columns of ``X``, in order."""
        return tuple(self._fitted.feature_names)

    @property
    def n_features(self) -> int:
        """The number of columns of ``X``."""
        return len(self._fitted.feature_names)

    @property
    def feature_set_id(self) -> str:
        """SHA-256 (first 20 hex digits) of the canonical JSON of spec and fitted state."""
        return self._id

    @property
    def label_kind(self) -> str | None:
        """``"bool"``, ``"int"``, ``"float"`` or ``"str"``: how labels are read; None without a label."""
        return self._fitted.label_kind

    @property
    def steps(self) -> tuple[FittedStep, ...]:
        """Each step's resolved inputs, outputs and fitted state (copies)."""
        return tuple(msgspec.json.decode(msgspec.json.encode(self._fitted.steps), type=list[FittedStep]))

    @property
    def fit_report(self) -> QualityReport | None:
        """The quality report of the training batch (None after :meth:`from_bytes`)."""
        return self._fit_report

    def __repr__(self) -> str:
        return f"FittedFeatureSet(id={self._id!r}, features={self.n_features}, steps={len(self._transforms)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FittedFeatureSet) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    # ------------------------------------------------------------------ running

    def _run(self, rows: list[Any], use_label: bool) -> tuple[np.ndarray, np.ndarray | None, QualityReport]:
        spec = self._fitted.spec
        batch = _Batch(rows)
        y = _read_labels(batch, spec.label, self._fitted.label_kind) if use_label else None
        if spec.key is not None:
            _check_keys(batch, spec.key)
        table = _Table()
        for i, (step, t, kind) in enumerate(zip(self._fitted.steps, self._transforms, self._kinds)):
            arrays = _inputs(batch, table, t, kind)
            _run_checks(batch, table, step.name, t, kind, arrays)
            outs = _outputs(step.name, f"steps[{i}]", t, kind, arrays, batch.n, len(step.outputs))
            _update(table, step.name, f"steps[{i}]", t, kind, step.outputs, outs)
        X, kept = _finish(batch, table)
        return X[kept], (None if y is None else y[kept]), _report(batch, spec, self._raw_columns, use_label, self._id)

    def transform_batch(self, rows: Iterable[Mapping[str, Any]], *, with_label: bool | None = None
                        ) -> tuple[np.ndarray, np.ndarray | None, QualityReport]:
        """Features of a batch of raw rows (the offline path).

        Parameters
        ----------
        rows : iterable of dict
            Raw rows ``{column: value}``.
        with_label : bool, optional
            Read the label into ``y``: True requires it in every row, False
            ignores it; by default it is read when the spec has a label and some
            row has the label column.

        Returns
        -------
        X : ndarray of float64, shape (n_kept, n_features)
            One row per good input row, in input order; always finite.
        y : ndarray or None
            The labels of those rows (dtype after :attr:`label_kind`).
        report : QualityReport
            Schema, missing values, errors and the quarantined rows with reasons;
            ``report.kept[j]`` is the input index of ``X[j]``.

        Examples
        --------
        >>> spec = FeatureSpec(steps=[StepSpec("x", "numeric", ["x"]),
        ...                           StepSpec("x_filled", "impute", ["x"], {"strategy": "median"}),
        ...                           StepSpec("x_log", "log", ["x"])])
        >>> fs = fit_feature_set(spec, [{"x": 0.0}, {"x": 3.0}, {"x": 8.0}])
        >>> X, y, report = fs.transform_batch([{"x": None}, {"x": -1}, {"x": "3"}])
        >>> X.round(3).tolist(), y
        ([[1.386]], None)
        >>> report.missing_values, report.out_of_range, report.type_errors
        ({'x': 1}, {'x': 1}, {'x': 1})
        >>> [(q.index, q.reason) for q in report.quarantined]  # doctest: +NORMALIZE_WHITESPACE
        [(1, "x: out of range: -1.0 is negative; log needs values >= 0 (step 'x_log')"),
         (2, "x: type error: expected a number; got str '3'")]
        """
        rows = _as_rows(rows)
        return self._run(rows, self.reads_label(rows, with_label))

    def reads_label(self, rows: Sequence[Any], with_label: bool | None = None) -> bool:
        """Whether :meth:`transform_batch` reads the label of these rows (see ``with_label``
        there): a batch transformed in pieces reads it in all of them or in none."""
        spec = self._fitted.spec
        if with_label is None:
            if isinstance(rows, Columns):
                return spec.label is not None and len(rows) > 0 and spec.label in rows.names
            return spec.label is not None and any(isinstance(r, Mapping) and spec.label in r for r in rows)
        if with_label and spec.label is None:
            raise FeatureSpecError("with_label", "the spec has no label")
        return bool(with_label)

    def transform_one(self, row: Mapping[str, Any]) -> np.ndarray:
        """Features of one raw row (the online path): exactly the numbers
        :meth:`transform_batch` gives for that row. The label is not read.

        Raises
        ------
        QuarantineError
            The row has a problem; ``err.row`` holds the reason.

        Examples
        --------
        >>> fs = fit_feature_set(FeatureSpec(steps=[StepSpec("t", "datetime_parts", ["t"],
        ...                                                   {"parts": ["weekday", "hour"]})]),
        ...                      [{"t": "2024-03-01T12:30:00+01:00"}])
        >>> fs.feature_names
        ('t.weekday', 't.hour')
        >>> fs.transform_one({"t": "2024-03-04T08:00:00Z"}).tolist()
        [0.0, 8.0]
        >>> fs.transform_one({"t": "yesterday"})
        Traceback (most recent call last):
        ...
        ml.quality.QuarantineError: t: type error: expected an ISO 8601 date-time; got 'yesterday'
        """
        X, _, report = self._run([row], use_label=False)
        if report.quarantined:
            raise QuarantineError(report.quarantined[0])
        return X[0]

    # ------------------------------------------------------------------ bytes

    def to_bytes(self) -> bytes:
        """JSON bytes holding the spec, the fitted states and the id (no pickle)."""
        return msgspec.json.encode(_Envelope(self._id, self._fitted), order="sorted")

    @classmethod
    def from_bytes(cls, data: bytes) -> FittedFeatureSet:
        """The feature set :meth:`to_bytes` wrote; its transforms must be registered.

        Raises
        ------
        FeatureSpecError
            ``field="bytes"`` for bytes that are not a feature set, or whose
            content does not match their feature_set_id.

        Examples
        --------
        >>> fs = fit_feature_set(FeatureSpec(steps=[StepSpec("x", "numeric", ["x"])]), [{"x": 1}])
        >>> FittedFeatureSet.from_bytes(fs.to_bytes()).feature_set_id == fs.feature_set_id
        True
        """
        try:
            envelope = msgspec.json.decode(data, type=_Envelope)
        except msgspec.ValidationError as err:
            cause = err.__cause__ or err.__context__
            if isinstance(cause, FeatureSpecError):
                raise cause.within("bytes.spec") from None
            raise FeatureSpecError("bytes", f"not a feature set: {err}") from None
        except (msgspec.DecodeError, TypeError) as err:
            raise FeatureSpecError("bytes", f"not a feature set: {err}") from None
        if envelope.fitted.format != FORMAT:
            raise FeatureSpecError("bytes", f"format {envelope.fitted.format} is not supported "
                                            f"(this code reads {FORMAT})")
        if _feature_id(envelope.fitted) != envelope.feature_set_id:
            raise FeatureSpecError("bytes", "the content does not match its feature_set_id (altered or corrupt)")
        if len(envelope.fitted.steps) != len(envelope.fitted.spec.steps):
            raise FeatureSpecError("bytes", "the fitted steps do not match the spec")
        fs = cls(envelope.fitted)
        names: list[str] = []
        for step, t in zip(fs._fitted.steps, fs._transforms):  # replay the table's names
            names = _replay_names(names, step, t)
        if names != fs._fitted.feature_names:
            raise FeatureSpecError("bytes", "the feature names do not match the steps")
        return fs


def _replay_names(names: list[str], step: FittedStep, t: Any) -> list[str]:
    if t.kind == "extract":
        return names + list(step.outputs)
    if t.kind == "transform":
        return names
    if getattr(t, "keep_others", True):
        candidates, kept = set(step.inputs), set(step.outputs)
        return [n for n in names if n not in candidates or n in kept]
    return list(step.outputs)


# --------------------------------------------------------------------------- fitting


def fit_feature_set(spec: FeatureSpec, rows: Iterable[Mapping[str, Any]]) -> FittedFeatureSet:
    """Fit every step of ``spec`` on a training batch.

    Parameters
    ----------
    spec : FeatureSpec
    rows : iterable of dict
        The training rows, raw. With a label in the spec, every row needs one.

    Returns
    -------
    FittedFeatureSet
        Its ``fit_report`` lists the training rows quarantined (left out of
        every fit from the step that found the problem on).

    Raises
    ------
    FeatureSpecError
        An empty batch, a column no training row has, a reference the data
        cannot resolve, a step that cannot be fitted (no values, a single
        class, negative values for chi-square...), a spec that keeps no
        feature, or a batch whose every row is quarantined.

    Examples
    --------
    >>> spec = FeatureSpec.from_toml('''
    ... label = "y"
    ... [[steps]]
    ... name = "n"
    ... transform = "numeric"
    ... columns = ["a", "b", "c"]
    ... [[steps]]
    ... name = "best"
    ... transform = "select_chi2"
    ... params = { k = 1 }
    ... ''')
    >>> rows = [{"a": 1, "b": 0, "c": 5, "y": "no"}, {"a": 0, "b": 3, "c": 5, "y": "yes"},
    ...         {"a": 1, "b": 0, "c": 4, "y": "no"}]
    >>> fs = fit_feature_set(spec, rows)
    >>> fs.feature_names, fs.label_kind, len(fs.feature_set_id)
    (('n.b',), 'str', 20)
    >>> fit_feature_set(spec, [])
    Traceback (most recent call last):
    ...
    ml.transforms.FeatureSpecError: rows: the training batch is empty
    """
    if not isinstance(spec, FeatureSpec):
        raise FeatureSpecError("spec", f"must be a FeatureSpec; got {type(spec).__name__}")
    try:
        spec = FeatureSpec.from_dict(msgspec.to_builtins(spec))  # a private, re-validated copy
    except TypeError as err:
        raise FeatureSpecError("spec", f"is not plain data: {err}") from None
    rows = _as_rows(rows)
    if not rows:
        raise FeatureSpecError("rows", "the training batch is empty")
    batch = _Batch(rows)
    if not batch.maps.any():
        raise FeatureSpecError("rows", "no training row is a mapping of column names to values")
    for i, step in enumerate(spec.steps):
        if get_transform(step.transform).kind == "extract":
            for j, column in enumerate(step.columns):
                if not batch.present(column):
                    raise FeatureSpecError(f"steps[{i}].columns[{j}]",
                                           f"step {step.name!r}: column {column!r} is in no training row")
    label_kind, y = None, None
    if spec.label is not None:
        if not batch.present(spec.label):
            raise FeatureSpecError("label", f"column {spec.label!r} is in no training row")
        label_kind = _learn_label_kind([v for v, ok in zip(batch.raw(spec.label), batch.maps) if ok])
        y = _read_labels(batch, spec.label, label_kind)
    if spec.key is not None:
        if not batch.present(spec.key):
            raise FeatureSpecError("key", f"column {spec.key!r} is in no training row")
        _check_keys(batch, spec.key)

    table = _Table()
    transforms: list[Any] = []
    fitted_steps: list[FittedStep] = []
    for i, step in enumerate(spec.steps):
        where = f"steps[{i}]"
        cls = get_transform(step.transform)
        kind = cls.kind
        inputs = list(step.columns) if kind == "extract" else _resolve(step, where, table)
        t = _construct(cls, inputs, step.params, where, step.name)
        arrays = _inputs(batch, table, t, kind)
        _run_checks(batch, table, step.name, t, kind, arrays)
        good = ~batch.quality.flagged
        if not good.any():
            raise FeatureSpecError("rows", f"every training row is quarantined by step {step.name!r}; first: "
                                   f"{batch.quality.first_reason()}")
        try:
            with np.errstate(all="ignore"):
                t.fit([a[good] for a in arrays], None if y is None else y[good])
            state = msgspec.json.decode(msgspec.json.encode(_plain(t.state(), f"{where}.state")))
            t = cls.from_state(list(inputs), dict(step.params), state)
        except FeatureSpecError as err:
            raise err.within(where, f"step {step.name!r}: ") from None
        except (ArithmeticError, LookupError, TypeError, ValueError) as err:
            raise FeatureSpecError(where, f"step {step.name!r} could not be fitted: {err}") from None
        if kind == "extract":
            outputs = _feature_names(step.name, t.output_parts())
        elif kind == "transform":
            outputs = list(inputs)
        else:
            positions = list(t.selected())
            valid = all(isinstance(p, int) and 0 <= p < len(inputs) for p in positions)
            if not valid or len(set(positions)) != len(positions):
                raise FeatureSpecError(where, f"step {step.name!r}: selected() must give distinct input positions")
            outputs = [inputs[p] for p in positions]
        outs = _outputs(step.name, where, t, kind, arrays, batch.n, len(outputs))
        _update(table, step.name, where, t, kind, outputs, outs, fitting=True)
        transforms.append(t)
        fitted_steps.append(FittedStep(step.name, step.transform, list(inputs), outputs, state))
    if not table.names:
        raise FeatureSpecError("steps", "the spec keeps no feature")
    _, kept = _finish(batch, table)
    if kept.size == 0:
        raise FeatureSpecError("rows", f"every training row is quarantined; first: {batch.quality.first_reason()}")
    fitted = _Fitted(FORMAT, spec, label_kind, fitted_steps, list(table.names))
    return FittedFeatureSet(fitted, transforms, _report(batch, spec, spec.raw_columns, spec.label is not None, None))
