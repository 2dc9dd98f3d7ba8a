"""The training configuration (``train.toml``) and the plan it expands to.

Everything is checked here, before any worker starts: unknown algorithms and
parameters, values of the wrong type or range, searches that expand to nothing,
metrics that do not fit the task, and parallelism an algorithm cannot do. The
error names the field (``candidates[1].grid.max_depth``) and the reason.

Examples
--------
>>> text = '''
... model = "cancer"
... dataset = "cancer"
... metric = "roc_auc"
... [split]
... strategy = "stratified"
... [[candidates]]
... name = "forest"
... algorithm = "sklearn.random_forest"
... params = { n_estimators = 20 }
... grid = { max_depth = [3, 5] }
... '''
>>> plan = plan_training(parse_config(text))
>>> plan.task, [c.name for c in plan.candidates], plan.candidates[0].trials
('classification', ['forest'], ({'n_estimators': 20, 'max_depth': 3}, {'n_estimators': 20, 'max_depth': 5}))
>>> parse_config('model = "m"\\ndataset = "d"\\ncandidates = []')
Traceback (most recent call last):
...
ml.training_config.TrainingConfigError: candidates: name at least one candidate
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from ml.errors import FieldError, decode_toml
from ml.transforms import NAME_PATTERN

__all__ = ["CandidateConfig", "CandidatePlan", "SplitConfig", "TrainingConfig", "TrainingConfigError",
           "TrainingPlan", "parse_config", "plan_training"]

MAX_CONFIG_BYTES = 64 * 1024
MAX_CANDIDATES = 32
MAX_TRIALS = 256
_NAME = NAME_PATTERN
#: Algorithms whose coefficients can be split into blocks, each updated by its own actor.
BLOCK_ALGORITHMS = ("sklearn.logistic_regression", "sklearn.linear_regression")
DEFAULT_METRIC = {"classification": "roc_auc", "regression": "rmse", "clustering": "silhouette",
                  "forecasting": "rmse"}

ParamValue = bool | int | float | str
Distribution = list[ParamValue] | dict[str, float | int | bool]


class TrainingConfigError(FieldError):
    """A training configuration that cannot run; ``field`` names the culprit."""



class SplitConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    strategy: str = "stratified"
    ratio: float = 0.8
    seed: int = 0


class CandidateConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One candidate: an algorithm, fixed parameters, and an optional search over others."""

    name: str
    algorithm: str
    params: dict[str, ParamValue] = {}
    grid: dict[str, list[ParamValue]] = {}              # grid search: every combination
    distributions: dict[str, Distribution] = {}        # random search: n_iter draws
    n_iter: int = 8
    partitions: int = 1                                 # data-parallel copies (incremental learners)
    blocks: int = 1                                     # coefficient blocks (linear models)


class TrainingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What ``python run.py train --config train.toml`` reads."""

    model: str
    feature_set: str | None = None       # a feature_set_id, or ...
    dataset: str | None = None           # ... the newest feature set of this dataset
    metric: str | None = None            # default by task: roc_auc / rmse / silhouette
    margin: float = 0.0                  # how much the best must beat production (or the baseline) by
    validation_ratio: float = 0.8        # share of the training side a search fits on; the rest scores it
    seed: int = 0                        # of the random searches and the search's inner split
    checkpoint_every: int = 2000         # rows between checkpoints of a data-parallel partition
    max_attempts: int = 3                # of a candidate or partition that fails, with backoff between
    split: SplitConfig = SplitConfig()
    candidates: list[CandidateConfig] = []


@dataclass(frozen=True)
class CandidatePlan:
    name: str
    algorithm: str
    trials: tuple[dict[str, Any], ...]   # one parameter set without a search
    partitions: int
    blocks: int

    @property
    def searched(self) -> bool:
        return len(self.trials) > 1


@dataclass(frozen=True)
class TrainingPlan:
    config: TrainingConfig
    task: str
    metric: str
    candidates: tuple[CandidatePlan, ...]


def parse_config(text: str | bytes) -> TrainingConfig:
    """A :class:`TrainingConfig` from TOML text; :class:`TrainingConfigError` names the field."""
    config = decode_toml(text, TrainingConfig, TrainingConfigError, MAX_CONFIG_BYTES, _where)
    _check_shape(config)
    return config


def _where(message: str) -> tuple[str, str]:
    """(field, reason) of a msgspec validation message: the field is its path after ``$.``."""
    field = message.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in message else "config"
    return field, message.split(" - at ")[0]


def _check_shape(config: TrainingConfig) -> None:
    if not _NAME.match(config.model):
        raise TrainingConfigError("model", "letters, digits, '_', '.', '-'; starts with a letter; at most 63")
    if (config.feature_set is None) == (config.dataset is None):
        raise TrainingConfigError("feature_set", "name exactly one of feature_set and dataset")
    if config.feature_set is not None and not re.fullmatch(r"[0-9a-f]{8,64}", config.feature_set):
        raise TrainingConfigError("feature_set", "a feature set id is 8-64 lowercase hex digits")
    if config.dataset is not None and not _NAME.match(config.dataset):
        raise TrainingConfigError("dataset", "letters, digits, '_', '.', '-'; starts with a letter; at most 63")
    if not config.candidates:
        raise TrainingConfigError("candidates", "name at least one candidate")
    if len(config.candidates) > MAX_CANDIDATES:
        raise TrainingConfigError("candidates", f"at most {MAX_CANDIDATES}; got {len(config.candidates)}")
    if not (math.isfinite(config.margin) and config.margin >= 0):
        raise TrainingConfigError("margin", f"must be a finite number >= 0; got {config.margin!r}")
    if not 0.0 < config.validation_ratio < 1.0:
        raise TrainingConfigError("validation_ratio", f"must be between 0 and 1; got {config.validation_ratio!r}")
    if config.checkpoint_every < 1:
        raise TrainingConfigError("checkpoint_every", f"must be >= 1; got {config.checkpoint_every}")
    if not 1 <= config.max_attempts <= 10:
        raise TrainingConfigError("max_attempts", f"must be between 1 and 10; got {config.max_attempts}")
    seen: set[str] = set()
    for i, candidate in enumerate(config.candidates):
        where = f"candidates[{i}]"
        if not _NAME.match(candidate.name):
            raise TrainingConfigError(f"{where}.name", "letters, digits, '_', '.', '-'; starts with a letter")
        if candidate.name in seen:
            raise TrainingConfigError(f"{where}.name", f"{candidate.name!r} is named twice")
        seen.add(candidate.name)


def plan_training(config: TrainingConfig) -> TrainingPlan:
    """Check every candidate against the algorithm registry and expand its search."""
    from ml.algorithms import AlgorithmError, get_algorithm
    from ml.evaluators import MetricError, get_metric
    from ml.segregation import available_strategies

    if config.split.strategy not in available_strategies():
        raise TrainingConfigError("split.strategy", f"unknown strategy {config.split.strategy!r}; known: "
                                  f"{', '.join(available_strategies())}")
    if not 0.0 < config.split.ratio < 1.0:
        raise TrainingConfigError("split.ratio", f"must be between 0 and 1; got {config.split.ratio!r}")
    plans, tasks = [], set()
    for i, candidate in enumerate(config.candidates):
        where = f"candidates[{i}]"
        try:
            spec = get_algorithm(candidate.algorithm)
        except AlgorithmError as exc:
            raise TrainingConfigError(f"{where}.algorithm", exc.reason) from None
        tasks.add(spec.task)
        if len(tasks) > 1:
            raise TrainingConfigError(f"{where}.algorithm", f"is a {spec.task} algorithm; the others are "
                                      f"{next(iter(tasks - {spec.task}))}: one task per training run")
        trials = _trials(candidate, config.seed + i, where)
        for trial in trials:
            try:
                spec.resolve_params(trial)
            except AlgorithmError as exc:
                source = "grid" if exc.field.split(".")[-1] in candidate.grid else (
                    "distributions" if exc.field.split(".")[-1] in candidate.distributions else "params")
                raise TrainingConfigError(f"{where}.{source}.{exc.field.split('.', 1)[-1]}", exc.reason) from None
        if not 1 <= candidate.partitions <= 64:
            raise TrainingConfigError(f"{where}.partitions", f"must be between 1 and 64; got {candidate.partitions}")
        if candidate.partitions > 1 and not spec.incremental:
            raise TrainingConfigError(f"{where}.partitions", f"{spec.name} is not incremental; data-parallel "
                                      "partitions need a learner that learns batch by batch")
        if not 1 <= candidate.blocks <= 64:
            raise TrainingConfigError(f"{where}.blocks", f"must be between 1 and 64; got {candidate.blocks}")
        if candidate.blocks > 1 and spec.name not in BLOCK_ALGORITHMS:
            raise TrainingConfigError(f"{where}.blocks", f"coefficient blocks work for {', '.join(BLOCK_ALGORITHMS)}")
        if candidate.blocks > 1 and candidate.partitions > 1:
            raise TrainingConfigError(f"{where}.blocks", "choose blocks or partitions, not both")
        plans.append(CandidatePlan(candidate.name, spec.name, tuple(trials), candidate.partitions, candidate.blocks))
    task = tasks.pop()
    metric = config.metric or DEFAULT_METRIC[task]
    try:
        found = get_metric(metric)
    except MetricError as exc:
        raise TrainingConfigError("metric", exc.reason) from None
    if task not in found.tasks or found.greater_is_better is None:
        raise TrainingConfigError("metric", f"{metric} does not rank {task} models")
    return TrainingPlan(config, task, metric, tuple(plans))


def _trials(candidate: CandidateConfig, seed: int, where: str) -> list[dict[str, Any]]:
    if candidate.grid and candidate.distributions:
        raise TrainingConfigError(f"{where}.grid", "choose grid or distributions (random search), not both")
    for source, names in (("grid", candidate.grid), ("distributions", candidate.distributions)):
        for name in names:
            if name in candidate.params:
                raise TrainingConfigError(f"{where}.{source}.{name}", "is also fixed in params")
    if candidate.grid:
        for name, values in candidate.grid.items():
            if not values:
                raise TrainingConfigError(f"{where}.grid.{name}", "give at least one value")
        size = math.prod(len(v) for v in candidate.grid.values())
        if size > MAX_TRIALS:
            raise TrainingConfigError(f"{where}.grid", f"expands to {size} trials; at most {MAX_TRIALS}")
        names = list(candidate.grid)
        return [{**candidate.params, **dict(zip(names, combo))}
                for combo in itertools.product(*(candidate.grid[n] for n in names))]
    if candidate.distributions:
        if not 1 <= candidate.n_iter <= MAX_TRIALS:
            raise TrainingConfigError(f"{where}.n_iter", f"must be between 1 and {MAX_TRIALS}; got {candidate.n_iter}")
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(candidate.n_iter):
            draws.append({**candidate.params, **{name: _draw(rng, dist, f"{where}.distributions.{name}")
                                                 for name, dist in candidate.distributions.items()}})
        return draws
    return [dict(candidate.params)]


def _draw(rng: np.random.Generator, dist: Distribution, field: str) -> ParamValue:
    """One value: a uniform choice from a list, or from ``{low, high[, log]}`` (ints when both are ints)."""
    if isinstance(dist, list):
        if not dist:
            raise TrainingConfigError(field, "give at least one value")
        return dist[int(rng.integers(len(dist)))]
    unknown = set(dist) - {"low", "high", "log"}
    if unknown or "low" not in dist or "high" not in dist:
        raise TrainingConfigError(field, "a range is { low = ..., high = ... [, log = true] }")
    low, high, log = dist["low"], dist["high"], bool(dist.get("log", False))
    if isinstance(low, bool) or isinstance(high, bool) or not low <= high:
        raise TrainingConfigError(field, f"needs numbers with low <= high; got {low!r}, {high!r}")
    if log and low <= 0:
        raise TrainingConfigError(field, "a log range needs low > 0")
    if isinstance(low, int) and isinstance(high, int) and not log:
        return int(rng.integers(low, high + 1))
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if log else rng.uniform(low, high)
    return float(value)
