"""The configuration of an online learner (``learner.toml``): which stream it learns from,
its River model (and an optional challenger), where its labels come from, and how a
challenger is promoted. Everything is checked here; an error names the field.

Examples
--------
>>> text = '''
... name = "phish"
... stream = "phishing"
... label = "is_phishing"
... [model]
... algorithm = "river.logistic_regression"
... [challenger]
... algorithm = "river.hoeffding_tree_classifier"
... params = { grace_period = 50 }
... [promotion]
... window = 200
... margin = 0.02
... '''
>>> config = parse_learner_config(text)
>>> config.task, config.metric, config.challenger.algorithm
('classification', 'accuracy', 'river.hoeffding_tree_classifier')
>>> parse_learner_config('name = "x"\\nstream = "s"\\n[model]\\nalgorithm = "sklearn.random_forest"')
Traceback (most recent call last):
...
ml.learner_config.LearnerConfigError: model.algorithm: sklearn.random_forest does not learn one event at a time (use a river.* algorithm)
"""

from __future__ import annotations

import math
import re

import msgspec

from ml.errors import FieldError, decode_toml
from ml.transforms import NAME_PATTERN

__all__ = ["LearnerConfig", "LearnerConfigError", "ModelChoice", "Promotion", "parse_learner_config"]

MAX_CONFIG_BYTES = 16 * 1024
_NAME = NAME_PATTERN
_FIELD = re.compile(r"^[^\x00-\x1f\x7f]{1,128}\Z")
#: The progressive metric a promotion compares, and whether higher is better.
METRICS = {"classification": {"accuracy": True}, "regression": {"mae": False}}
DRIFT_DETECTORS = ("adwin", "page_hinkley", "none")

ParamValue = bool | int | float | str


class LearnerConfigError(FieldError):
    """A learner configuration that cannot run; ``field`` names the culprit."""



class ModelChoice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    algorithm: str
    params: dict[str, ParamValue] = {}


class Promotion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A challenger replaces the champion when its progressive metric over the last
    ``window`` judged events beats the champion's by more than ``margin``."""

    window: int = 500
    margin: float = 0.01


class LearnerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    stream: str
    model: ModelChoice
    task: str = ""                       # from the algorithm when left out
    label: str | None = None             # the event field carrying the label, if events carry it
    features: list[str] = []             # the event fields learned from (default: every numeric field)
    #: Numeric fields whose running count and mean over the entity's earlier events are
    #: added as features ``<field>__entity_n`` and ``<field>__entity_mean``.
    entity_aggregates: list[str] = []
    challenger: ModelChoice | None = None
    promotion: Promotion = Promotion()
    drift: str = "adwin"
    label_wait_s: float = 3600.0
    max_pending: int = 100_000

    @property
    def metric(self) -> str:
        return next(iter(METRICS[self.task]))

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.task][self.metric]


def parse_learner_config(text: str | bytes) -> LearnerConfig:
    """A checked :class:`LearnerConfig` from TOML text; :class:`LearnerConfigError` names the field."""
    config = decode_toml(text, LearnerConfig, LearnerConfigError, MAX_CONFIG_BYTES, _where)
    return check_learner_config(config)


def _where(message: str) -> tuple[str, str]:
    """(field, reason) of a msgspec validation message.

    >>> _where("Object missing required field `algorithm` - at `$.model`")
    ('model.algorithm', 'Object missing required field `algorithm`')
    """
    reason, _, at = message.partition(" - at `$")
    path = at.rstrip("`").lstrip(".")
    if "missing required field `" in reason:
        missing = reason.split("`")[1]
        path = f"{path}.{missing}" if path else missing
    return path or "config", reason


def check_learner_config(config: LearnerConfig) -> LearnerConfig:
    """``config`` with its task filled in, or :class:`LearnerConfigError`."""
    for field in ("name", "stream"):
        if not _NAME.match(getattr(config, field)):
            raise LearnerConfigError(field, "letters, digits, '_', '.', '-'; starts with a letter; at most 63")
    if config.task and config.task not in METRICS:
        raise LearnerConfigError("task", f"classification or regression; got {config.task!r}")
    task = _check_model(config.model, "model", "")
    if config.task and config.task != task:
        raise LearnerConfigError("task", f"{config.model.algorithm} is a {task} algorithm, not {config.task}")
    if config.challenger is not None:
        _check_model(config.challenger, "challenger", task)
    if config.label is not None and not _FIELD.match(config.label):
        raise LearnerConfigError("label", "1-128 printable characters")
    _check_fields(config.features, "features", config.label, 1024)
    _check_fields(config.entity_aggregates, "entity_aggregates", config.label, 64)
    if config.drift not in DRIFT_DETECTORS:
        raise LearnerConfigError("drift", f"one of {', '.join(DRIFT_DETECTORS)}; got {config.drift!r}")
    if not (math.isfinite(config.label_wait_s) and 0 < config.label_wait_s <= 30 * 86400):
        raise LearnerConfigError("label_wait_s", f"seconds, more than 0 and at most 30 days; got {config.label_wait_s!r}")
    if not 1 <= config.max_pending <= 1_000_000:
        raise LearnerConfigError("max_pending", f"from 1 to 1,000,000; got {config.max_pending}")
    if not 10 <= config.promotion.window <= 1_000_000:
        raise LearnerConfigError("promotion.window", f"from 10 to 1,000,000 events; got {config.promotion.window}")
    if not (math.isfinite(config.promotion.margin) and config.promotion.margin >= 0):
        raise LearnerConfigError("promotion.margin", f"a finite number >= 0; got {config.promotion.margin!r}")
    return msgspec.structs.replace(config, task=task)


def _check_fields(names: list[str], where: str, label: str | None, limit: int) -> None:
    if len(names) > limit:
        raise LearnerConfigError(where, f"at most {limit:,}; got {len(names)}")
    for i, name in enumerate(names):
        if not _FIELD.match(name):
            raise LearnerConfigError(f"{where}[{i}]", "1-128 printable characters")
        if name == label:
            raise LearnerConfigError(f"{where}[{i}]", f"{name!r} is the label")
    if len(set(names)) != len(names):
        raise LearnerConfigError(where, "a field is named twice")


def _check_model(choice: ModelChoice, where: str, task: str) -> str:
    from ml.algorithms import AlgorithmError, build, get_algorithm

    try:
        spec = get_algorithm(choice.algorithm)
    except AlgorithmError as exc:
        raise LearnerConfigError(f"{where}.algorithm", exc.reason) from None
    try:
        built = build(choice.algorithm, choice.params)
    except AlgorithmError as exc:
        raise LearnerConfigError(f"{where}.{exc.field}", exc.reason) from None
    if not built.is_incremental or spec.task not in METRICS:
        raise LearnerConfigError(f"{where}.algorithm", f"{choice.algorithm} does not learn one event at a time"
                                                       " (use a river.* algorithm)")
    if task and spec.task != task:
        raise LearnerConfigError(f"{where}.algorithm", f"{choice.algorithm} is a {spec.task} algorithm; the"
                                                       f" learner's task is {task}")
    return spec.task


def build_estimator(choice: ModelChoice):
    """The River estimator of ``choice`` (checked already), fresh."""
    from ml.algorithms import build

    return build(choice.algorithm, choice.params).estimator
