"""Learning from a stream, one event at a time: predict first, learn once the label is
known (in the event itself, or later by event id), with progressive validation and
drift detection on the error stream. Pure and picklable: an actor checkpoints the
whole learner and replays from the checkpoint's offset to the same state.

The metrics are updated exactly as ``river.evaluate.progressive_val_score`` does: a
label metric from ``predict_one``, a probability metric from ``predict_proba_one``,
both made before the model learns the event.

Examples
--------
>>> from river import datasets, linear_model, preprocessing
>>> learner = StreamLearner(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
...                         task="classification")
>>> for i, (x, y) in enumerate(datasets.Phishing()):
...     _ = learner.predict(str(i), x)
...     _ = learner.observe(str(i), y)
>>> print(learner.metrics["accuracy"], learner.metrics["roc_auc"])
Accuracy: 89.28% ROCAUC: 95.07%
"""

from __future__ import annotations

import math
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from ml.errors import FieldError

_FLOAT_MAX = sys.float_info.max


def import_river() -> None:
    """Import the River modules the registry's online algorithms, drift detectors and
    metrics use (about a second here, far longer on a starved machine): a learner
    partition does it once while starting, in a thread, instead of in its event loop when
    the first learner arrives.

    >>> import_river()
    """
    import river.compose  # noqa: F401
    import river.drift  # noqa: F401
    import river.forest  # noqa: F401
    import river.linear_model  # noqa: F401
    import river.metrics  # noqa: F401
    import river.optim  # noqa: F401
    import river.preprocessing  # noqa: F401
    import river.time_series  # noqa: F401
    import river.tree  # noqa: F401


def _predicts_from_proba(model) -> bool:
    """Whether ``model.predict_one`` is River's default: the most probable class of
    ``predict_proba_one`` (a pipeline's transforms being the same for both)."""
    from river import base, compose

    final = model.steps[next(reversed(model.steps))] if isinstance(model, compose.Pipeline) else model
    return type(final).predict_one is base.Classifier.predict_one and (
        not isinstance(model, compose.Pipeline) or type(model).predict_one is compose.Pipeline.predict_one)


@dataclass
class Outcome:
    """What observing a label did: the prediction it judged, whether it was right, and
    whether the error stream drifted."""

    event_id: str
    y_pred: Any
    correct: bool | None
    error: float
    drift: bool


class StreamLearner:
    """A River model learning from a stream with progressive validation.

    Parameters
    ----------
    model : river estimator
        Anything with ``learn_one`` and ``predict_one`` (and ``predict_proba_one`` for
        probability metrics).
    task : {"classification", "regression"}
    max_pending : int
        Predictions kept waiting for their label; beyond it the oldest are dropped and
        counted as ``n_expired`` (as are those older than ``label_wait_s``).
    label_wait_s : float
        How long a prediction waits for its label.
    drift : {"adwin", "page_hinkley", None}
        Detector fed with the error of every judged prediction.
    """

    def __init__(self, model, task: str, max_pending: int = 100_000, label_wait_s: float = 3600.0,
                 drift: str | None = "adwin") -> None:
        from river import drift as river_drift
        from river import metrics

        if task not in ("classification", "regression"):
            raise ValueError(f"task: 'classification' or 'regression'; got {task!r}")
        self.model, self.task = model, task
        self.max_pending, self.label_wait_s = max_pending, label_wait_s
        self._label_from_proba = task == "classification" and _predicts_from_proba(model)
        if task == "classification":
            self.metrics = {"accuracy": metrics.Accuracy(), "roc_auc": metrics.ROCAUC()}
        else:
            self.metrics = {"mae": metrics.MAE(), "rmse": metrics.RMSE()}
        detectors = {"adwin": river_drift.ADWIN, "page_hinkley": river_drift.PageHinkley}
        if drift is not None and drift not in detectors:
            raise ValueError(f"drift: one of {', '.join(detectors)} or None; got {drift!r}")
        self.detector = detectors[drift]() if drift else None
        self.pending: OrderedDict[str, tuple[dict, Any, Any, float]] = OrderedDict()
        self.n_predicted = self.n_learned = self.n_expired = self.n_unknown_labels = self.n_drifts = 0

    def predict(self, event_id: str, x: dict, now: float | None = None) -> Any:
        """The prediction for ``x`` (kept until its label arrives); a duplicate id is answered
        again without being kept twice."""
        known = self.pending.get(event_id)
        if known is not None:
            return known[1]
        if self.task != "classification":
            y_pred, y_proba = self.model.predict_one(x), None
        elif self._label_from_proba:      # what the model's predict_one would compute, without doing it twice
            y_proba = self.model.predict_proba_one(x)
            y_pred = max(y_proba, key=y_proba.get) if y_proba else None
        else:
            y_pred, y_proba = self.model.predict_one(x), self.model.predict_proba_one(x)
        self.pending[event_id] = (x, y_pred, y_proba, time.time() if now is None else now)
        self.n_predicted += 1
        while len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)
            self.n_expired += 1
        return y_pred

    def observe(self, event_id: str, y: Any) -> Outcome | None:
        """The label of an earlier prediction: judge it, then learn the event. None for an
        id with no prediction waiting (unknown, expired, or already judged)."""
        found = self.pending.pop(event_id, None)
        if found is None:
            self.n_unknown_labels += 1
            return None
        x, y_pred, y_proba, _ = found
        if self.task == "classification":
            self.metrics["accuracy"].update(y, y_pred)
            self.metrics["roc_auc"].update(y, y_proba)
            correct = y_pred == y
            error = 0.0 if correct else 1.0
        else:
            for metric in self.metrics.values():
                metric.update(y, y_pred)
            correct, error = None, abs(float(y) - float(y_pred if y_pred is not None else 0.0))
        self.model.learn_one(x, y)
        self.n_learned += 1
        drift = False
        if self.detector is not None:
            self.detector.update(error)
            drift = bool(self.detector.drift_detected)
            self.n_drifts += drift
        return Outcome(event_id, y_pred, correct, error, drift)

    def expire(self, now: float | None = None) -> int:
        """Drop predictions whose label did not come within ``label_wait_s``; how many."""
        now = time.time() if now is None else now
        dropped = 0
        while self.pending:
            event_id, (_, _, _, at) = next(iter(self.pending.items()))
            if now - at < self.label_wait_s:
                break
            del self.pending[event_id]
            dropped += 1
        self.n_expired += dropped
        return dropped

    def scores(self) -> dict[str, float]:
        return {name: float(metric.get()) for name, metric in self.metrics.items()}


class RollingScore:
    """The metric a promotion compares, over the last ``size`` judged events: accuracy (the
    share of right answers) or MAE (the mean absolute error); what River's
    ``utils.Rolling(metrics.Accuracy, size)`` reports, at a fraction of its cost per event
    (it runs for every event a learner judges).

    >>> window = RollingScore(3, "accuracy")
    >>> for y, y_pred in [(True, True), (True, False), (False, False), (True, True)]:
    ...     window.update(y, y_pred)
    >>> round(window.get(), 4)
    0.6667
    >>> mae = RollingScore(2, "mae")
    >>> for y, y_pred in [(1.0, 3.0), (2.0, 2.5), (0.0, 1.0)]:
    ...     mae.update(y, y_pred)
    >>> mae.get()
    0.75
    """

    def __init__(self, size: int, kind: str) -> None:
        if kind not in ("accuracy", "mae"):
            raise ValueError(f"kind: 'accuracy' or 'mae'; got {kind!r}")
        self.kind, self.size = kind, size
        self.values: deque = deque()
        self.total = 0          # an int for accuracy (exact); a float for MAE, summed afresh every `size` events
        self.n_updates = 0

    def update(self, y_true: Any, y_pred: Any) -> None:
        value = (y_true == y_pred) * 1 if self.kind == "accuracy" else abs(float(y_true) - float(y_pred))
        self.values.append(value)
        self.total += value
        if len(self.values) > self.size:
            self.total -= self.values.popleft()
        self.n_updates += 1
        if self.kind == "mae" and self.n_updates % self.size == 0:
            self.total = math.fsum(self.values)      # no rounding error carried along for ever

    def get(self) -> float:
        return self.total / len(self.values) if self.values else 0.0


class EventRefused(FieldError):
    """An event or label a learner cannot use; ``field`` names the culprit."""



@dataclass
class Drift:
    role: str
    detector: str
    n_learned: int
    metrics: dict[str, float]


@dataclass
class Promoted:
    champion: str            # the algorithm that now answers
    demoted: str
    metric: str
    champion_score: float
    demoted_score: float
    window: int
    n_learned: int


def _number(value: Any) -> bool:
    """A finite int, float or bool: ``v - v`` is 0 only for a finite float, and an int must
    fit a float (JSON allows ``1e400`` as an int of 401 digits, which no model's arithmetic
    takes: it raised OverflowError in the learner, on every replay of its step).

    >>> [_number(v) for v in (1, 2.5, True, float("nan"), float("inf"), 10**400, -10**400, "3", None)]
    [True, True, True, False, False, False, False, False, False]
    """
    kind = type(value)
    if kind is float:
        return value - value == 0.0
    if kind is int:
        return -_FLOAT_MAX <= value <= _FLOAT_MAX
    if kind is bool:
        return True
    try:                                # subclasses (numpy's float64 ...)
        return isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:
        return False


class OnlineLearner:
    """A champion (and optionally a challenger) learning one stream as configured by a
    :class:`ml.learner_config.LearnerConfig`: features picked from each event's values,
    labels from the event or later by event id, duplicates ignored, windowed metrics
    compared for promotion. Deterministic given the same calls (time comes from the
    events), so a replay reaches the same state.

    Examples
    --------
    >>> from ml.learner_config import parse_learner_config
    >>> config = parse_learner_config('name = "l"\\nstream = "s"\\nlabel = "y"\\n'
    ...                               '[model]\\nalgorithm = "river.logistic_regression"')
    >>> learner = OnlineLearner(config)
    >>> for i in range(200):
    ...     _ = learner.on_event(f"e{i}", {"x": float(i % 2), "y": bool(i % 2)}, now=float(i))
    >>> learner.answer({"x": 1.0})["label"], learner.report()["n_learned"]
    ('True', 200)
    >>> learner.on_event("e5", {"x": 1.0, "y": True}, now=300.0)     # a duplicate is ignored
    (None, [])
    >>> learner.on_event("e-bad", {"x": "red", "y": True}, now=301.0)
    Traceback (most recent call last):
    ...
    ml.online_learning.EventRefused: values: no numeric field to learn from
    """

    MAX_RECENT_IDS = 10_000
    #: A label whose event has not been seen waits this long (event time) for it, at most this many.
    PARK_S = 10.0
    MAX_PARKED = 10_000
    #: Entities whose running aggregates are kept (the least recently seen are forgotten).
    MAX_ENTITIES = 100_000

    def __init__(self, config) -> None:
        from ml.algorithms import _is_binary_only
        from ml.learner_config import build_estimator

        self.config = config
        drift = None if config.drift == "none" else config.drift

        def learner(choice) -> StreamLearner:
            return StreamLearner(build_estimator(choice), config.task, max_pending=config.max_pending,
                                 label_wait_s=config.label_wait_s, drift=drift)

        def window():
            return RollingScore(config.promotion.window, "accuracy" if config.task == "classification" else "mae")

        self.champion, self.champion_algorithm, self.champion_window = learner(config.model), config.model.algorithm, window()
        self.challenger = self.challenger_algorithm = self.challenger_window = None
        if config.challenger is not None:
            self.challenger, self.challenger_algorithm = learner(config.challenger), config.challenger.algorithm
            self.challenger_window = window()
        self.binary = config.task == "classification" and _is_binary_only(self.champion.model)
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.labels: dict[str, int] = {}
        self.label_sum = 0.0
        self.parked: OrderedDict[str, tuple[Any, float, Any]] = OrderedDict()   # event id -> (label, at, ref)
        #: Per entity, per aggregated field: [n, total] over the entity's events so far (newest used last).
        self.entities: OrderedDict[str, dict[str, list[float]]] = OrderedDict()
        self.n_duplicates = self.n_refused = self.n_unknown_labels = self.n_judged = self.n_promotions = 0

    # --- input checks -------------------------------------------------------------------------

    def features_of(self, values: dict) -> dict:
        names = self.config.features
        if names:
            x = {}
            for name in names:
                if name not in values or values[name] is None:
                    raise EventRefused(f"values.{name}", "missing")
                if not _number(values[name]):
                    got = values[name]
                    raise EventRefused(f"values.{name}", "a finite number; got " + (
                        "an int beyond the float range" if type(got) is int else type(got).__name__))
                x[name] = values[name]
            return x
        label = self.config.label
        x = {}
        for k, v in values.items():      # _number's checks, the common types first (per event)
            kind = type(v)
            if (v - v == 0.0 if kind is float else -_FLOAT_MAX <= v <= _FLOAT_MAX if kind is int
                    else _number(v)) and k != label:
                x[k] = v
        if not x:
            raise EventRefused("values", "no numeric field to learn from")
        return x

    def with_aggregates(self, x: dict, entity_key: str | None) -> dict:
        """``x`` plus the entity's running count and mean of each aggregated field (before this event)."""
        if not self.config.entity_aggregates:
            return x
        known = self.entities.get(entity_key, {}) if entity_key is not None else {}
        x = dict(x)
        for name in self.config.entity_aggregates:
            n, total = known.get(name, (0, 0.0))
            x[f"{name}__entity_n"] = n
            x[f"{name}__entity_mean"] = total / n if n else 0.0
        return x

    def _fold(self, entity_key: str, values: dict) -> None:
        fields = self.entities.pop(entity_key, None) or {}
        self.entities[entity_key] = fields            # most recently seen last
        for name in self.config.entity_aggregates:
            value = values.get(name)
            if value is not None and _number(value):
                slot = fields.setdefault(name, [0, 0.0])
                slot[0] += 1
                slot[1] += float(value)
        while len(self.entities) > self.MAX_ENTITIES:
            self.entities.popitem(last=False)

    def check_label(self, y: Any) -> Any:
        if self.config.task == "regression":
            if not _number(y) or isinstance(y, bool):
                raise EventRefused("label", f"a finite number for a regression learner; got {y!r}")
            return y
        if self.binary and not (isinstance(y, bool) or (isinstance(y, int) and y in (0, 1))):
            raise EventRefused("label", f"{self.champion_algorithm} takes true/false or 0/1; got {y!r}")
        if not isinstance(y, (bool, int, str)):
            raise EventRefused("label", f"a class label (bool, int or text); got {type(y).__name__}")
        return y

    # --- the stream ---------------------------------------------------------------------------

    def on_event(self, event_id: str, values: dict, now: float, entity_key: str | None = None) -> tuple[Any, list]:
        """Predict the event (and learn it at once when it carries its label); (prediction,
        signals). A duplicate id answers (None, []); a bad event raises :class:`EventRefused`
        and changes nothing."""
        if event_id in self.recent:
            self.n_duplicates += 1
            return None, []
        x = self.with_aggregates(self.features_of(values), entity_key)
        label = values.get(self.config.label) if self.config.label else None
        if label is not None:
            label = self.check_label(label)
        self.recent[event_id] = None
        if len(self.recent) > self.MAX_RECENT_IDS:
            self.recent.popitem(last=False)
        y_pred = self.champion.predict(event_id, x, now)
        if self.challenger is not None:
            self.challenger.predict(event_id, x, now)
        if self.config.entity_aggregates and entity_key is not None:
            self._fold(entity_key, values)
        signals = self.on_label(event_id, label, checked=True) if label is not None else []
        if event_id in self.parked:          # its label came first (another topic): judge it now
            parked_label = self.parked.pop(event_id)[0]
            signals = (signals or []) + (self.on_label(event_id, parked_label) or [])
        self.champion.expire(now)
        if self.challenger is not None:
            self.challenger.expire(now)
        return y_pred, signals or []

    def on_label(self, event_id: str, y: Any, at: float | None = None, ref: Any = None,
                 checked: bool = False) -> list | None:
        """Judge and learn the event ``event_id``; its signals (drift, promotion), or None
        when no prediction waits for that id. A label (given its time ``at``) for an event not
        seen yet waits for it up to ``PARK_S`` of event time (``ref`` names it when it expires)."""
        if not checked:
            y = self.check_label(y)
        if at is not None and event_id not in self.recent and event_id not in self.champion.pending:
            self.parked[event_id] = (y, at, ref)
            while len(self.parked) > self.MAX_PARKED:
                self.parked.popitem(last=False)
                self.n_unknown_labels += 1
            return []
        judged = self.champion.observe(event_id, y)
        other = self.challenger.observe(event_id, y) if self.challenger is not None else None
        if judged is None:
            self.n_unknown_labels += 1
            return None
        if self.config.task == "classification":
            self.labels[str(y)] = self.labels.get(str(y), 0) + 1
        else:
            self.label_sum += float(y)
        self.n_judged += 1
        self.champion_window.update(y, judged.y_pred)
        signals: list = []
        if judged.drift:
            signals.append(Drift("champion", self.config.drift, self.champion.n_learned, self.champion.scores()))
        if other is not None:
            self.challenger_window.update(y, other.y_pred)
            if other.drift:
                signals.append(Drift("challenger", self.config.drift, self.challenger.n_learned,
                                     self.challenger.scores()))
            promoted = self._maybe_promote()
            if promoted is not None:
                signals.append(promoted)
        return signals

    def expire_parked(self, now: float) -> list:
        """Labels whose event did not come within ``PARK_S``: counted as unknown; their refs."""
        expired = []
        while self.parked:
            event_id, (_, at, ref) = next(iter(self.parked.items()))
            if now - at < self.PARK_S:
                break
            del self.parked[event_id]
            self.n_unknown_labels += 1
            expired.append((event_id, ref))
        return expired

    def _maybe_promote(self) -> Promoted | None:
        window = self.config.promotion.window
        if self.n_judged < window or self.n_judged % window:
            return None
        champion, challenger = self.champion_window.get(), self.challenger_window.get()
        gain = challenger - champion if self.config.higher_is_better else champion - challenger
        if gain <= self.config.promotion.margin:
            return None
        self.champion, self.challenger = self.challenger, self.champion
        self.champion_algorithm, self.challenger_algorithm = self.challenger_algorithm, self.champion_algorithm
        self.champion_window, self.challenger_window = self.challenger_window, self.champion_window
        self.n_promotions += 1
        return Promoted(self.champion_algorithm, self.challenger_algorithm, self.config.metric,
                        float(challenger), float(champion), window, self.champion.n_learned)

    # --- serving ------------------------------------------------------------------------------

    def answer(self, values: dict, entity_key: str | None = None) -> dict:
        """The champion's answer for ``values`` now (with the entity's running aggregates when
        configured): label and score (the probability of the positive class, of the top class,
        or the value)."""
        x = self.with_aggregates(self.features_of(values), entity_key)
        model = self.champion.model
        y_pred = model.predict_one(x)
        if self.config.task == "regression":
            return {"label": None, "score": float(y_pred if y_pred is not None else self.baseline()["score"])}
        proba = model.predict_proba_one(x) or {}
        if y_pred is None:
            return self.baseline()
        if self.binary:
            score = float(proba.get(True, proba.get(1, 0.0)))
        else:
            score = float(max(proba.values())) if proba else 0.0
        return {"label": str(y_pred), "score": score}

    def baseline(self) -> dict:
        """The answer of last resort: the most frequent label seen (with its share), or the mean."""
        if self.config.task == "regression":
            return {"label": None, "score": self.label_sum / self.n_judged if self.n_judged else 0.0}
        if not self.labels:
            return {"label": None, "score": 0.0}
        label, n = max(self.labels.items(), key=lambda item: item[1])
        return {"label": label, "score": n / sum(self.labels.values())}

    def report(self) -> dict:
        champion = self.champion
        out = {"learner": self.config.name, "stream": self.config.stream, "champion": self.champion_algorithm,
               "scores": champion.scores(), "n_predicted": champion.n_predicted, "n_learned": champion.n_learned,
               "n_pending": len(champion.pending), "n_expired": champion.n_expired, "n_parked": len(self.parked),
               "n_unknown_labels": self.n_unknown_labels, "n_duplicates": self.n_duplicates,
               "n_refused": self.n_refused, "n_drifts": champion.n_drifts, "n_promotions": self.n_promotions,
               "window_score": float(self.champion_window.get())}
        if self.challenger is not None:
            out["challenger"] = {"algorithm": self.challenger_algorithm, "scores": self.challenger.scores(),
                                 "window_score": float(self.challenger_window.get()),
                                 "n_drifts": self.challenger.n_drifts}
        return out
