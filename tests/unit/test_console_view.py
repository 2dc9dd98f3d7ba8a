"""The status console's drawing, from a hand-made snapshot (no cluster): what a frame
shows, how panels share the screen, how keys move the view."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest
from rich.console import Console

import client.console_keys
import client.console_snapshot
import client.console_view
from client.monitoring import Alert, Drift, VersionSummary
from client.status import ActorStatus, ClusterStatus, ServiceStatus
from client.console_keys import decode_keys
from client.console_snapshot import LiveVersion, Snapshot
from client.console_view import ViewState, apply_key, render, scroll_limits

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def worker(actor_id: str, **fields) -> ActorStatus:
    return ActorStatus(id=actor_id, kind="worker", state=fields.pop("state", "running"), pid=fields.pop("pid", 4242),
                       **fields)


def supervisor(actor_id: str, *children: ActorStatus) -> ActorStatus:
    return ActorStatus(id=actor_id, kind="supervisor", state="running", strategy="one_for_one",
                       intensity="0/5 in 30 s", children=list(children))


def snapshot(**overrides) -> Snapshot:
    tree = supervisor(
        "root",
        worker("root.outbox", n_processed=40),
        supervisor("root.ingest", worker("root.ingest.events-0", topic="events", partition=0, offset=1200,
                                         n_processed=1200, last_checkpoint_offset=1150, last_checkpoint_age_s=2.5)),
        worker("root.monitor", topic="scores", partition=0, offset=500, n_processed=500, n_restarts=2),
        supervisor("root.learn", worker("root.learn.learner-0", state="failed", error="RuntimeError: boom",
                                        topic="events", partition=0, offset=1000, n_processed=1000)))
    status = ClusterStatus(cluster_name="demo", state_dir="/tmp/demo", state="degraded", healthy=False,
                           services=[ServiceStatus(name="postgres", embedded=True, alive=True, address="x")],
                           tree=tree)
    figures = VersionSummary(
        model="cancer", version=2, n_served=1000, n_fallback=30, n_errors=0, n_late=30, window_s=60, n_window=900,
        latency_min_ms=1.0, latency_mean_ms=3.0, latency_max_ms=50.0, latency_p50_ms=2.5, latency_p99_ms=41.2,
        n_observed=100, accuracy=0.93, mae=None, n_drift_sample=1000,
        feature_drift={"radius": Drift(0.41, 0.3, 1e-9), "area": Drift(0.01, 0.02, 0.8)},
        prediction_drift=Drift(0.05, 0.04, 0.2), first_seen_at=NOW, last_seen_at=NOW, updated_at=NOW)
    alert = Alert(alert_id="a1", model="cancer", version=2, kind="latency", severity="critical", value=120.0,
                  threshold=100.0, summary="p99 120 ms above the 100 ms objective", details={}, rolled_back_to=1,
                  raised_at=NOW)
    learner = {"name": "phish", "revision": 1, "stream": "phishing", "reports": {"0": {
        "champion": "LogisticRegression", "scores": {"Accuracy": 0.8928, "ROCAUC": 0.9507}, "n_learned": 600,
        "n_pending": 3, "n_drifts": 0, "n_promotions": 1}}}
    fields = dict(taken_at=NOW.timestamp(), status=status,
                  live=(LiveVersion("cancer", 2, ("production",), 2), LiveVersion("cancer", 1, ("previous",), 1)),
                  versions=(figures,), alerts=(alert,), learners=(learner,),
                  end_offsets={("events", 0): 1250, ("scores", 0): 500}, rates={"root.ingest.events-0": 12.5})
    fields.update(overrides)
    return Snapshot(**fields)


def screen(renderable, width: int = 170) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def line_of(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def cells(text: str, needle: str) -> list[str]:
    """The words of the first line holding ``needle``, without the panel's border."""
    return [word for word in line_of(text, needle).split() if word != "│"]


def test_a_frame_shows_the_tree_with_states_restarts_checkpoints_and_lag():
    text = screen(render(snapshot()))
    for actor in ("root", "root.outbox", "root.ingest", "root.ingest.events-0", "root.monitor", "root.learn",
                  "root.learn.learner-0"):
        assert f" {actor} " in text
    events = cells(text, "root.ingest.events-0")
    assert events[1:5] == ["running", "0", "events/0", "50"]                   # lag = 1250 - 1200
    assert "12.5" in events and "@1,150" in events                            # rate, last checkpoint
    learner = cells(text, "root.learn.learner-0")
    assert learner[1:5] == ["failed", "0", "events/0", "250"] and "RuntimeError: boom" in text
    assert cells(text, "root.monitor")[1:5] == ["running", "2", "scores/0", "0"]
    assert "cluster 'demo' degraded" in text and "6/7 actors running" in text


def test_a_frame_shows_live_models_drift_learners_and_alerts():
    text = screen(render(snapshot()))
    v2 = cells(text, "production")
    assert v2[:4] == ["cancer", "v2", "production", "2"]
    assert v2[4:10] == ["1,000", "2.5", "41.2", "3.0%", "0", "0.930"]
    assert "1 of 2 features drifting (radius)" in text
    assert "no answers yet" in line_of(text, "previous")
    assert cells(text, " radius ")[-1] == "drifting" and "drifting" not in line_of(text, " area ")
    learner = line_of(text, "phishing")
    assert "Accuracy 0.8928" in learner and "ROCAUC 0.9507" in learner and "600" in learner
    alert = line_of(text, "p99 120 ms above")
    assert "latency" in alert and "critical" in alert and cells(text, "p99 120 ms above")[-1] == "v1"


def test_a_source_that_could_not_be_read_is_named_and_the_rest_still_shows():
    text = screen(render(snapshot(errors={"offsets": "KafkaConnectionError"}, end_offsets={})))
    assert "offsets unavailable: KafkaConnectionError" in text
    assert cells(text, "root.ingest.events-0")[4] == "—"                      # lag unknown, not zero


def test_an_empty_cluster_draws_every_panel_with_none():
    text = screen(render(Snapshot(taken_at=0.0)))
    for title in ("supervision tree", "live models", "drift", "online learners", "recent alerts"):
        assert title in text
    assert text.count(" none ") == 5


def test_on_a_short_screen_the_tree_scrolls_and_says_which_rows_it_shows():
    snap = snapshot()
    view = ViewState()
    text = screen(render(snap, view, height=28))
    assert len(text.splitlines()) <= 28
    assert "rows 1-" in text and "of 7" in text
    limits = scroll_limits((7, 2, 3, 1, 1), 28, view)
    scrolled = apply_key(apply_key(view, "end", limits), "down", limits)
    assert scrolled.scroll[0] == limits[0] > 0
    assert "root.learn.learner-0" in screen(render(snap, scrolled, height=28))


def test_zoom_shows_only_the_focused_panel():
    view = apply_key(apply_key(ViewState(), "5"), "z")
    text = screen(render(snapshot(), view, height=40))
    assert "recent alerts" in text and "supervision tree" not in text and "p99 120 ms above" in text


@pytest.mark.parametrize(("keys", "focus"), [(["tab"], 1), (["tab"] * 5, 0), (["left"], 4), (["4"], 3),
                                             (["shift-tab", "shift-tab"], 3), (["9"], 0)])
def test_keys_move_the_focus(keys, focus):
    view = ViewState()
    for key in keys:
        view = apply_key(view, key)
    assert view.focus == focus


def test_q_and_ctrl_c_quit_and_other_keys_change_nothing():
    assert apply_key(ViewState(), "q") is None and apply_key(ViewState(), "ctrl-c") is None
    assert apply_key(ViewState(), "x") == ViewState()


def test_terminal_sequences_decode_to_key_names():
    assert decode_keys("\x1b[A\x1b[B\x1b[5~\x1b[6~\x1b[Z\t3q") == ["up", "down", "pgup", "pgdn", "shift-tab", "tab",
                                                                   "3", "q"]
    assert decode_keys("\x1b[1;5Cq") == ["unknown", "q"]


def test_module_doctests_pass():
    for module in (client.console_view, client.console_snapshot, client.console_keys):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_cluster_status_text_lists_the_spare_processes_and_leaves_them_out_of_health():
    from client.console import render_text
    from client.status import SpareStatus

    status = ClusterStatus(cluster_name="c", state_dir="/s", state="running", healthy=True,
                           tree=supervisor("root", worker("root.outbox")),
                           spares=[SpareStatus(name="spare.1a", state="ready", pid=11),
                                   SpareStatus(name="spare.2b", state="starting", pid=12)])
    text = render_text(status)
    assert text.splitlines()[-1] == ("  spares (started ahead of a restart): spare.1a ready pid=11,"
                                     " spare.2b starting pid=12")
    assert [a.id for a in status.actors()] == ["root", "root.outbox"]     # not actors of the tree
    assert "spares" not in render_text(ClusterStatus(cluster_name="c", state_dir="/s", state="running",
                                                     healthy=True, tree=supervisor("root")))
