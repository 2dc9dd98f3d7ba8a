"""Unit tests of the monitor's alert and rollback rules (actors.monitoring.Monitor), Ray-free:
the one Ray call (``request_rollback``) and the metrics gauges are replaced."""

from __future__ import annotations

from storage.serving_store import Routes, VersionInfo
from storage.settings import load_settings


class Gauge:
    def __init__(self) -> None:
        self.values: dict = {}

    def set(self, value, tags):
        self.values[(tags["model"], tags["version"])] = value


def monitor(**settings):
    from actors.monitoring import GAUGES, Monitor

    env = {f"CONVEYOR_{k.upper()}": str(v) for k, v in settings.items()}
    m = Monitor(load_settings(None, env), "root.monitor")
    m.rollbacks, m.rollback_alerts = [], []

    async def request_rollback(model, reason, alert):
        m.rollbacks.append((model, reason))
        m.rollback_alerts.append(alert)
        return {"version": 1, "previous": 2}

    m.request_rollback = request_rollback
    m._gauges = {name: Gauge() for name in GAUGES}
    return m


def routes(production=2, previous=1) -> Routes:
    info = VersionInfo(candidate_id="c", replicas=[], feature_set_id="f", dataset="d")
    return Routes(model="m", task="classification", production=production, previous=previous,
                  versions={1: info, 2: info})


def serve(m, n: int, latency_ms: float, version: int = 2, answered_by: str = "primary", at: float = 1000.0):
    for i in range(n):
        m.tracker.add_score(f"r{version}-{at}-{i}", "m", version, version if answered_by == "primary" else 1,
                            answered_by, latency_ms, 0.5, "1",
                            None if answered_by == "primary" else f"v{version} did not answer within 75 ms",
                            at=at + i / 100)


async def evaluate(m, key=("m", 2), r=None):
    f = m.tracker.figures(key)
    f.update(m._drift(key))
    m._export(key, f)
    return await m._alerts(key, f, r if r is not None else routes())


async def test_a_slow_production_version_is_alerted_once_and_rolled_back_once():
    m = monitor(latency_objective_ms=50)
    serve(m, 99, 80.0)
    assert await evaluate(m) == []                                 # fewer answers than monitor_min_samples
    serve(m, 1, 80.0, at=1001.0)
    [alert] = await evaluate(m)
    assert (alert.kind, alert.severity, alert.rolled_back_to) == ("latency", "critical", 1)
    assert "p99 latency 80.0 ms" in alert.summary and "rolled back to v1" in alert.summary
    assert m.rollbacks == [("m", "automatic: v2: " + alert.summary.split("; production")[0])]
    assert m.rollback_alerts == [alert.msg_id]           # the rollback carries the alert's id as its chain
    assert len(alert.evidence) == 5 and all(r.startswith("r2-") for r in alert.evidence)   # requests behind it
    assert await evaluate(m) == []                                 # still firing: not raised again
    assert m._gauges["latency_p99_ms"].values[("m", "2")] == 80.0 and m._gauges["served"].values[("m", "2")] == 100


async def test_no_rollback_to_a_version_rolled_back_from_nor_of_a_version_not_in_production():
    m = monitor(latency_objective_ms=50)
    serve(m, 100, 80.0)
    await evaluate(m)
    assert len(m.rollbacks) == 1
    serve(m, 100, 80.0, version=1)
    [alert] = await evaluate(m, ("m", 1), routes(production=1, previous=2))
    assert alert.rolled_back_to is None and len(m.rollbacks) == 1  # v2 was rolled back from
    m2 = monitor(latency_objective_ms=50)
    serve(m2, 100, 80.0)
    [alert] = await evaluate(m2, r=routes(production=1, previous=2))
    assert alert.rolled_back_to is None and m2.rollbacks == []


async def test_no_rollback_to_a_version_an_operator_rolled_back_from():
    m = monitor(latency_objective_ms=50)
    serve(m, 100, 80.0, version=1)
    manual = routes(production=1, previous=2)
    manual.demoted = [2]                          # an operator rolled production back from v2 to v1
    [alert] = await evaluate(m, ("m", 1), manual)
    assert alert.kind == "latency" and alert.rolled_back_to is None and m.rollbacks == []


async def test_a_second_slow_version_is_rolled_back_further_along_the_chain():
    m = monitor(latency_objective_ms=50)
    serve(m, 100, 80.0)
    chain = routes(production=2, previous=3)
    chain.history, chain.demoted = [1], [3]     # production went 1 -> 2 -> 3, then back from 3 to 2
    [alert] = await evaluate(m, r=chain)
    assert alert.rolled_back_to == 1 and len(m.rollbacks) == 1   # v1, though it is retired and v3 is previous


async def test_accuracy_is_compared_with_the_version_a_rollback_would_move_to():
    m = monitor()
    chain = routes(production=2, previous=3)
    chain.history, chain.demoted = [1], [3]
    for version, correct in ((3, True), (1, True), (2, False)):
        for i in range(100):
            m.tracker.add_score(f"a{version}-{i}", "m", version, version, "primary", 3.0, 0.9, "1", None, at=1000.0)
            m.tracker.add_observation(f"a{version}-{i}", "1" if correct else "0", at=1001.0)
    assert m._previous_figures(chain, ("m", 2))[0] == 1           # not v3, which production left
    [alert] = [a for a in await evaluate(m, r=chain) if a.kind == "accuracy"]
    assert "below v1's" in alert.summary and alert.rolled_back_to == 1


async def test_a_models_serving_configuration_sets_its_own_objectives():
    from ml.serving_config import applied, parse_serving_config

    m = monitor(latency_objective_ms=50)
    m.objectives["m"] = applied(m.settings, parse_serving_config("latency_objective_ms = 100"))
    serve(m, 100, 80.0)
    assert await evaluate(m) == [] and m.rollbacks == []       # 80 ms is within this model's 100 ms
    m.objectives["m"] = applied(m.settings, parse_serving_config("latency_objective_ms = 60\nauto_rollback = false"))
    serve(m, 1, 80.0, at=1002.0)
    [alert] = await evaluate(m)
    assert (alert.kind, alert.threshold, alert.rolled_back_to) == ("latency", 60.0, None) and m.rollbacks == []


async def test_auto_rollback_off_still_alerts():
    m = monitor(latency_objective_ms=50, auto_rollback="false")
    serve(m, 100, 80.0)
    [alert] = await evaluate(m)
    assert alert.kind == "latency" and alert.rolled_back_to is None and m.rollbacks == []


async def test_fallbacks_over_the_rate_alert_and_a_cleared_alert_fires_again_with_a_new_id():
    m = monitor(monitor_window_s=5)
    serve(m, 90, 3.0)
    serve(m, 10, 76.0, answered_by="fallback", at=1000.9)
    [alert] = await evaluate(m)
    assert alert.kind == "fallbacks" and alert.value == 0.1 and alert.rolled_back_to == 1
    assert alert.evidence == [f"r2-1000.9-{i}" for i in (9, 8, 7, 6, 5)]      # the newest a fallback answered
    serve(m, 200, 3.0, at=1010.0)                                  # the window moved on: cleared
    assert await evaluate(m) == [] and not m.tracker.active_alerts
    serve(m, 100, 76.0, answered_by="fallback", at=1020.0)
    [again] = await evaluate(m)
    assert again.kind == "fallbacks" and again.msg_id != alert.msg_id and again.rolled_back_to is None  # once a window


async def test_restored_versions_are_measured_afresh():
    m = monitor(latency_objective_ms=50)
    serve(m, 100, 80.0)
    await evaluate(m)
    m.restored("m", 2)
    assert m.tracker.figures(("m", 2))["n_window"] == 0 and not m.tracker.active_alerts
    assert m.tracker.extra["demoted"] == [] and m.tracker.extra["rolled_back_at"] == {}
