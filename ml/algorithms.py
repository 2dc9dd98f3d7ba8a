"""Algorithm registry: interchangeable model facades over scikit-learn and River.

Every algorithm the training stage can run is described by an
:class:`AlgorithmSpec` (its name, family, task, typed parameters and a factory)
and kept in one registry. :func:`build` validates a parameter dict against the
spec *before* anything is fitted and wraps the estimator in a :class:`Model`
facade, so a batch scikit-learn estimator, an incremental River learner and a
River forecaster are all driven the same way::

    fit(X, y) -> predict(X) / predict_proba(X) -> summary()

and incremental learners also take ``learn_batch(X, y)``, ``learn_one(x, y)``
and ``predict_one(x)``.

The module does no I/O and imports scikit-learn and River lazily, inside the
built-in factories, so importing it is cheap.

Examples
--------
>>> import numpy as np
>>> from ml.algorithms import build
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
>>> y = np.array([0, 0, 1, 1])
>>> model = build("sklearn.decision_tree", {"max_depth": 2}).fit(X, y)
>>> model.predict(np.array([[0.2], [2.8]])).tolist()
[0, 1]
>>> model.summary()["depth"]
1
"""

from __future__ import annotations

import copy
import math
import numbers
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ml.errors import FieldError

__all__ = [
    "FAMILIES",
    "REQUIRED",
    "TASKS",
    "AlgorithmError",
    "AlgorithmSpec",
    "BatchModel",
    "ForecastModel",
    "IncrementalModel",
    "Model",
    "ParamSpec",
    "build",
    "check_training_data",
    "get_algorithm",
    "list_algorithms",
    "positive_class_scores",
    "register_algorithm",
    "unregister_algorithm",
]

FAMILIES: tuple[str, ...] = ("sklearn", "river", "custom")
TASKS: tuple[str, ...] = ("classification", "regression", "clustering", "forecasting")
_PARAM_TYPES: tuple[type, ...] = (bool, int, float, str)


class AlgorithmError(FieldError):
    """A bad algorithm name, parameter, training set or model call.

    Parameters
    ----------
    field : str
        What was wrong, as a path: ``"name"``, ``"params.C"``, ``"X"``, ``"y"``,
        ``"task"``, ``"model"`` ...
    reason : str
        Why, in words a user can act on.

    Examples
    --------
    >>> err = AlgorithmError("params.C", "must be > 0; got -1.0")
    >>> err.field, err.reason
    ('params.C', 'must be > 0; got -1.0')
    >>> str(err)
    'params.C: must be > 0; got -1.0'
    >>> isinstance(err, ValueError)
    True
    """



class _Required:
    """Sentinel default of a parameter that has no default."""

    _instance: _Required | None = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self):
        return (_Required, ())


REQUIRED: Any = _Required()
"""Default of a :class:`ParamSpec` that the caller must always give."""


def _type_name(value: Any) -> str:
    return type(value).__name__


@dataclass(frozen=True)
class ParamSpec:
    """Type, default and allowed values of one algorithm parameter.

    Parameters
    ----------
    type : {bool, int, float, str}
        Accepted Python type. ``bool`` is never accepted for ``int`` or
        ``float``; an ``int`` is accepted (and converted) for ``float``.
    default : object
        Value used when the parameter is not given; :data:`REQUIRED` when the
        caller must always give it.
    min, max : float, optional
        Inclusive bounds (numbers only), unless ``min_exclusive`` /
        ``max_exclusive``.
    choices : sequence, optional
        The only accepted values.
    nullable : bool, optional
        Whether ``None`` is accepted. Defaults to ``default is None``.
    min_exclusive, max_exclusive : bool
        Make the bound strict (``C > 0`` is ``min=0, min_exclusive=True``).
    doc : str
        One line shown by :meth:`describe`.

    Examples
    --------
    >>> spec = ParamSpec(float, 1.0, min=0.0, min_exclusive=True)
    >>> spec.validate(2, "params.C")
    2.0
    >>> spec.validate(0.0, "params.C")
    Traceback (most recent call last):
    ...
    ml.algorithms.AlgorithmError: params.C: must be > 0.0; got 0.0
    >>> ParamSpec(int, None, min=1).validate(None, "params.max_depth") is None
    True
    """

    type: type
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _PARAM_TYPES:
            raise AlgorithmError("type", f"must be one of bool, int, float, str; got {self.type!r}")
        if self.nullable is None:
            object.__setattr__(self, "nullable", self.default is None)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if (self.min is not None or self.max is not None) and self.type not in (int, float):
            raise AlgorithmError("min", f"bounds apply to int and float parameters, not {self.type.__name__}")
        if self.default is not REQUIRED:
            self.validate(self.default, "default")

    @property
    def required(self) -> bool:
        """Whether the caller must give this parameter."""
        return self.default is REQUIRED

    def validate(self, value: Any, field: str) -> Any:
        """Check ``value`` and return it converted to the parameter's type.

        Parameters
        ----------
        value : object
            The value given.
        field : str
            Name used in the error, e.g. ``"params.C"``.

        Returns
        -------
        object
            ``value`` as ``bool``, ``int``, ``float``, ``str`` or ``None``.

        Raises
        ------
        AlgorithmError
            Wrong type, out of range, not among the choices, or ``None`` where
            not accepted.

        Examples
        --------
        >>> ParamSpec(int, 10, min=1).validate(True, "params.n_estimators")
        Traceback (most recent call last):
        ...
        ml.algorithms.AlgorithmError: params.n_estimators: must be an int, got bool True
        """
        if value is None:
            if self.nullable:
                return None
            raise AlgorithmError(field, f"must be a {self.type.__name__}, got None")
        value = self._coerce(value, field)
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise AlgorithmError(field, f"must be one of {allowed}; got {value!r}")
        if self.min is not None:
            if self.min_exclusive and not value > self.min:
                raise AlgorithmError(field, f"must be > {self.min}; got {value!r}")
            if not self.min_exclusive and not value >= self.min:
                raise AlgorithmError(field, f"must be >= {self.min}; got {value!r}")
        if self.max is not None:
            if self.max_exclusive and not value < self.max:
                raise AlgorithmError(field, f"must be < {self.max}; got {value!r}")
            if not self.max_exclusive and not value <= self.max:
                raise AlgorithmError(field, f"must be <= {self.max}; got {value!r}")
        return value

    def _coerce(self, value: Any, field: str) -> Any:
        is_bool = isinstance(value, (bool, np.bool_))
        if self.type is bool:
            if is_bool:
                return bool(value)
            raise AlgorithmError(field, f"must be a bool, got {_type_name(value)} {value!r}")
        if self.type is int:
            if isinstance(value, numbers.Integral) and not is_bool:
                return int(value)
            raise AlgorithmError(field, f"must be an int, got {_type_name(value)} {value!r}")
        if self.type is float:
            if isinstance(value, numbers.Real) and not is_bool:
                as_float = float(value)
                if not math.isfinite(as_float):
                    raise AlgorithmError(field, f"must be a finite number; got {value!r}")
                return as_float
            raise AlgorithmError(field, f"must be a float, got {_type_name(value)} {value!r}")
        if isinstance(value, str):
            return value
        raise AlgorithmError(field, f"must be a str, got {_type_name(value)} {value!r}")

    def describe(self) -> dict[str, Any]:
        """JSON-able description, for ``--help`` output and the candidate store.

        Examples
        --------
        >>> ParamSpec(str, "gini", choices=("gini", "entropy")).describe()["choices"]
        ['gini', 'entropy']
        """
        return {
            "type": self.type.__name__,
            "default": None if self.required else self.default,
            "required": self.required,
            "nullable": bool(self.nullable),
            "min": self.min,
            "max": self.max,
            "min_exclusive": self.min_exclusive,
            "max_exclusive": self.max_exclusive,
            "choices": None if self.choices is None else list(self.choices),
            "doc": self.doc,
        }


@dataclass(frozen=True)
class AlgorithmSpec:
    """One registered algorithm.

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"sklearn.logistic_regression"``.
    family : {"sklearn", "river", "custom"}
    task : {"classification", "regression", "clustering", "forecasting"}
    params : Mapping[str, ParamSpec]
        Accepted parameters (read-only).
    factory : callable
        Called as ``factory(**validated_params)``; returns the estimator.
    incremental : bool or None
        Whether the built model learns incrementally; ``None`` when it is
        only known once the estimator is built (custom algorithms).
    description : str

    Examples
    --------
    >>> spec = get_algorithm("sklearn.random_forest")
    >>> spec.family, spec.task, spec.params["n_estimators"].default
    ('sklearn', 'classification', 100)
    >>> spec.resolve_params({"n_estimators": 5})["n_estimators"]
    5
    """

    name: str
    family: str
    task: str
    params: Mapping[str, ParamSpec]
    factory: Callable[..., Any] = field(repr=False, compare=False)
    incremental: bool | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or self.name != self.name.strip():
            raise AlgorithmError("name", f"must be a non-empty string without surrounding spaces; got {self.name!r}")
        if self.family not in FAMILIES:
            raise AlgorithmError("family", f"must be one of {', '.join(FAMILIES)}; got {self.family!r}")
        if self.task not in TASKS:
            raise AlgorithmError("task", f"must be one of {', '.join(TASKS)}; got {self.task!r}")
        if not callable(self.factory):
            raise AlgorithmError("factory", f"must be callable; got {_type_name(self.factory)}")
        if not isinstance(self.params, Mapping):
            raise AlgorithmError("params", f"must be a mapping of name -> ParamSpec; got {_type_name(self.params)}")
        for key, spec in self.params.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise AlgorithmError("params", f"parameter names must be identifiers; got {key!r}")
            if not isinstance(spec, ParamSpec):
                raise AlgorithmError(f"params.{key}", f"must be a ParamSpec; got {_type_name(spec)}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:
        return hash((self.name, self.family, self.task))

    def __reduce__(self):  # a mappingproxy does not pickle; a fitted Model carries its spec
        return (
            AlgorithmSpec,
            (self.name, self.family, self.task, dict(self.params), self.factory, self.incremental, self.description),
        )

    def resolve_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validate ``params`` and fill in defaults.

        Parameters
        ----------
        params : Mapping[str, object], optional
            Parameters given by the caller; missing ones take their default.

        Returns
        -------
        dict
            Every parameter of the spec, validated and converted.

        Raises
        ------
        AlgorithmError
            With ``field="params.<name>"`` for an unknown, missing required,
            mistyped, out-of-range or not-allowed parameter.

        Examples
        --------
        >>> spec = get_algorithm("sklearn.logistic_regression")
        >>> spec.resolve_params({"C": 1})["C"]
        1.0
        >>> spec.resolve_params({"c": 1.0})
        Traceback (most recent call last):
        ...
        ml.algorithms.AlgorithmError: params.c: unknown parameter of sklearn.logistic_regression; accepted: C, class_weight, fit_intercept, max_iter, random_state, solver, tol
        """
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise AlgorithmError("params", f"must be a mapping of parameter name -> value; got {_type_name(params)}")
        for key in params:
            if key not in self.params:
                accepted = ", ".join(sorted(self.params)) or "none"
                raise AlgorithmError(f"params.{key}", f"unknown parameter of {self.name}; accepted: {accepted}")
        resolved: dict[str, Any] = {}
        for key, spec in self.params.items():
            if key in params:
                resolved[key] = spec.validate(params[key], f"params.{key}")
            elif spec.required:
                raise AlgorithmError(f"params.{key}", f"is required by {self.name}")
            else:
                resolved[key] = spec.default
        return resolved

    def describe(self) -> dict[str, Any]:
        """JSON-able description of the algorithm and its parameters.

        Examples
        --------
        >>> get_algorithm("river.snarimax").describe()["params"]["p"]["required"]
        True
        """
        return {
            "name": self.name,
            "family": self.family,
            "task": self.task,
            "incremental": self.incremental,
            "description": self.description,
            "params": {key: spec.describe() for key, spec in self.params.items()},
        }


# --------------------------------------------------------------------------- data checks


def _as_feature_matrix(X: Any, field: str = "X") -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise AlgorithmError(field, f"must be numeric; {exc}") from None
    if arr.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise AlgorithmError(field, f"must be 2-D (n_samples, n_features); got {arr.ndim}-D{hint}")
    return arr


def _check_finite(arr: np.ndarray, field: str) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        where = np.argwhere(~finite)[0]
        place = f"row {where[0]}, column {where[1]}" if arr.ndim == 2 else f"index {where[0]}"
        raise AlgorithmError(field, f"contains NaN or infinite values (first at {place})")


def _is_missing_label(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(isinstance(value, (float, np.floating)) and math.isnan(value))
    except TypeError:
        return False


def check_training_data(
    X: Any,
    y: Any,
    task: str,
    *,
    min_classes: int = 2,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validate a training set before it reaches an estimator.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or None
        Numeric features. ``None`` only for ``task="forecasting"`` (a series
        without exogenous features).
    y : array-like of shape (n_samples,) or None
        Labels or targets; ignored (may be ``None``) for clustering.
    task : {"classification", "regression", "clustering", "forecasting"}
    min_classes : int, default 2
        Fewest distinct labels a classification set must have. Incremental
        learners take mini-batches with ``min_classes=1``.

    Returns
    -------
    X : ndarray of float, shape (n_samples, n_features), or None
    y : ndarray, shape (n_samples,), or None
        Float for regression and forecasting, labels unchanged for
        classification, ``None`` for clustering.

    Raises
    ------
    AlgorithmError
        ``field="task"`` for an unknown task; ``field="X"`` for an empty set,
        no feature columns, non-numeric, not 2-D, or NaN/inf values;
        ``field="y"`` for missing labels, a length that differs from ``X``,
        NaN/inf targets, or a single class in a classification set.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = check_training_data([[1.0, 2.0], [3.0, 4.0]], [0, 1], "classification")
    >>> X.shape, y.tolist()
    ((2, 2), [0, 1])
    >>> check_training_data([[1.0], [2.0]], [1, 1], "classification")
    Traceback (most recent call last):
    ...
    ml.algorithms.AlgorithmError: y: classification needs at least 2 classes; found 1 (1)
    >>> check_training_data([[1.0], [np.nan]], [0.5, 1.5], "regression")
    Traceback (most recent call last):
    ...
    ml.algorithms.AlgorithmError: X: contains NaN or infinite values (first at row 1, column 0)
    """
    if task not in TASKS:
        raise AlgorithmError("task", f"must be one of {', '.join(TASKS)}; got {task!r}")
    X_arr: np.ndarray | None = None
    if X is None:
        if task != "forecasting":
            raise AlgorithmError("X", f"is required for {task}")
    else:
        X_arr = _as_feature_matrix(X)
        if X_arr.shape[0] == 0:
            raise AlgorithmError("X", "training set is empty (0 rows)")
        if X_arr.shape[1] == 0 and task != "forecasting":
            raise AlgorithmError("X", "has no feature columns")
        _check_finite(X_arr, "X")

    if task == "clustering":
        return X_arr, None
    if y is None:
        raise AlgorithmError("y", f"is required for {task}")
    y_arr = np.asarray(y)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        y_arr = y_arr.ravel()
    if y_arr.ndim != 1:
        raise AlgorithmError("y", f"must be 1-D; got shape {y_arr.shape}")
    if y_arr.shape[0] == 0:
        raise AlgorithmError("y", "training set is empty (0 labels)")
    if X_arr is not None and y_arr.shape[0] != X_arr.shape[0]:
        raise AlgorithmError("y", f"has {y_arr.shape[0]} values but X has {X_arr.shape[0]} rows")

    if task == "classification":
        missing = [i for i, v in enumerate(y_arr.tolist()) if _is_missing_label(v)]
        if missing:
            raise AlgorithmError("y", f"contains missing labels (first at index {missing[0]})")
        classes = np.unique(y_arr)
        if len(classes) < min_classes:
            shown = ", ".join(repr(c) for c in classes.tolist()[:5])
            raise AlgorithmError(
                "y", f"classification needs at least {min_classes} classes; found {len(classes)} ({shown})"
            )
        return X_arr, y_arr
    try:
        y_float = y_arr.astype(float)
    except (TypeError, ValueError):
        raise AlgorithmError("y", f"{task} targets must be numeric; got dtype {y_arr.dtype}") from None
    _check_finite(y_float, "y")
    return X_arr, y_float


# --------------------------------------------------------------------------- helpers


def _jsonable(value: Any) -> Any:
    """Convert numpy values and containers to plain JSON-able Python."""
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    return repr(value)


def positive_class_scores(proba: Any, classes: Sequence[Any], positive: Any = None) -> np.ndarray:
    """Column of ``proba`` for the positive class of a binary classifier.

    Parameters
    ----------
    proba : array-like of shape (n_samples, 2)
        Class probabilities, columns in the order of ``classes``.
    classes : sequence of length 2
    positive : object, optional
        The positive label; defaults to ``classes[-1]`` (``1``, ``True``, or
        the larger label), as scikit-learn does.

    Returns
    -------
    ndarray of shape (n_samples,)

    Raises
    ------
    AlgorithmError
        ``field="classes"`` when there are not exactly two classes or
        ``positive`` is not one of them.

    Examples
    --------
    >>> positive_class_scores([[0.9, 0.1], [0.2, 0.8]], ["no", "yes"]).tolist()
    [0.1, 0.8]
    """
    classes = list(classes)
    if len(classes) != 2:
        raise AlgorithmError("classes", f"positive-class scores need a binary classifier; got {len(classes)} classes")
    if positive is None:
        positive = classes[-1]
    if positive not in classes:
        raise AlgorithmError("classes", f"positive label {positive!r} is not one of {classes!r}")
    proba_arr = np.asarray(proba, dtype=float)
    return proba_arr[:, classes.index(positive)]


def _feature_names(X: Any, n_features: int, feature_names: Sequence[str] | None) -> tuple[str, ...]:
    if feature_names is None:
        columns = getattr(X, "columns", None)
        feature_names = [str(c) for c in columns] if columns is not None else None
    if feature_names is None:
        return tuple(f"x{i}" for i in range(n_features))
    names = tuple(str(n) for n in feature_names)
    if len(names) != n_features:
        raise AlgorithmError("feature_names", f"has {len(names)} names but X has {n_features} columns")
    if len(set(names)) != len(names):
        raise AlgorithmError("feature_names", "names must be unique")
    return names


# --------------------------------------------------------------------------- facades


class Model(ABC):
    """Uniform facade over one estimator built from an :class:`AlgorithmSpec`.

    Use :func:`build` to make one. Subclasses: :class:`BatchModel`
    (``fit``/``predict`` estimators such as scikit-learn), :class:`IncrementalModel`
    (``learn_one``/``predict_one`` learners such as River) and
    :class:`ForecastModel` (``learn_one(y, x)``/``forecast`` such as River's
    SNARIMAX).

    Attributes
    ----------
    spec : AlgorithmSpec
    params : dict
        The validated parameters, defaults included.
    estimator : object
        The wrapped estimator.
    feature_names : tuple of str or None
        Set by the first ``fit``/``learn_batch``; ``x0..xN`` unless given.

    Examples
    --------
    >>> import numpy as np
    >>> model = build("river.logistic_regression")
    >>> model.is_incremental, model.task
    (True, 'classification')
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0]] * 20)
    >>> y = np.array([0, 1] * 20)
    >>> model.fit(X, y, feature_names=["a", "b"]).predict(X[:2]).tolist()
    [0, 1]
    >>> [w > 0 for w in model.summary()["coef"]]  # one weight per feature: a, b
    [True, False]
    """

    def __init__(self, spec: AlgorithmSpec, params: Mapping[str, Any], estimator: Any) -> None:
        self.spec = spec
        self.params = dict(params)
        self.estimator = estimator
        self.feature_names: tuple[str, ...] | None = None
        self._fitted = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r}, fitted={self._fitted})"

    @property
    def name(self) -> str:
        """The algorithm's registry name."""
        return self.spec.name

    @property
    def task(self) -> str:
        """The algorithm's task."""
        return self.spec.task

    @property
    def is_fitted(self) -> bool:
        """Whether the model has learnt from at least one batch."""
        return self._fitted

    @property
    def n_features(self) -> int | None:
        """Number of feature columns seen in training, or ``None`` before."""
        return None if self.feature_names is None else len(self.feature_names)

    @property
    @abstractmethod
    def is_incremental(self) -> bool:
        """Whether :meth:`learn_batch` can continue training."""

    @property
    @abstractmethod
    def classes_(self) -> np.ndarray:
        """Class labels in the column order of :meth:`predict_proba`."""

    @abstractmethod
    def fit(self, X: Any, y: Any = None, *, feature_names: Sequence[str] | None = None) -> Model:
        """Train from scratch on ``(X, y)`` and return ``self``.

        The data is checked with :func:`check_training_data` first. For an
        incremental learner, ``fit`` starts from a fresh copy of the learner
        (as scikit-learn's ``fit`` does) and learns the rows in order.
        """

    @abstractmethod
    def learn_batch(
        self, X: Any, y: Any = None, *, classes: Sequence[Any] | None = None, feature_names: Sequence[str] | None = None
    ) -> Model:
        """Continue training on one more batch (incremental learners only).

        ``classes`` lists every label the stream will bring; scikit-learn's
        ``partial_fit`` needs it on the first batch unless that batch already
        holds every class.
        """

    @abstractmethod
    def predict(self, X: Any) -> np.ndarray:
        """Predictions for each row of ``X``."""

    @abstractmethod
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n_samples, n_classes)`` (classification only)."""

    def positive_proba(self, X: Any, positive: Any = None) -> np.ndarray:
        """Probability of the positive class, for a binary classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        positive : object, optional
            Positive label; defaults to the last of :attr:`classes_`.

        Returns
        -------
        ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> m = build("sklearn.logistic_regression").fit(X, [0, 0, 1, 1])
        >>> bool(m.positive_proba(np.array([[3.0]]))[0] > 0.5)
        True
        """
        return positive_class_scores(self.predict_proba(X), self.classes_.tolist(), positive)

    def summary(self) -> dict[str, Any]:
        """Small JSON-able description of what was learnt.

        Always has ``algorithm``, ``family``, ``task``, ``incremental``,
        ``fitted``, ``params``, ``n_features`` and ``feature_names``; then, as
        they apply: ``classes``; ``coef`` and ``intercept`` (linear models);
        ``depth``, ``n_leaves`` and ``n_nodes`` (trees); ``n_estimators``
        (ensembles); ``feature_importances``; ``cluster_centers``,
        ``n_clusters`` and ``inertia`` (k-means); ``n_samples_seen``
        (incremental); ``p``, ``d``, ``q`` ... (SNARIMAX).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
        >>> s = build("sklearn.kmeans", {"n_clusters": 2}).fit(X).summary()
        >>> s["n_clusters"], sorted(round(c[0]) for c in s["cluster_centers"])
        (2, [0, 5])
        """
        out: dict[str, Any] = {
            "algorithm": self.spec.name,
            "family": self.spec.family,
            "task": self.spec.task,
            "incremental": self.is_incremental,
            "fitted": self._fitted,
            "params": _jsonable(self.params),
            "n_features": self.n_features,
            "feature_names": None if self.feature_names is None else list(self.feature_names),
        }
        if self._fitted:
            out.update(self._learned())
        return out

    @abstractmethod
    def _learned(self) -> dict[str, Any]:
        """Estimator-specific part of :meth:`summary` (fitted models only)."""

    # shared checks --------------------------------------------------------

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise AlgorithmError("model", f"{self.spec.name} is not fitted; call fit() or learn_batch() first")

    def _require_classification(self, what: str) -> None:
        if self.spec.task != "classification":
            raise AlgorithmError("task", f"{what} needs a classification algorithm; {self.spec.name} does {self.spec.task}")

    def _set_feature_names(self, X: Any, n_features: int, feature_names: Sequence[str] | None, *, reset: bool) -> None:
        names = _feature_names(X, n_features, feature_names)
        if not reset and self.feature_names is not None and names != self.feature_names:
            if len(names) != len(self.feature_names):
                raise AlgorithmError("X", f"has {len(names)} columns; the model was trained on {len(self.feature_names)}")
            if feature_names is not None or getattr(X, "columns", None) is not None:
                raise AlgorithmError("feature_names", "differ from the names the model was trained on")
            return
        self.feature_names = names

    def _predict_matrix(self, X: Any) -> np.ndarray:
        self._require_fitted()
        arr = _as_feature_matrix(X)
        if self.n_features is not None and arr.shape[1] != self.n_features:
            raise AlgorithmError("X", f"has {arr.shape[1]} columns; the model was trained on {self.n_features}")
        _check_finite(arr, "X")
        return arr


class BatchModel(Model):
    """Facade over a ``fit``/``predict`` estimator (scikit-learn API).

    ``learn_batch`` uses ``partial_fit`` where the estimator has it (e.g.
    ``SGDClassifier``); :attr:`is_incremental` says so.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> m = build("sklearn.linear_regression").fit(X, [1.0, 3.0, 5.0, 7.0])
    >>> m.predict(np.array([[4.0]])).round(6).tolist()
    [9.0]
    >>> s = m.summary()
    >>> round(s["coef"][0], 6), round(s["intercept"], 6)
    (2.0, 1.0)
    """

    @property
    def is_incremental(self) -> bool:
        return callable(getattr(self.estimator, "partial_fit", None))

    @property
    def classes_(self) -> np.ndarray:
        self._require_classification("classes_")
        self._require_fitted()
        return np.asarray(self.estimator.classes_)

    def fit(self, X: Any, y: Any = None, *, feature_names: Sequence[str] | None = None) -> BatchModel:
        X_arr, y_arr = check_training_data(X, y, self.spec.task)
        if X_arr is None:
            raise AlgorithmError("X", f"{self.spec.name} learns from features; pass X")
        self._check_cluster_count(X_arr)
        self._set_feature_names(X, X_arr.shape[1], feature_names, reset=True)
        if self.spec.task == "clustering":
            self.estimator.fit(X_arr)
        else:
            self.estimator.fit(X_arr, y_arr)
        self._fitted = True
        return self

    def learn_batch(
        self, X: Any, y: Any = None, *, classes: Sequence[Any] | None = None, feature_names: Sequence[str] | None = None
    ) -> BatchModel:
        if not self.is_incremental:
            raise AlgorithmError("model", f"{self.spec.name} is not incremental (no partial_fit); use fit()")
        X_arr, y_arr = check_training_data(X, y, self.spec.task, min_classes=1)
        self._set_feature_names(X, X_arr.shape[1], feature_names, reset=not self._fitted)
        if self.spec.task == "clustering":
            self.estimator.partial_fit(X_arr)
        elif self.spec.task == "classification":
            if classes is None:
                classes = getattr(self.estimator, "classes_", None) if self._fitted else np.unique(y_arr)
            self.estimator.partial_fit(X_arr, y_arr, classes=np.asarray(classes))
        else:
            self.estimator.partial_fit(X_arr, y_arr)
        self._fitted = True
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict(self._predict_matrix(X)))

    def predict_proba(self, X: Any) -> np.ndarray:
        self._require_classification("predict_proba")
        if not callable(getattr(self.estimator, "predict_proba", None)):
            raise AlgorithmError("model", f"{self.spec.name} with these parameters gives no probabilities")
        return np.asarray(self.estimator.predict_proba(self._predict_matrix(X)), dtype=float)

    def _check_cluster_count(self, X_arr: np.ndarray) -> None:
        n_clusters = self.params.get("n_clusters")
        if self.spec.task == "clustering" and isinstance(n_clusters, int) and n_clusters > X_arr.shape[0]:
            raise AlgorithmError("params.n_clusters", f"is {n_clusters} but X has only {X_arr.shape[0]} rows")

    def _learned(self) -> dict[str, Any]:
        est = self.estimator
        out: dict[str, Any] = {}
        if hasattr(est, "classes_") and self.spec.task == "classification":
            out["classes"] = _jsonable(est.classes_)
        coef = getattr(est, "coef_", None)
        if coef is not None:
            coef = np.asarray(coef, dtype=float)
            out["coef"] = _jsonable(coef[0] if coef.ndim == 2 and coef.shape[0] == 1 else coef)
            intercept = np.atleast_1d(np.asarray(getattr(est, "intercept_", 0.0), dtype=float))
            out["intercept"] = float(intercept[0]) if intercept.size == 1 else _jsonable(intercept)
        if hasattr(est, "tree_") and callable(getattr(est, "get_depth", None)):
            out["depth"] = int(est.get_depth())
            out["n_leaves"] = int(est.get_n_leaves())
            out["n_nodes"] = int(est.tree_.node_count)
        if hasattr(est, "n_estimators_"):
            out["n_estimators"] = int(est.n_estimators_)
        elif hasattr(est, "estimators_"):
            out["n_estimators"] = len(est.estimators_)
        importances = getattr(est, "feature_importances_", None)
        if importances is not None:
            out["feature_importances"] = _jsonable(np.asarray(importances, dtype=float))
        centers = getattr(est, "cluster_centers_", None)
        if centers is not None:
            out["cluster_centers"] = _jsonable(np.asarray(centers, dtype=float))
            out["n_clusters"] = int(np.asarray(centers).shape[0])
            if hasattr(est, "inertia_"):
                out["inertia"] = float(est.inertia_)
        n_iter = getattr(est, "n_iter_", None)
        if n_iter is not None:
            out["n_iter"] = int(np.max(n_iter))
        return out


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, Mapping) and steps:
        return list(steps.values())[-1]
    return estimator


def _is_binary_only(estimator: Any) -> bool:
    # River classifiers say whether they handle more than two classes.
    return getattr(_final_step(estimator), "_multiclass", True) is False


class IncrementalModel(Model):
    """Facade over a ``learn_one``/``predict_one`` learner (River API).

    Rows become dicts keyed by :attr:`feature_names`. A binary-only learner
    (River's ``LogisticRegression``) sees ``y == positive`` as a bool, where the
    positive label is the last of the two sorted classes; labels that are not
    0/1 or bools need both classes known (from ``fit``, or ``classes=`` on
    the first ``learn_batch``).

    Examples
    --------
    >>> import numpy as np
    >>> m = build("river.hoeffding_tree_classifier", {"grace_period": 10})
    >>> X = np.array([[0.0], [1.0]] * 30)
    >>> y = np.array(["low", "high"] * 30)
    >>> m.fit(X, y).predict(np.array([[0.0], [1.0]])).tolist()
    ['low', 'high']
    >>> m.classes_.tolist()
    ['high', 'low']
    >>> m.learn_one({"x0": 1.0}, "high").summary()["n_samples_seen"]
    61
    """

    def __init__(self, spec: AlgorithmSpec, params: Mapping[str, Any], estimator: Any) -> None:
        super().__init__(spec, params, estimator)
        self._prototype = copy.deepcopy(estimator)
        self._classes: list[Any] = []
        self._binary_only = spec.task == "classification" and _is_binary_only(estimator)
        self.n_samples_seen = 0

    @property
    def is_incremental(self) -> bool:
        return True

    @property
    def classes_(self) -> np.ndarray:
        self._require_classification("classes_")
        self._require_fitted()
        return np.asarray(self._sorted_classes())

    def _sorted_classes(self) -> list[Any]:
        try:
            return sorted(self._classes)
        except TypeError:
            return list(self._classes)

    def _row(self, x: Any) -> dict[str, Any]:
        if isinstance(x, Mapping):
            return dict(x)
        if self.feature_names is None:
            raise AlgorithmError("x", "pass a dict before the model knows its feature names")
        values = np.asarray(x, dtype=float).ravel().tolist()
        if len(values) != len(self.feature_names):
            raise AlgorithmError("x", f"has {len(values)} values; the model was trained on {len(self.feature_names)}")
        return dict(zip(self.feature_names, values))

    def _rows(self, X_arr: np.ndarray) -> list[dict[str, float]]:
        names = self.feature_names or ()
        return [dict(zip(names, row)) for row in X_arr.tolist()]

    def _note_classes(self, labels: Sequence[Any], classes: Sequence[Any] | None) -> None:
        for label in list(classes or []) + list(labels):
            if label not in self._classes:
                self._classes.append(label)
        if self._binary_only and len(self._classes) > 2:
            raise AlgorithmError(
                "y", f"{self.spec.name} is a binary classifier; found {len(self._classes)} classes"
            )

    def _encode(self, label: Any) -> Any:
        if not self._binary_only:
            return label
        classes = self._sorted_classes()
        if len(classes) == 2:
            return label == classes[1]
        if all(c in (0, 1) for c in classes):  # 0/1 or bools: the positive class is 1/True
            return bool(label)
        raise AlgorithmError(
            "classes", f"{self.spec.name} is binary: pass classes=[negative, positive] with the first batch"
        )

    def _decode(self, prediction: Any) -> Any:
        if not self._binary_only or not isinstance(prediction, (bool, np.bool_)):
            return prediction
        classes = self._binary_classes()
        return classes[1] if prediction else classes[0]

    def _binary_classes(self) -> list[Any]:
        classes = self._sorted_classes()
        if len(classes) == 2:
            return classes
        if classes and isinstance(classes[0], (bool, np.bool_)):
            return [False, True]
        return [0, 1]

    def _learn_rows(self, rows: list[dict[str, Any]], labels: list[Any] | None) -> None:
        learner = self.estimator
        if labels is None:
            for row in rows:
                learner.learn_one(row)
        else:
            for row, label in zip(rows, labels):
                learner.learn_one(row, self._encode(label))
        self.n_samples_seen += len(rows)
        self._fitted = self._fitted or bool(rows)

    def fit(self, X: Any, y: Any = None, *, feature_names: Sequence[str] | None = None) -> IncrementalModel:
        X_arr, y_arr = check_training_data(X, y, self.spec.task)
        self.estimator = copy.deepcopy(self._prototype)
        self._classes = []
        self.n_samples_seen = 0
        self._fitted = False
        self._set_feature_names(X, X_arr.shape[1], feature_names, reset=True)
        labels = None if y_arr is None else y_arr.tolist()
        if self.spec.task == "classification":
            self._note_classes(labels, None)
        self._learn_rows(self._rows(X_arr), labels)
        return self

    def learn_batch(
        self, X: Any, y: Any = None, *, classes: Sequence[Any] | None = None, feature_names: Sequence[str] | None = None
    ) -> IncrementalModel:
        X_arr, y_arr = check_training_data(X, y, self.spec.task, min_classes=1)
        self._set_feature_names(X, X_arr.shape[1], feature_names, reset=self.feature_names is None)
        labels = None if y_arr is None else y_arr.tolist()
        if self.spec.task == "classification":
            self._note_classes(labels, classes)
        self._learn_rows(self._rows(X_arr), labels)
        return self

    def learn_one(self, x: Any, y: Any = None) -> IncrementalModel:
        """Learn one example (a dict, or a row in :attr:`feature_names` order).

        Examples
        --------
        >>> m = build("river.linear_regression", {"scale": False})
        >>> for v in range(50):
        ...     _ = m.learn_one({"a": v / 50}, 2.0 * v / 50)
        >>> m.n_samples_seen
        50
        """
        row = self._row(x)
        if self.feature_names is None:
            self.feature_names = tuple(row)
        if self.spec.task != "clustering":
            if y is None:
                raise AlgorithmError("y", f"is required for {self.spec.task}")
            if self.spec.task == "classification":
                self._note_classes([y], None)
        self._learn_rows([row], None if self.spec.task == "clustering" else [y])
        return self

    def predict_one(self, x: Any) -> Any:
        """Prediction for one example (a dict, or a row).

        Examples
        --------
        >>> import numpy as np
        >>> m = build("river.logistic_regression").fit(np.array([[0.0], [1.0]] * 20), [0, 1] * 20)
        >>> m.predict_one({"x0": 1.0}), m.predict_one([0.0])
        (1, 0)
        """
        self._require_fitted()
        return self._decode(self.estimator.predict_one(self._row(x)))

    def predict_proba_one(self, x: Any) -> dict[Any, float]:
        """Class probabilities for one example, keyed by label."""
        self._require_classification("predict_proba_one")
        self._require_fitted()
        proba = self.estimator.predict_proba_one(self._row(x))
        if self._binary_only:
            neg, pos = self._binary_classes()
            return {neg: float(proba.get(False, 0.0)), pos: float(proba.get(True, 0.0))}
        return {c: float(proba.get(c, 0.0)) for c in self._sorted_classes()}

    def predict(self, X: Any) -> np.ndarray:
        rows = self._rows(self._predict_matrix(X))
        return np.asarray([self._decode(self.estimator.predict_one(r)) for r in rows])

    def predict_proba(self, X: Any) -> np.ndarray:
        self._require_classification("predict_proba")
        rows = self._rows(self._predict_matrix(X))
        classes = self._binary_classes() if self._binary_only else self._sorted_classes()
        out = np.empty((len(rows), len(classes)), dtype=float)
        for i, row in enumerate(rows):
            proba = self.estimator.predict_proba_one(row)
            if self._binary_only:
                out[i] = (proba.get(False, 0.0), proba.get(True, 0.0))
            else:
                out[i] = [proba.get(c, 0.0) for c in classes]
        return out

    def _learned(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_samples_seen": self.n_samples_seen}
        if self.spec.task == "classification":
            out["classes"] = _jsonable(self._binary_classes() if self._binary_only else self._sorted_classes())
        out.update(_river_learned(self.estimator, self.feature_names or ()))
        return out


def _river_learned(estimator: Any, feature_names: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    final = _final_step(estimator)
    weights = getattr(final, "weights", None)
    if isinstance(weights, Mapping) and hasattr(final, "intercept"):
        names = list(feature_names) or list(weights)
        out["coef"] = [float(weights.get(n, 0.0)) for n in names]
        out["intercept"] = float(final.intercept)
        out["scaled"] = final is not estimator
    if hasattr(final, "height") and hasattr(final, "n_leaves"):
        out["depth"] = int(final.height)
        out["n_leaves"] = int(final.n_leaves)
        out["n_nodes"] = int(final.n_nodes)
    models = getattr(final, "models", None)
    if isinstance(models, Sequence) and not isinstance(models, (str, bytes)):
        out["n_estimators"] = len(models)
        if callable(getattr(final, "n_drifts_detected", None)):
            out["n_drifts_detected"] = int(final.n_drifts_detected())
        depths = [int(m.height) for m in models if hasattr(m, "height")]
        if depths:
            out["depth"] = max(depths)
    return out


class ForecastModel(Model):
    """Facade over a univariate forecaster with ``learn_one(y, x)``/``forecast``.

    ``X`` holds optional exogenous features, one row per time step: ``fit(None, y)``
    learns from the series alone. ``predict(X)`` forecasts ``len(X)`` steps
    ahead (``X`` may have zero columns); :meth:`forecast` takes a horizon.

    Examples
    --------
    >>> import numpy as np
    >>> series = 10 + np.sin(np.arange(60) / 3.0)
    >>> m = build("river.snarimax", {"p": 3, "d": 0, "q": 0}).fit(None, series)
    >>> m.forecast(4).shape
    (4,)
    >>> m.summary()["p"], m.summary()["n_samples_seen"]
    (3, 60)
    """

    def __init__(self, spec: AlgorithmSpec, params: Mapping[str, Any], estimator: Any) -> None:
        super().__init__(spec, params, estimator)
        self._prototype = copy.deepcopy(estimator)
        self.n_samples_seen = 0

    @property
    def is_incremental(self) -> bool:
        return True

    @property
    def classes_(self) -> np.ndarray:
        self._require_classification("classes_")
        raise AssertionError("unreachable")  # pragma: no cover

    def _learn(self, X: Any, y: Any, feature_names: Sequence[str] | None, *, reset: bool) -> None:
        X_arr, y_arr = check_training_data(X, y, "forecasting")
        if X_arr is None:
            n_exog = 0 if reset or self.feature_names is None else len(self.feature_names)
            if n_exog:
                raise AlgorithmError("X", f"the model was trained with {n_exog} exogenous features; pass them")
            self.feature_names = () if reset or self.feature_names is None else self.feature_names
            rows: list[dict[str, float] | None] = [None] * len(y_arr)
        else:
            self._set_feature_names(X, X_arr.shape[1], feature_names, reset=reset or self.feature_names is None)
            names = self.feature_names or ()
            rows = [dict(zip(names, r)) if names else None for r in X_arr.tolist()]
        for value, row in zip(y_arr.tolist(), rows):
            if row:
                self.estimator.learn_one(value, row)
            else:
                self.estimator.learn_one(value)
        self.n_samples_seen += len(y_arr)
        self._fitted = True

    def fit(self, X: Any, y: Any = None, *, feature_names: Sequence[str] | None = None) -> ForecastModel:
        self.estimator = copy.deepcopy(self._prototype)
        self.n_samples_seen = 0
        self.feature_names = None
        self._fitted = False
        self._learn(X, y, feature_names, reset=True)
        return self

    def learn_batch(
        self, X: Any, y: Any = None, *, classes: Sequence[Any] | None = None, feature_names: Sequence[str] | None = None
    ) -> ForecastModel:
        self._learn(X, y, feature_names, reset=False)
        return self

    def forecast(self, horizon: int, X: Any = None) -> np.ndarray:
        """Forecast the next ``horizon`` values.

        Parameters
        ----------
        horizon : int
            Number of steps ahead, >= 1.
        X : array-like of shape (horizon, n_features), optional
            Exogenous features of the future steps, when trained with them.

        Returns
        -------
        ndarray of float, shape (horizon,)
        """
        self._require_fitted()
        if isinstance(horizon, (bool, np.bool_)) or not isinstance(horizon, numbers.Integral) or horizon < 1:
            raise AlgorithmError("horizon", f"must be an int >= 1; got {horizon!r}")
        xs = None
        if self.feature_names:
            if X is None:
                raise AlgorithmError("X", f"the model was trained with {len(self.feature_names)} exogenous features; pass them")
            arr = self._predict_matrix(X)
            if arr.shape[0] != horizon:
                raise AlgorithmError("X", f"has {arr.shape[0]} rows but the horizon is {horizon}")
            xs = [dict(zip(self.feature_names, r)) for r in arr.tolist()]
        result = self.estimator.forecast(horizon=int(horizon), xs=xs) if xs else self.estimator.forecast(horizon=int(horizon))
        return np.asarray(result, dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        """Forecast ``len(X)`` steps; ``X`` holds their exogenous features (maybe none)."""
        self._require_fitted()
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2:
            raise AlgorithmError("X", f"must be 2-D (horizon, n_features); got {arr.ndim}-D")
        if not self.feature_names and arr.shape[1]:
            raise AlgorithmError("X", "the model was trained without exogenous features; pass 0 columns or call forecast()")
        return self.forecast(arr.shape[0], arr if self.feature_names else None)

    def predict_proba(self, X: Any) -> np.ndarray:
        self._require_classification("predict_proba")
        raise AssertionError("unreachable")  # pragma: no cover

    def _learned(self) -> dict[str, Any]:
        est = self.estimator
        out: dict[str, Any] = {"n_samples_seen": self.n_samples_seen}
        for key in ("p", "d", "q", "m", "sp", "sd", "sq"):
            if hasattr(est, key):
                out[key] = int(getattr(est, key))
        regressor = getattr(est, "regressor", None)
        final = _final_step(regressor)
        weights = getattr(final, "weights", None)
        if isinstance(weights, Mapping):
            out["coef"] = {str(k): float(v) for k, v in weights.items()}
            out["intercept"] = float(getattr(final, "intercept", 0.0))
        return out


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, AlgorithmSpec] = {}
_LOCK = threading.Lock()


def _add(spec: AlgorithmSpec, *, replace: bool) -> AlgorithmSpec:
    with _LOCK:
        if spec.name in _REGISTRY and not replace:
            raise AlgorithmError("name", f"{spec.name!r} is already registered; pass replace=True to replace it")
        _REGISTRY[spec.name] = spec
    return spec


def register_algorithm(
    name: str,
    factory: Callable[..., Any],
    *,
    task: str,
    params: Mapping[str, ParamSpec] | None = None,
    family: str = "custom",
    incremental: bool | None = None,
    description: str = "",
    replace: bool = False,
) -> AlgorithmSpec:
    """Add an algorithm to the registry.

    Parameters
    ----------
    name : str
        Registry key; must be new unless ``replace=True``.
    factory : callable
        ``factory(**params)`` returns an object with ``fit``/``predict``
        (batch; ``partial_fit`` makes it incremental), or
        ``learn_one``/``predict_one`` (incremental, River API), or, for
        forecasting, ``learn_one(y, x)``/``forecast(horizon, xs)``.
    task : {"classification", "regression", "clustering", "forecasting"}
    params : Mapping[str, ParamSpec], optional
        Parameters the factory accepts; none by default.
    family : {"custom", "sklearn", "river"}, default "custom"
    incremental : bool, optional
        Shown by :func:`list_algorithms`; the built model decides.
    description : str
    replace : bool, default False

    Returns
    -------
    AlgorithmSpec

    Raises
    ------
    AlgorithmError
        A taken name, bad task or family, non-callable factory or bad params.

    Examples
    --------
    >>> import numpy as np
    >>> class Majority:
    ...     def fit(self, X, y):
    ...         values, counts = np.unique(y, return_counts=True)
    ...         self.label_ = values[np.argmax(counts)]
    ...         return self
    ...     def predict(self, X):
    ...         return np.full(len(X), self.label_)
    >>> spec = register_algorithm("doc.majority", Majority, task="classification")
    >>> build("doc.majority").fit(np.zeros((3, 1)), [1, 1, 0]).predict(np.zeros((2, 1))).tolist()
    [1, 1]
    >>> unregister_algorithm("doc.majority")
    """
    spec = AlgorithmSpec(
        name=name,
        family=family,
        task=task,
        params=dict(params or {}),
        factory=factory,
        incremental=incremental,
        description=description,
    )
    return _add(spec, replace=replace)


def unregister_algorithm(name: str) -> None:
    """Remove an algorithm from the registry.

    Raises
    ------
    AlgorithmError
        ``field="name"`` when ``name`` is not registered.
    """
    with _LOCK:
        if name not in _REGISTRY:
            raise AlgorithmError("name", f"unknown algorithm {name!r}")
        del _REGISTRY[name]


def get_algorithm(name: str) -> AlgorithmSpec:
    """The spec registered under ``name``.

    Raises
    ------
    AlgorithmError
        ``field="name"`` for an unknown name.

    Examples
    --------
    >>> get_algorithm("river.arf_classifier").incremental
    True
    >>> get_algorithm("sklearn.svm")
    Traceback (most recent call last):
    ...
    ml.algorithms.AlgorithmError: name: unknown algorithm 'sklearn.svm'; known: ...
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY))
        raise AlgorithmError("name", f"unknown algorithm {name!r}; known: {known}") from None


def list_algorithms(task: str | None = None, family: str | None = None) -> list[AlgorithmSpec]:
    """Registered specs, sorted by name, optionally filtered.

    Examples
    --------
    >>> [s.name for s in list_algorithms(task="clustering")]
    ['sklearn.kmeans']
    """
    with _LOCK:
        specs = list(_REGISTRY.values())
    return sorted(
        (s for s in specs if (task is None or s.task == task) and (family is None or s.family == family)),
        key=lambda s: s.name,
    )


def build(name: str, params: Mapping[str, Any] | None = None) -> Model:
    """Validate ``params`` and build an unfitted :class:`Model`.

    Every check happens here, before any data is seen.

    Parameters
    ----------
    name : str
        A registered algorithm name.
    params : Mapping[str, object], optional
        Parameters; missing ones take their defaults.

    Returns
    -------
    Model
        A :class:`BatchModel`, :class:`IncrementalModel` or :class:`ForecastModel`.

    Raises
    ------
    AlgorithmError
        ``field="name"`` for an unknown algorithm; ``field="params.<p>"`` for an
        unknown, missing, mistyped, out-of-range or not-allowed parameter;
        ``field="factory"`` when the factory's object has no usable API.

    Examples
    --------
    >>> build("sklearn.logistic_regression", {"C": 0.5}).params["C"]
    0.5
    >>> build("sklearn.random_forest", {"n_estimators": 0})
    Traceback (most recent call last):
    ...
    ml.algorithms.AlgorithmError: params.n_estimators: must be >= 1; got 0
    >>> build("sklearn.decision_tree", {"max_depth": 2.0})
    Traceback (most recent call last):
    ...
    ml.algorithms.AlgorithmError: params.max_depth: must be an int, got float 2.0
    """
    spec = get_algorithm(name)
    resolved = spec.resolve_params(params)
    estimator = spec.factory(**resolved)

    def has(*methods: str) -> bool:
        return all(callable(getattr(estimator, m, None)) for m in methods)

    if spec.task == "forecasting" and has("learn_one", "forecast"):
        return ForecastModel(spec, resolved, estimator)
    if has("learn_one", "predict_one"):
        return IncrementalModel(spec, resolved, estimator)
    if has("fit", "predict"):
        return BatchModel(spec, resolved, estimator)
    raise AlgorithmError(
        "factory",
        f"{name} built a {_type_name(estimator)}, which has neither fit/predict nor learn_one/predict_one",
    )


# --------------------------------------------------------------------------- built-ins
# Module-level factories (not lambdas) so that built models pickle.

_RANDOM_STATE = ParamSpec(int, 0, min=0, nullable=True, doc="seed; None for a fresh one each run")
_MAX_DEPTH = ParamSpec(int, None, min=1, doc="deepest tree level; None for unlimited")


def _sk_logistic_regression(**p: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**p)


def _sk_linear_regression(**p: Any) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression(**p)


def _sk_sgd_classifier(**p: Any) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(**p)


def _sk_decision_tree(**p: Any) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(**p)


def _sk_random_forest(**p: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_jobs=1, **p)


def _sk_gradient_boosting(**p: Any) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(**p)


def _sk_kmeans(**p: Any) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(**p)


def _river_linear(cls_name: str, p: Mapping[str, Any]) -> Any:
    from river import linear_model, optim, preprocessing

    cls = getattr(linear_model, cls_name)
    learner = cls(optimizer=optim.SGD(p["lr"]), l2=p["l2"], l1=p["l1"], intercept_lr=p["intercept_lr"])
    return preprocessing.StandardScaler() | learner if p["scale"] else learner


def _river_logistic_regression(**p: Any) -> Any:
    return _river_linear("LogisticRegression", p)


def _river_linear_regression(**p: Any) -> Any:
    return _river_linear("LinearRegression", p)


def _river_hoeffding_tree(**p: Any) -> Any:
    from river import tree

    return tree.HoeffdingTreeClassifier(**p)


def _river_arf(**p: Any) -> Any:
    from river import forest

    return forest.ARFClassifier(**p)


def _river_snarimax(**p: Any) -> Any:
    from river import linear_model, optim, preprocessing, time_series

    lr, intercept_lr = p.pop("lr"), p.pop("intercept_lr")
    regressor = preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=optim.SGD(lr), intercept_lr=intercept_lr
    )
    return time_series.SNARIMAX(regressor=regressor, **p)


_RIVER_LINEAR_PARAMS = {
    "lr": ParamSpec(float, 0.01, min=0.0, min_exclusive=True, doc="SGD learning rate of the weights"),
    "l2": ParamSpec(float, 0.0, min=0.0, doc="L2 penalty"),
    "l1": ParamSpec(float, 0.0, min=0.0, doc="L1 penalty"),
    "intercept_lr": ParamSpec(float, 0.01, min=0.0, doc="learning rate of the intercept"),
    "scale": ParamSpec(bool, True, doc="standard-scale features online before the linear model"),
}

_BUILTINS: tuple[AlgorithmSpec, ...] = (
    AlgorithmSpec(
        "sklearn.logistic_regression", "sklearn", "classification",
        {
            "C": ParamSpec(float, 1.0, min=0.0, min_exclusive=True, doc="inverse regularisation strength"),
            "max_iter": ParamSpec(int, 100, min=1),
            "tol": ParamSpec(float, 1e-4, min=0.0, min_exclusive=True),
            "fit_intercept": ParamSpec(bool, True),
            "class_weight": ParamSpec(str, None, choices=("balanced",)),
            "solver": ParamSpec(str, "lbfgs", choices=("lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga")),
            "random_state": _RANDOM_STATE,
        },
        _sk_logistic_regression, incremental=False,
        description="scikit-learn LogisticRegression (L2)",
    ),
    AlgorithmSpec(
        "sklearn.linear_regression", "sklearn", "regression",
        {"fit_intercept": ParamSpec(bool, True), "positive": ParamSpec(bool, False, doc="force coefficients >= 0")},
        _sk_linear_regression, incremental=False,
        description="scikit-learn LinearRegression (ordinary least squares)",
    ),
    AlgorithmSpec(
        "sklearn.sgd_classifier", "sklearn", "classification",
        {
            "loss": ParamSpec(str, "log_loss", choices=("log_loss", "modified_huber", "hinge", "squared_hinge", "perceptron"),
                              doc="log_loss and modified_huber give probabilities"),
            "penalty": ParamSpec(str, "l2", choices=("l2", "l1", "elasticnet"), nullable=True),
            "alpha": ParamSpec(float, 1e-4, min=0.0, min_exclusive=True),
            "max_iter": ParamSpec(int, 1000, min=1),
            "tol": ParamSpec(float, 1e-3, min=0.0, nullable=True),
            "learning_rate": ParamSpec(str, "optimal", choices=("optimal", "constant", "invscaling", "adaptive")),
            "eta0": ParamSpec(float, 0.01, min=0.0, min_exclusive=True),
            "fit_intercept": ParamSpec(bool, True),
            "random_state": _RANDOM_STATE,
        },
        _sk_sgd_classifier, incremental=True,
        description="scikit-learn SGDClassifier (incremental through partial_fit)",
    ),
    AlgorithmSpec(
        "sklearn.decision_tree", "sklearn", "classification",
        {
            "criterion": ParamSpec(str, "gini", choices=("gini", "entropy", "log_loss")),
            "max_depth": _MAX_DEPTH,
            "min_samples_split": ParamSpec(int, 2, min=2),
            "min_samples_leaf": ParamSpec(int, 1, min=1),
            "random_state": _RANDOM_STATE,
        },
        _sk_decision_tree, incremental=False,
        description="scikit-learn DecisionTreeClassifier",
    ),
    AlgorithmSpec(
        "sklearn.random_forest", "sklearn", "classification",
        {
            "n_estimators": ParamSpec(int, 100, min=1),
            "criterion": ParamSpec(str, "gini", choices=("gini", "entropy", "log_loss")),
            "max_depth": _MAX_DEPTH,
            "min_samples_leaf": ParamSpec(int, 1, min=1),
            "max_features": ParamSpec(str, "sqrt", choices=("sqrt", "log2"), nullable=True, doc="None for all features"),
            "bootstrap": ParamSpec(bool, True),
            "random_state": _RANDOM_STATE,
        },
        _sk_random_forest, incremental=False,
        description="scikit-learn RandomForestClassifier (n_jobs=1: Ray spreads the candidates)",
    ),
    AlgorithmSpec(
        "sklearn.gradient_boosting", "sklearn", "classification",
        {
            "n_estimators": ParamSpec(int, 100, min=1),
            "learning_rate": ParamSpec(float, 0.1, min=0.0, min_exclusive=True),
            "max_depth": ParamSpec(int, 3, min=1, nullable=True),
            "subsample": ParamSpec(float, 1.0, min=0.0, max=1.0, min_exclusive=True),
            "min_samples_leaf": ParamSpec(int, 1, min=1),
            "random_state": _RANDOM_STATE,
        },
        _sk_gradient_boosting, incremental=False,
        description="scikit-learn GradientBoostingClassifier",
    ),
    AlgorithmSpec(
        "sklearn.kmeans", "sklearn", "clustering",
        {
            "n_clusters": ParamSpec(int, 8, min=1),
            "init": ParamSpec(str, "k-means++", choices=("k-means++", "random")),
            "n_init": ParamSpec(int, 1, min=1, doc="1 matches scikit-learn's 'auto' for k-means++"),
            "max_iter": ParamSpec(int, 300, min=1),
            "tol": ParamSpec(float, 1e-4, min=0.0),
            "random_state": _RANDOM_STATE,
        },
        _sk_kmeans, incremental=False,
        description="scikit-learn KMeans",
    ),
    AlgorithmSpec(
        "river.logistic_regression", "river", "classification", _RIVER_LINEAR_PARAMS,
        _river_logistic_regression, incremental=True,
        description="River LogisticRegression (binary), SGD, optional online StandardScaler",
    ),
    AlgorithmSpec(
        "river.linear_regression", "river", "regression", _RIVER_LINEAR_PARAMS,
        _river_linear_regression, incremental=True,
        description="River LinearRegression, SGD, optional online StandardScaler",
    ),
    AlgorithmSpec(
        "river.hoeffding_tree_classifier", "river", "classification",
        {
            "grace_period": ParamSpec(int, 200, min=1, doc="examples a leaf sees between split attempts"),
            "max_depth": _MAX_DEPTH,
            "split_criterion": ParamSpec(str, "info_gain", choices=("info_gain", "gini", "hellinger")),
            "delta": ParamSpec(float, 1e-7, min=0.0, max=1.0, min_exclusive=True, max_exclusive=True),
            "tau": ParamSpec(float, 0.05, min=0.0, min_exclusive=True),
            "leaf_prediction": ParamSpec(str, "nba", choices=("mc", "nb", "nba")),
        },
        _river_hoeffding_tree, incremental=True,
        description="River HoeffdingTreeClassifier (VFDT)",
    ),
    AlgorithmSpec(
        "river.arf_classifier", "river", "classification",
        {
            "n_models": ParamSpec(int, 10, min=1, doc="trees in the forest"),
            "max_features": ParamSpec(str, "sqrt", choices=("sqrt", "log2")),
            "lambda_value": ParamSpec(int, 6, min=1, doc="Poisson rate of online bagging"),
            "grace_period": ParamSpec(int, 50, min=1),
            "max_depth": _MAX_DEPTH,
            "split_criterion": ParamSpec(str, "info_gain", choices=("info_gain", "gini", "hellinger")),
            "seed": ParamSpec(int, 0, min=0, nullable=True),
        },
        _river_arf, incremental=True,
        description="River adaptive random forest classifier (ARFClassifier)",
    ),
    AlgorithmSpec(
        "river.snarimax", "river", "forecasting",
        {
            "p": ParamSpec(int, REQUIRED, min=0, doc="autoregressive order"),
            "d": ParamSpec(int, REQUIRED, min=0, doc="differencing order"),
            "q": ParamSpec(int, REQUIRED, min=0, doc="moving-average order"),
            "m": ParamSpec(int, 1, min=1, doc="season length"),
            "sp": ParamSpec(int, 0, min=0, doc="seasonal autoregressive order"),
            "sd": ParamSpec(int, 0, min=0, doc="seasonal differencing order"),
            "sq": ParamSpec(int, 0, min=0, doc="seasonal moving-average order"),
            "lr": ParamSpec(float, 0.01, min=0.0, min_exclusive=True, doc="SGD learning rate of the regressor"),
            "intercept_lr": ParamSpec(float, 0.01, min=0.0, doc="learning rate of the regressor's intercept"),
        },
        _river_snarimax, incremental=True,
        description="River SNARIMAX (seasonal ARIMA with exogenous inputs), online",
    ),
)

for _spec in _BUILTINS:
    _add(_spec, replace=False)
del _spec
