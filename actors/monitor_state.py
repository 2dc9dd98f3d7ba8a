"""What the monitor keeps per model version, Ray-free and I/O-free: serve, fallback and
error counts, a time window of latencies and predictions, a window of input vectors,
outcomes joined to predictions by request id, and which alerts are active.

State is rebuilt exactly by replaying the same records after :meth:`MonitorState.restore`
of a snapshot (times come from the records, never from the clock).

Examples
--------
>>> s = MonitorState(window_s=60.0)
>>> for i, ms in enumerate([2.0, 3.0, 40.0]):
...     _ = s.add_score("r%d" % i, "m", 1, 1, "primary", ms, 0.9, "1", None, at=100.0 + i)
>>> f = s.figures(("m", 1))
>>> f["n_served"], f["latency_min_ms"], f["latency_max_ms"], f["latency_p50_ms"]
(3, 2.0, 40.0, 3.0)
>>> s.add_observation("r0", 1, at=110.0), s.figures(("m", 1))["accuracy"]
(('m', 1), 1.0)
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import msgspec
import numpy as np

Key = tuple[str, int]

#: Request ids remembered for joining an outcome that comes later, and outcomes that came first.
MAX_JOIN_ENTRIES = 200_000
#: Request ids an alert names as its evidence, at most.
EVIDENCE = 5


def reason_kind(reason: str | None) -> str | None:
    """Why a primary did not answer, from the router's reason: ``late``, ``error`` or None.

    >>> reason_kind("v2 did not answer within 75 ms"), reason_kind("replica serve.m.v2.r0 failed: KeyError")
    ('late', 'error')
    """
    if not reason:
        return None
    return "late" if "did not answer within" in reason else "error"


def percentile(sorted_values: np.ndarray, q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of sorted values: a value that was observed.

    >>> percentile(np.array([1.0, 2.0, 3.0, 4.0]), 50), percentile(np.arange(1.0, 101.0), 99)
    (2.0, 99.0)
    """
    n = len(sorted_values)
    return float(sorted_values[max(0, math.ceil(q / 100 * n) - 1)])


def same_label(observed, predicted: str | None) -> bool:
    """Whether an observed label equals a predicted one (labels travel as text: 1, 1.0 and
    True all read as "1").

    >>> same_label(True, "1"), same_label(1.0, "1"), same_label("yes", "yes"), same_label(0, "1")
    (True, True, True, False)
    """
    if predicted is None:
        return False
    def norm(v):
        if isinstance(v, bool):
            return "1" if v else "0"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, str):
            try:
                number = float(v)
                return str(int(number)) if number.is_integer() else v
            except ValueError:
                return v
        return str(v)
    return norm(observed) == norm(predicted)


@dataclass
class VersionStats:
    n_served: int = 0
    n_fallback: int = 0
    n_errors: int = 0
    n_late: int = 0
    n_observed: int = 0
    n_correct: int = 0
    abs_error: float = 0.0
    n_valued: int = 0             # outcomes of a regression (their absolute errors are summed)
    first_at: float = 0.0
    last_at: float = 0.0
    #: (time, latency ms, the version's own score or NaN, 1 if a fallback answered | 2 if the
    #: primary failed, request id) of the answers in the window.
    window: deque = field(default_factory=deque)
    #: The newest requests whose observed outcome the version got wrong.
    misses: deque = field(default_factory=lambda: deque(maxlen=EVIDENCE))
    #: (time, input vector) of the newest requests with known inputs.
    vectors: deque = field(default_factory=deque)


class Snapshot(msgspec.Struct, array_like=True):
    stats: list[tuple]
    recent: list[tuple]
    outcomes: list[tuple]
    alerts: list[tuple]
    extra: dict = {}


class MonitorState:
    def __init__(self, window_s: float = 60.0, max_window: int = 20_000, max_vectors: int = 2_000) -> None:
        self.window_s, self.max_window, self.max_vectors = window_s, max_window, max_vectors
        self.versions: dict[Key, VersionStats] = {}
        self.recent: OrderedDict[str, tuple] = OrderedDict()      # request id -> (model, version, label, score)
        self.outcomes: OrderedDict[str, tuple] = OrderedDict()    # event id -> (label, at) not joined yet
        self.active_alerts: set[tuple[str, int, str]] = set()
        self.extra: dict = {}                                     # the worker's own (e.g. other offsets)

    def stats(self, key: Key) -> VersionStats:
        found = self.versions.get(key)
        if found is None:
            found = self.versions[key] = VersionStats()
        return found

    def add_score(self, request_id: str, model: str, routed: int, answered: int | None, answered_by: str,
                  latency_ms: float, score: float | None, label: str | None, reason: str | None,
                  at: float) -> VersionStats:
        """One answer to a request routed to version ``routed`` (``answered`` is the version
        that gave it; None for the baseline)."""
        s = self.stats((model, routed))
        s.n_served += 1
        s.first_at = s.first_at or at
        s.last_at = max(s.last_at, at)
        if answered_by in ("fallback", "baseline"):
            s.n_fallback += 1
        kind = reason_kind(reason)
        s.n_errors += kind == "error"
        s.n_late += kind == "late"
        own = score if answered == routed and answered_by in ("primary", "cache") and score is not None else math.nan
        flags = (answered_by in ("fallback", "baseline")) | (kind == "error") << 1
        s.window.append((at, latency_ms, own, flags, request_id))
        self._trim(s, at)
        if answered is not None:
            self.recent[request_id] = (model, answered, label, score)
            self._bound(self.recent)
        pending = self.outcomes.pop(request_id, None)
        if pending is not None:
            self._join(request_id, pending[0])
        return s

    def add_vectors(self, key: Key, at: float, X: np.ndarray) -> None:
        s = self.stats(key)
        for row in np.asarray(X, dtype=float):
            s.vectors.append((at, row))
        while len(s.vectors) > self.max_vectors:
            s.vectors.popleft()

    def add_observation(self, event_id: str, label, at: float) -> Key | None:
        """An observed outcome; the version whose prediction it joined, else None (it waits for one)."""
        if event_id in self.recent:
            return self._join(event_id, label)
        self.outcomes[event_id] = (label, at)
        self._bound(self.outcomes)
        return None

    def _join(self, request_id: str, label) -> Key:
        model, version, predicted, score = self.recent.pop(request_id)
        s = self.stats((model, version))
        s.n_observed += 1
        if isinstance(label, (int, float)) and not isinstance(label, bool) and predicted is None and score is not None:
            s.abs_error += abs(float(label) - score)          # regression: the score is the value
            s.n_valued += 1
        else:
            right = same_label(label, predicted)
            s.n_correct += right
            if not right:
                s.misses.append(request_id)
        return (model, version)

    def _trim(self, s: VersionStats, now: float) -> None:
        while s.window and (s.window[0][0] < now - self.window_s or len(s.window) > self.max_window):
            s.window.popleft()

    @staticmethod
    def _bound(mapping: OrderedDict) -> None:
        while len(mapping) > MAX_JOIN_ENTRIES:
            mapping.popitem(last=False)

    # --- figures ------------------------------------------------------------------------------

    def figures(self, key: Key, now: float | None = None) -> dict:
        """Counts since the monitor first saw the version; latency and fallback figures over
        the window ending at ``now`` (default: the version's newest record)."""
        s = self.versions[key]
        self._trim(s, now if now is not None else s.last_at)
        latencies = np.sort(np.fromiter((w[1] for w in s.window), dtype=float, count=len(s.window)))
        out = {"n_served": s.n_served, "n_fallback": s.n_fallback, "n_errors": s.n_errors, "n_late": s.n_late,
               "n_window": len(latencies), "window_s": self.window_s, "n_observed": s.n_observed,
               "accuracy": None, "mae": None}
        if len(latencies):
            out.update(latency_min_ms=float(latencies[0]), latency_mean_ms=float(latencies.mean()),
                       latency_max_ms=float(latencies[-1]), latency_p50_ms=percentile(latencies, 50),
                       latency_p99_ms=percentile(latencies, 99))
        else:
            out.update(latency_min_ms=None, latency_mean_ms=None, latency_max_ms=None, latency_p50_ms=None,
                       latency_p99_ms=None)
        if s.n_valued:
            out["mae"] = s.abs_error / s.n_valued
        if s.n_observed > s.n_valued:
            out["accuracy"] = s.n_correct / (s.n_observed - s.n_valued)
        return out

    def window_counts(self, key: Key) -> dict[str, int]:
        """Answers in the window given by a fallback, and requests whose primary failed."""
        window = self.versions[key].window
        return {"fallback": sum(w[3] & 1 for w in window), "error": sum(w[3] >> 1 for w in window)}

    def evidence(self, key: Key, kind: str) -> list[str]:
        """The requests behind an alert of ``kind``, which an operator can look up one by one
        (``client.get_score``): the slowest in the window for latency, the newest answered by
        a fallback or failed by the primary, the newest judged wrong by an outcome.

        >>> s = MonitorState()
        >>> for i, ms in enumerate([3.0, 250.0, 4.0, 120.0]):
        ...     _ = s.add_score(f"r{i}", "m", 1, 1, "primary", ms, 0.9, "1", None, at=100.0 + i)
        >>> s.evidence(("m", 1), "latency")
        ['r1', 'r3', 'r2', 'r0']
        """
        s = self.versions[key]
        known = [w for w in s.window if w[4]]         # answers restored from an older checkpoint have none
        if kind == "latency":
            return [w[4] for w in heapq.nlargest(EVIDENCE, known, key=lambda w: w[1])]
        if kind in ("fallbacks", "errors"):
            bit = 1 if kind == "fallbacks" else 2
            return [w[4] for w in reversed(known) if w[3] & bit][:EVIDENCE]
        if kind == "accuracy":
            return list(reversed(s.misses))
        return []

    def window_scores(self, key: Key) -> np.ndarray:
        scores = np.fromiter((w[2] for w in self.versions[key].window), dtype=float)
        return scores[~np.isnan(scores)]

    def window_vectors(self, key: Key) -> np.ndarray | None:
        vectors = self.versions[key].vectors
        return np.vstack([v for _, v in vectors]) if vectors else None

    # --- checkpoints ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        stats = []
        for (model, version), s in self.versions.items():
            width = len(s.vectors[0][1]) if s.vectors else 0
            stats.append((model, version, s.n_served, s.n_fallback, s.n_errors, s.n_late, s.n_observed, s.n_correct,
                          s.abs_error, s.n_valued, s.first_at, s.last_at, [list(w) for w in s.window],
                          [t for t, _ in s.vectors], width,
                          np.vstack([v for _, v in s.vectors]).tobytes() if s.vectors else b"", list(s.misses)))
        return msgspec.msgpack.encode(Snapshot(
            stats=stats, recent=[(k, *v) for k, v in self.recent.items()],
            outcomes=[(k, *v) for k, v in self.outcomes.items()], alerts=[list(a) for a in self.active_alerts],
            extra=self.extra))

    def restore(self, data: bytes) -> None:
        snap = msgspec.msgpack.decode(data, type=Snapshot)
        self.versions = {}
        for (model, version, n_served, n_fallback, n_errors, n_late, n_observed, n_correct, abs_error, n_valued,
             first_at, last_at, window, times, width, matrix, *misses) in snap.stats:
            # A checkpoint written before answers kept their request id (nor misses) restores too.
            s = VersionStats(n_served, n_fallback, n_errors, n_late, n_observed, n_correct, abs_error, n_valued,
                             first_at, last_at, deque((*w, "")[:5] for w in window),
                             deque(misses[0] if misses else [], maxlen=EVIDENCE))
            if times:
                X = np.frombuffer(matrix, dtype=float).reshape(len(times), width)
                s.vectors = deque(zip(times, X.copy()))
            self.versions[(model, version)] = s
        self.recent = OrderedDict((k, tuple(v)) for k, *v in snap.recent)
        self.outcomes = OrderedDict((k, tuple(v)) for k, *v in snap.outcomes)
        self.active_alerts = {tuple(a) for a in snap.alerts}
        self.extra = dict(snap.extra)
