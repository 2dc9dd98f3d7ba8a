"""Unit tests of supervision as data and pure functions: specs, strategies, restart window, backoff."""

from __future__ import annotations

import doctest
import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import actors.worker
import supervisors.children
import supervisors.intensity
import supervisors.spec
import supervisors.strategy
import supervisors.tree
from supervisors.intensity import backoff_delay, record_restart
from supervisors.children import ChildRecord
from supervisors.spec import ChildSpec, HostSpec, Restart, Strategy, SupervisorFlags, SupervisorSpec
from supervisors.strategy import should_restart, to_restart
from supervisors.tree import not_running, summarize, tree_healthy

ORDER = ["a", "b", "c", "d"]


# --- strategies -----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy, failed, expected", [
    (Strategy.ONE_FOR_ONE, "a", ["a"]),
    (Strategy.ONE_FOR_ONE, "b", ["b"]),
    (Strategy.ONE_FOR_ONE, "d", ["d"]),
    (Strategy.ONE_FOR_ALL, "a", ORDER),
    (Strategy.ONE_FOR_ALL, "c", ORDER),
    (Strategy.ONE_FOR_ALL, "d", ORDER),
    (Strategy.REST_FOR_ONE, "a", ORDER),
    (Strategy.REST_FOR_ONE, "b", ["b", "c", "d"]),
    (Strategy.REST_FOR_ONE, "d", ["d"]),
])
def test_to_restart(strategy, failed, expected):
    assert to_restart(strategy, ORDER, failed) == expected


@pytest.mark.parametrize("strategy", list(Strategy))
def test_to_restart_single_child(strategy):
    assert to_restart(strategy, ["only"], "only") == ["only"]


@pytest.mark.parametrize("strategy", list(Strategy))
def test_to_restart_unknown_child_raises_key_error(strategy):
    with pytest.raises(KeyError):
        to_restart(strategy, ORDER, "zzz")
    with pytest.raises(KeyError):
        to_restart(strategy, [], "a")


@pytest.mark.parametrize("strategy", list(Strategy))
def test_to_restart_returns_a_fresh_list_in_start_order(strategy):
    order = tuple(ORDER)
    out = to_restart(strategy, order, "b")
    assert isinstance(out, list)
    out.append("mutated")
    assert order == tuple(ORDER)
    assert to_restart(strategy, order, "b") == sorted(to_restart(strategy, order, "b"), key=ORDER.index)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=12, unique=True), st.data())
def test_to_restart_properties(order, data):
    failed = data.draw(st.sampled_from(order))
    one = to_restart(Strategy.ONE_FOR_ONE, order, failed)
    rest = to_restart(Strategy.REST_FOR_ONE, order, failed)
    every = to_restart(Strategy.ONE_FOR_ALL, order, failed)
    assert one == [failed]
    assert every == order
    assert rest[0] == failed and rest == order[order.index(failed):]
    assert set(one) <= set(rest) <= set(every)


def test_plain_string_strategy_and_restart_values_behave_like_the_enums():
    flags = SupervisorFlags(strategy="one_for_all")  # type: ignore[arg-type]
    child = ChildSpec(id="c", factory="m:C", restart="permanent")  # type: ignore[arg-type]
    assert to_restart(flags.strategy, ORDER, "b") == ORDER
    assert should_restart(child.restart, abnormal=True) is True


# --- restart types ----------------------------------------------------------------------------


@pytest.mark.parametrize("restart, abnormal, expected", [
    (Restart.PERMANENT, True, True),
    (Restart.PERMANENT, False, True),
    (Restart.TRANSIENT, True, True),
    (Restart.TRANSIENT, False, False),
    (Restart.TEMPORARY, True, False),
    (Restart.TEMPORARY, False, False),
])
def test_should_restart_table(restart, abnormal, expected):
    assert should_restart(restart, abnormal=abnormal) is expected


# --- restart-intensity window -----------------------------------------------------------------


def test_first_restart_is_within_intensity():
    assert record_restart([], now=100.0, intensity=1, period_s=10) == ([100.0], False)


def test_intensity_zero_means_the_first_restart_escalates():
    assert record_restart([], now=5.0, intensity=0, period_s=10) == ([5.0], True)


def test_exceeded_exactly_when_count_is_above_intensity():
    times: list[float] = []
    results = []
    for t in range(5):
        times, exceeded = record_restart(times, now=float(t), intensity=3, period_s=100)
        results.append((len(times), exceeded))
    assert results == [(1, False), (2, False), (3, False), (4, True), (5, True)]


def test_old_restarts_are_dropped():
    window, exceeded = record_restart([0.0, 1.0, 2.0, 15.0], now=20.0, intensity=2, period_s=10)
    assert window == [15.0, 20.0]
    assert exceeded is False


def test_restart_just_inside_the_window_counts():
    window, exceeded = record_restart([10.000001], now=20.0, intensity=1, period_s=10)
    assert window == [10.000001, 20.0] and exceeded is True


def test_restart_beyond_the_window_is_dropped():
    window, exceeded = record_restart([9.999999], now=20.0, intensity=1, period_s=10)
    assert window == [20.0] and exceeded is False


def test_restart_exactly_at_the_window_edge_counts_like_otp():
    window, exceeded = record_restart([10.0], now=20.0, intensity=1, period_s=10)
    assert window == [10.0, 20.0] and exceeded is True


def test_record_restart_does_not_mutate_its_input():
    times = [1.0, 2.0]
    record_restart(times, now=3.0, intensity=5, period_s=10)
    record_restart(tuple(times), now=3.0, intensity=5, period_s=10)
    assert times == [1.0, 2.0]


def test_window_recovers_after_a_quiet_period():
    times: list[float] = []
    for t in (0.0, 0.1, 0.2):
        times, exceeded = record_restart(times, now=t, intensity=2, period_s=1)
    assert exceeded
    times, exceeded = record_restart(times, now=5.0, intensity=2, period_s=1)
    assert (times, exceeded) == ([5.0], False)


increasing_times = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=30).map(sorted)


@settings(max_examples=200, deadline=None)
@given(increasing_times, st.floats(min_value=0.001, max_value=1e4), st.integers(0, 20))
def test_window_properties(times, period_s, intensity):
    window: list[float] = []
    previous_len = 0
    for now in times:
        before = list(window)
        window, exceeded = record_restart(window, now=now, intensity=intensity, period_s=period_s)
        assert window[-1] == now
        assert all(now - t <= period_s for t in window[:-1])
        # Only entries from the previous window survive, in order, and only the oldest ones are dropped.
        assert window[:-1] == before[len(before) - (len(window) - 1):]
        assert len(window) <= previous_len + 1
        assert exceeded == (len(window) > intensity)
        previous_len = len(window)


@settings(max_examples=200, deadline=None)
@given(increasing_times, st.floats(min_value=0.001, max_value=1e4), st.floats(min_value=0.001, max_value=1e4))
def test_a_longer_period_never_keeps_fewer_restarts(times, period_a, period_b):
    short, long = sorted((period_a, period_b))
    w_short: list[float] = []
    w_long: list[float] = []
    for now in times:
        w_short, _ = record_restart(w_short, now=now, intensity=5, period_s=short)
        w_long, _ = record_restart(w_long, now=now, intensity=5, period_s=long)
        assert len(w_short) <= len(w_long)


# --- backoff ----------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [0, -1, -100])
def test_attempt_zero_or_less_is_immediate(attempt):
    assert backoff_delay(attempt, base_s=0.5, max_s=10.0) == 0.0
    assert backoff_delay(attempt, base_s=0.5, max_s=10.0, jitter=0.9, rng=random.Random(1)) == 0.0


def test_backoff_doubles_then_caps():
    delays = [backoff_delay(n, base_s=0.1, max_s=1.0, jitter=0.0) for n in range(8)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_backoff_with_zero_base_is_zero():
    assert all(backoff_delay(n, base_s=0.0, max_s=5.0, jitter=0.5, rng=random.Random(n)) == 0.0 for n in range(10))


def test_jitter_is_deterministic_with_a_seeded_rng():
    a = [backoff_delay(n, 0.1, 5.0, jitter=0.3, rng=random.Random(42)) for n in range(1, 10)]
    b = [backoff_delay(n, 0.1, 5.0, jitter=0.3, rng=random.Random(42)) for n in range(1, 10)]
    c = [backoff_delay(n, 0.1, 5.0, jitter=0.3, rng=random.Random(43)) for n in range(1, 10)]
    assert a == b
    assert a != c


def test_jitter_spreads_delays():
    rng = random.Random(7)
    delays = {backoff_delay(3, base_s=1.0, max_s=100.0, jitter=0.2, rng=rng) for _ in range(50)}
    assert len(delays) > 40
    assert all(3.2 <= d <= 4.8 for d in delays)


def test_jitter_at_the_cap_stays_at_or_below_the_cap():
    rng = random.Random(3)
    delays = [backoff_delay(20, base_s=1.0, max_s=2.0, jitter=0.5, rng=rng) for _ in range(100)]
    assert all(1.0 <= d <= 2.0 for d in delays)


def test_large_jitter_never_goes_negative():
    rng = random.Random(0)
    assert all(backoff_delay(2, 1.0, 10.0, jitter=3.0, rng=rng) >= 0.0 for _ in range(200))


@settings(max_examples=200, deadline=None)
@given(attempt=st.integers(-5, 1000), base_s=st.floats(0, 10), max_s=st.floats(0.001, 100),
       jitter=st.floats(0, 1), seed=st.integers(0, 2 ** 32))
def test_backoff_bounds(attempt, base_s, max_s, jitter, seed):
    delay = backoff_delay(attempt, base_s, max_s, jitter=jitter, rng=random.Random(seed))
    assert 0.0 <= delay <= max_s
    if attempt <= 0:
        assert delay == 0.0
    else:
        nominal = min(max_s, base_s * 2.0 ** min(attempt - 1, 1000))
        assert nominal * (1 - jitter) - 1e-9 <= delay <= nominal * (1 + jitter) + 1e-9
    assert delay == backoff_delay(attempt, base_s, max_s, jitter=jitter, rng=random.Random(seed))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 60), st.floats(0.001, 1.0), st.floats(0.01, 100))
def test_backoff_without_jitter_is_monotonic(attempt, base_s, max_s):
    assert backoff_delay(attempt, base_s, max_s, jitter=0.0) <= backoff_delay(attempt + 1, base_s, max_s, jitter=0.0)


def test_backoff_for_a_very_late_attempt_is_the_cap():
    assert backoff_delay(1100, base_s=0.05, max_s=5.0, jitter=0.0) == 5.0


# --- specs ----------------------------------------------------------------------------------


def sample_tree() -> SupervisorSpec:
    flags = SupervisorFlags(strategy=Strategy.REST_FOR_ONE, intensity=3, period_s=10.0, backoff_base_s=0.1)
    ingest = SupervisorSpec(id="ingest", flags=SupervisorFlags(strategy=Strategy.ONE_FOR_ALL), children=(
        ChildSpec(id="events-0", factory="actors.stream_ingest:StreamIngestWorker", args={"partition": 0}),
        ChildSpec(id="events-1", factory="actors.stream_ingest:StreamIngestWorker", args={"partition": 1},
                  restart=Restart.TRANSIENT, num_cpus=0.5),
    ))
    outbox = ChildSpec(id="outbox", factory="actors.outbox_relay:OutboxRelay", restart=Restart.TEMPORARY)
    light = HostSpec(id="light", children=(ChildSpec(id="scheduler", factory="actors.scheduler:Scheduler"),
                                           ChildSpec(id="scores", factory="actors.score_recorder:ScoreRecorder")))
    return SupervisorSpec(id="root", flags=flags, children=(outbox, ingest, light))


def test_spec_defaults():
    child = ChildSpec(id="w", factory="m:C")
    assert (child.args, child.restart, child.num_cpus) == ({}, Restart.PERMANENT, 0)
    flags = SupervisorFlags()
    assert (flags.strategy, flags.intensity, flags.period_s) == (Strategy.ONE_FOR_ONE, 5, 30.0)
    assert SupervisorSpec(id="r").children == ()


def test_child_lookup():
    tree = sample_tree()
    assert tree.child("outbox").restart is Restart.TEMPORARY
    assert isinstance(tree.child("ingest"), SupervisorSpec)
    with pytest.raises(KeyError):
        tree.child("events-0")  # a grandchild is not a child


@pytest.mark.parametrize("spec", [ChildSpec(id="w", factory="m:C"), SupervisorFlags(), SupervisorSpec(id="r")],
                         ids=lambda s: type(s).__name__)
def test_specs_are_frozen(spec):
    name = next(iter(type(spec).__struct_fields__))
    with pytest.raises(AttributeError):
        setattr(spec, name, getattr(spec, name))


def test_specs_are_hashable_values():
    assert SupervisorFlags() == SupervisorFlags()
    assert hash(SupervisorFlags(intensity=2)) == hash(SupervisorFlags(intensity=2))


def test_specs_encode_to_plain_json():
    data = msgspec.json.decode(msgspec.json.encode(sample_tree()))
    assert data["flags"]["strategy"] == "rest_for_one"
    assert data["children"][0]["restart"] == "temporary"
    assert data["children"][1]["children"][1]["args"] == {"partition": 1}


@pytest.mark.parametrize("spec", [ChildSpec(id="w", factory="m:C", args={"a": [1, "x"]}, restart=Restart.TRANSIENT),
                                  SupervisorFlags(strategy=Strategy.ONE_FOR_ALL, intensity=0, period_s=2.5)],
                         ids=lambda s: type(s).__name__)
def test_flat_specs_round_trip(spec):
    back = msgspec.json.decode(msgspec.json.encode(spec), type=type(spec))
    assert back == spec
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(spec), type=type(spec)) == spec


def test_decoded_enums_are_enum_members():
    child = msgspec.json.decode(b'{"id":"w","factory":"m:C","restart":"transient"}', type=ChildSpec)
    assert child.restart is Restart.TRANSIENT
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"id":"w","factory":"m:C","restart":"sometimes"}', type=ChildSpec)


def test_supervisor_spec_round_trips_through_msgspec():
    tree = sample_tree()
    assert msgspec.json.decode(msgspec.json.encode(tree), type=SupervisorSpec) == tree


# --- the tree's status, as the start reports it ----------------------------------------------


def _status(scorer_state: str, error: str = "") -> dict:
    return {"id": "root", "state": "running", "children": [
        {"id": "root.outbox", "state": "running"},
        {"id": "root.score-batch", "state": "running", "children": [
            {"id": "root.score-batch.coordinator", "state": "running"},
            {"id": "root.score-batch.scorer-0", "state": scorer_state, "error": error}]}]}


def test_a_start_that_runs_late_names_the_actors_still_waiting_and_why():
    status = _status("failed", "ConnectionRefusedError: " + "x" * 500)
    assert summarize(status) == "4/5 actors running"
    assert not tree_healthy(status)
    [late] = not_running(status)
    assert late.startswith("root.score-batch.scorer-0 (failed: ConnectionRefusedError: ")
    assert len(late) < 260     # a long error is cut, not pasted whole into the message


# --- light workers sharing a process -----------------------------------------------------------


def test_a_hosts_workers_show_as_its_children_with_their_own_beats_and_its_pid():
    light = sample_tree().child("light")
    record = ChildRecord(light, "root.light", state="running", n_restarts=2, last_beat={
        "state": "running", "error": "", "pid": 41, "workers": {
            "scheduler": {"state": "running", "error": "", "pid": 41, "n_processed": 3},
            "scores": {"state": "running", "error": "", "pid": 41, "n_processed": 7, "topic": "score.recorded",
                       "partition": 0, "offset": 9}}})
    status = record.status()
    assert (status["id"], status["kind"], status["pid"]) == ("root.light", "host", 41)
    assert [(c["id"], c["kind"], c["pid"], c["n_processed"], c["n_restarts"]) for c in status["children"]] == [
        ("root.scheduler", "worker", 41, 3, 2), ("root.scores", "worker", 41, 7, 2)]
    assert status["children"][1]["offset"] == 9
    assert tree_healthy({"id": "root", "state": "running", "children": [status]})


def test_the_workers_of_a_host_that_is_not_running_show_its_state_and_keep_it_unhealthy():
    light = sample_tree().child("light")
    record = ChildRecord(light, "root.light", state="starting", last_beat={})
    status = record.status()
    assert [(c["id"], c["state"]) for c in status["children"]] == [("root.scheduler", "starting"),
                                                                   ("root.scores", "starting")]
    assert not_running({"id": "root", "state": "running", "children": [status]}) == [
        "root.light (starting)", "root.scheduler (starting)", "root.scores (starting)"]


def test_the_cluster_tree_hosts_only_its_light_workers_together_and_every_id_is_unique():
    from storage.settings import load_settings
    from supervisors.tree import cluster_tree

    tree = cluster_tree(load_settings(None, {}))
    [light] = [c for c in tree.children if isinstance(c, HostSpec)]
    assert [c.id for c in light.children] == ["join", "scheduler", "train", "train-trigger", "scores"]
    assert "outbox" in [c.id for c in tree.children]     # every event passes the relay: it restarts alone

    def ids(node, prefix):
        for child in node.children:
            yield f"{prefix}.{child.id}"
            if isinstance(child, SupervisorSpec):
                yield from ids(child, f"{prefix}.{child.id}")
            elif isinstance(child, HostSpec):    # a host's workers are named beside it
                yield from (f"{prefix}.{w.id}" for w in child.children)

    found = list(ids(tree, "root"))
    assert len(found) == len(set(found))


def test_every_supervisor_of_the_tree_watches_with_the_configured_checks():
    from storage.settings import load_settings
    from supervisors.tree import cluster_tree

    tree = cluster_tree(load_settings(None, {"CONVEYOR_N_CHECKS_PER_PING": "7", "CONVEYOR_HEARTBEAT_INTERVAL_S": "0.25"}))
    supervisors = [tree, *(c for c in tree.children if isinstance(c, SupervisorSpec))]
    assert len(supervisors) > 1
    assert {(s.flags.n_checks_per_ping, s.flags.heartbeat_interval_s) for s in supervisors} == {(7, 0.25)}
    assert SupervisorFlags().n_checks_per_ping == 4


def test_a_healthy_tree_has_nobody_waiting():
    status = _status("running")
    assert tree_healthy(status) and not_running(status) == [] and summarize(status) == "5/5 actors running"


# --- doctests -----------------------------------------------------------------------------


@pytest.mark.parametrize("module", [supervisors.spec, supervisors.strategy, supervisors.intensity,
                                     supervisors.tree, supervisors.children, actors.worker],
                         ids=lambda m: m.__name__)
def test_module_doctests_pass(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
