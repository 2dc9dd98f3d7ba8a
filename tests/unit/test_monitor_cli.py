"""Unit tests of the monitor command's text and parser (client/cli_monitor.py)."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from client.cli_monitor import register, summary_text
from client.monitoring import Alert, Drift, VersionSummary

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def summary(**extra) -> VersionSummary:
    base = dict(model="m", version=2, n_served=1200, n_fallback=12, n_errors=1, n_late=11, window_s=60.0,
                n_window=400, latency_min_ms=0.9, latency_mean_ms=1.4, latency_max_ms=9.0, latency_p50_ms=1.2,
                latency_p99_ms=4.5, n_observed=0, accuracy=None, mae=None, n_drift_sample=400,
                feature_drift={"a": Drift(0.02, 0.05, 0.4), "b": Drift(0.9, 0.5, 1e-20)}, prediction_drift=None,
                first_seen_at=NOW, last_seen_at=NOW, updated_at=NOW)
    return VersionSummary(**{**base, **extra})


def test_the_text_names_counts_latencies_drift_and_alerts():
    alert = Alert(alert_id="x", model="m", version=2, kind="feature_drift", severity="warning", value=0.9,
                  threshold=0.25, summary="1 feature(s) drifted", details={"b": 0.9}, rolled_back_to=None,
                  raised_at=NOW)
    text = summary_text([summary(n_observed=50, accuracy=0.9)], [alert])
    assert "m v2: 1,200 served, 12 by a fallback (1.0%), 1 errors, 11 late" in text
    assert "p50 1.20, p99 4.50, max 9.00 ms" in text
    assert "1 of 2 features PSI > 0.25; largest b PSI 0.900" in text
    assert "outcomes: 50 joined, accuracy 0.900" in text and "feature_drift: 1 feature(s) drifted" in text


def test_nothing_monitored_says_what_to_do():
    assert "deploy one and score it" in summary_text([], [])


def test_drifting_features_are_sorted_by_psi():
    s = summary(feature_drift={"a": Drift(0.3, 0.1, 0.1), "b": Drift(0.9, 0.5, 0.0), "c": Drift(0.1, 0.1, 0.5)})
    assert s.drifting_features() == ["b", "a"] and s.fallback_rate == pytest.approx(0.01)


def test_the_parser_takes_an_optional_model_and_restore_needs_one():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["monitor", "--json"])
    assert args.model is None and args.json and args.alerts == 10
    assert parser.parse_args(["restore", "m"]).model == "m"
    with pytest.raises(SystemExit):
        parser.parse_args(["restore"])
