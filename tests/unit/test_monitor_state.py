"""Unit tests of the monitor's per-version state (actors.monitor_state) and its alert ids."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import actors.monitor_state as monitor_state
from actors.monitor_state import MonitorState, percentile


def test_doctests():
    assert doctest.testmod(monitor_state).failed == 0


def fill(state: MonitorState, n: int = 300, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    latencies = list(rng.exponential(3.0, size=n))
    for i, ms in enumerate(latencies):
        answered_by, reason, version = "primary", None, 2
        if i % 50 == 0:
            answered_by, reason, version = "fallback", "v2 did not answer within 75 ms", 1
        elif i % 70 == 0:
            answered_by, reason, version = "baseline", "replica serve.m.v2.r0 failed: KeyError", None
        state.add_score(f"r{i}", "m", 2, version, answered_by, float(ms), 0.5 + i / 1000, "1", reason,
                        at=1000.0 + i / 10)
        state.add_vectors(("m", 2), 1000.0 + i / 10, rng.normal(size=(1, 3)))
    return latencies


def test_counts_and_latency_figures_equal_numpy_over_the_window():
    state = MonitorState(window_s=600.0)
    latencies = fill(state)
    f = state.figures(("m", 2))
    assert f["n_served"] == 300 and f["n_window"] == 300
    assert f["n_fallback"] == 6 + 4 and f["n_late"] == 6 and f["n_errors"] == 4
    assert f["latency_min_ms"] == min(latencies) and f["latency_max_ms"] == max(latencies)
    assert f["latency_mean_ms"] == pytest.approx(np.mean(latencies))
    assert f["latency_p50_ms"] == np.percentile(latencies, 50, method="inverted_cdf")
    assert f["latency_p99_ms"] == np.percentile(latencies, 99, method="inverted_cdf")
    assert state.window_counts(("m", 2)) == {"fallback": 10, "error": 4}
    assert len(state.window_scores(("m", 2))) == 290          # the version's own answers only


def test_the_window_keeps_only_its_seconds_but_counts_keep_everything():
    state = MonitorState(window_s=5.0)
    fill(state)                                              # 30 s of records, 10 per second
    f = state.figures(("m", 2))
    assert f["n_served"] == 300 and f["n_window"] == 51


def test_outcomes_join_in_either_order_and_give_accuracy():
    state = MonitorState()
    state.add_score("a", "m", 1, 1, "primary", 1.0, 0.9, "1", None, at=1.0)
    state.add_score("b", "m", 1, 1, "primary", 1.0, 0.2, "0", None, at=1.0)
    assert state.add_observation("c", 1, at=2.0) is None      # its answer comes later
    state.add_score("c", "m", 1, 1, "primary", 1.0, 0.8, "1", None, at=3.0)
    assert state.add_observation("a", True, at=4.0) == state.add_observation("b", 1, at=4.0) == ("m", 1)
    f = state.figures(("m", 1))
    assert f["n_observed"] == 3 and f["accuracy"] == pytest.approx(2 / 3) and f["mae"] is None
    assert state.add_observation("a", 1, at=5.0) is None      # a duplicate outcome joins nothing


def test_regression_outcomes_give_mae():
    state = MonitorState()
    state.add_score("a", "r", 1, 1, "primary", 1.0, 10.0, None, None, at=1.0)
    state.add_score("b", "r", 1, 1, "primary", 1.0, 4.0, None, None, at=1.0)
    state.add_observation("a", 12.5, at=2.0)
    state.add_observation("b", 3, at=2.0)
    assert state.figures(("r", 1))["mae"] == pytest.approx(1.75)


def test_a_restored_snapshot_then_the_same_records_give_the_same_figures():
    first, second = MonitorState(window_s=600.0), MonitorState(window_s=600.0)
    fill(first, 300)
    fill(second, 300)
    restored = MonitorState(window_s=600.0)
    restored.restore(first.snapshot())
    for state in (second, restored):
        state.add_score("late", "m", 2, 2, "primary", 7.0, 0.4, "0", None, at=2000.0)
        state.add_observation("late", 0, at=2001.0)
    assert restored.figures(("m", 2)) == second.figures(("m", 2))
    assert np.array_equal(restored.window_vectors(("m", 2)), second.window_vectors(("m", 2)))
    assert restored.active_alerts == second.active_alerts


def test_the_vector_window_is_bounded():
    state = MonitorState(max_vectors=10)
    state.add_score("a", "m", 1, 1, "primary", 1.0, 0.5, "1", None, at=1.0)
    state.add_vectors(("m", 1), 1.0, np.arange(60.0).reshape(20, 3))
    assert state.window_vectors(("m", 1)).shape == (10, 3) and state.window_vectors(("m", 1))[0, 0] == 30.0


def test_percentile_is_an_observed_value():
    values = np.sort(np.random.default_rng(1).normal(size=101))
    assert percentile(values, 99) in values and percentile(values, 0) == values[0]


def test_alert_ids_are_stable_and_fit_a_message_id():
    from actors.monitoring import alert_id
    from messages.monitoring import AlertRaised

    assert alert_id("m", 1, "latency", 1) == alert_id("m", 1, "latency", 1) != alert_id("m", 1, "latency", 2)
    AlertRaised(msg_id=alert_id("x" * 63, 9, "feature_drift", 3), model="m", version=1, kind="latency", value=1.0,
                threshold=0.5, summary="s")


def test_evidence_names_the_requests_behind_each_kind_of_alert():
    state = MonitorState(window_s=600.0)
    fill(state)
    slowest = sorted(((ms, f"r{i}") for i, ms in enumerate(fill(MonitorState(window_s=600.0)))), reverse=True)
    assert state.evidence(("m", 2), "latency") == [r for _, r in slowest[:5]]
    assert state.evidence(("m", 2), "fallbacks") == ["r280", "r250", "r210", "r200", "r150"]   # newest first
    assert state.evidence(("m", 2), "errors") == ["r280", "r210", "r140", "r70"]
    for i in range(8):
        state.add_observation(f"r{290 + i}", "0" if i % 2 else "1", at=2000.0)   # the answers said "1"
    assert state.evidence(("m", 2), "accuracy") == ["r297", "r295", "r293", "r291"]
    assert state.evidence(("m", 2), "feature_drift") == []


def test_a_snapshot_written_before_answers_kept_their_request_id_restores():
    import msgspec

    state = MonitorState(window_s=600.0)
    fill(state, 20)
    snap = msgspec.msgpack.decode(state.snapshot(), type=monitor_state.Snapshot)
    old = [(*s[:12], [w[:4] for w in s[12]], *s[13:16]) for s in snap.stats]     # no ids, no misses
    restored = MonitorState(window_s=600.0)
    restored.restore(msgspec.msgpack.encode(monitor_state.Snapshot(stats=old, recent=snap.recent,
                                                                    outcomes=snap.outcomes, alerts=snap.alerts)))
    assert restored.figures(("m", 2)) == state.figures(("m", 2))
    assert restored.evidence(("m", 2), "latency") == []
    restored.restore(state.snapshot())
    assert restored.evidence(("m", 2), "latency") == state.evidence(("m", 2), "latency")
