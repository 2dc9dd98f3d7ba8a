"""A learner partition's step, pure: the same records give the same state however they
are cut into steps (labels in events), bad events and labels are dead-lettered with
their reason while the rest is learned, duplicates are learned once, a better
challenger is promoted, drift is signalled."""

from __future__ import annotations

import doctest
import pickle
import random

import pytest
from river import datasets, evaluate, linear_model, metrics, preprocessing

import actors.learner_steps
from actors.learner_steps import PartitionState, apply_step
from messages.codec import decode, encode
from messages.stream import Observation, StreamEvent
from ml.learner_config import parse_learner_config
from ml.online_learning import EventRefused, OnlineLearner
from storage.kafka import Record

PHISHING = list(datasets.Phishing())
CONFIG = parse_learner_config('name = "phish"\nstream = "phishing"\nlabel = "label"\n'
                              '[model]\nalgorithm = "river.logistic_regression"\n')


def records(messages, start: int = 0) -> list[Record]:
    return [Record(start + i, b"k", encode(m)) for i, m in enumerate(messages)]


def phishing_events():
    return [StreamEvent(stream="phishing", entity_key="k", values={**x, "label": y}, produced_at=float(i))
            for i, (x, y) in enumerate(PHISHING)]


def test_module_doctests_pass():
    result = doctest.testmod(actors.learner_steps)
    assert result.attempted > 0 and result.failed == 0


def test_progressive_scores_equal_rivers_and_do_not_depend_on_step_boundaries():
    recs = records(phishing_events())
    whole = PartitionState()
    apply_step(whole, {"phish": (1, CONFIG)}, recs, [], partition=0)
    cut = PartitionState()
    rng = random.Random(3)
    at = 0
    while at < len(recs):
        n = rng.randint(1, 300)
        apply_step(cut, {"phish": (1, CONFIG)}, recs[at:at + n], [], partition=0)
        cut = pickle.loads(pickle.dumps(cut))          # a checkpoint between every step
        at += n
    reference = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    accuracy = evaluate.progressive_val_score(PHISHING, reference, metrics.Accuracy()).get()
    for state in (whole, cut):
        learner = state.learners["phish"][1]
        assert learner.champion.scores()["accuracy"] == accuracy
    xs = [x for x, _ in PHISHING]
    assert [whole.learners["phish"][1].answer(x) for x in xs] == [cut.learners["phish"][1].answer(x) for x in xs]
    assert whole.events_offset == cut.events_offset == len(recs)


def test_bad_events_are_dead_lettered_with_their_reason_and_the_rest_is_learned():
    config = parse_learner_config('name = "l"\nstream = "s"\nlabel = "y"\nfeatures = ["a", "b"]\n'
                                  '[model]\nalgorithm = "river.logistic_regression"\n')
    good = [StreamEvent(stream="s", entity_key="k", values={"a": 1.0, "b": 2.0, "y": True}) for _ in range(3)]
    bad = [
        StreamEvent(stream="s", entity_key="k", values={"a": 1.0, "y": True}),                 # missing b
        StreamEvent(stream="s", entity_key="k", values={"a": "red", "b": 1.0, "y": True}),     # wrong type
        StreamEvent(stream="s", entity_key="k", values={"a": 1.0, "b": float("inf"), "y": True}),  # JSON: null
        StreamEvent(stream="s", entity_key="k", values={"a": 1.0, "b": 2.0, "y": "maybe"}),    # not a binary label
    ]
    raw = records([good[0], *bad, good[1], good[1], good[2]])   # good[1] twice: a producer's duplicate
    raw.insert(2, Record(len(raw), b"k", b"{not json"))          # stream ingestion dead-letters this one
    state = PartitionState()
    out = apply_step(state, {"l": (1, config)}, raw, [], partition=0)
    report = state.learners["l"][1].report()
    assert (report["n_learned"], report["n_refused"], report["n_duplicates"]) == (3, 4, 1)
    reasons = sorted(d.error for d in out.dead_letters)
    assert len(reasons) == 4
    assert sum("values.b: missing" in r for r in reasons) == 2
    assert any("values.a: a finite number; got str" in r for r in reasons)
    assert any("label:" in r and "maybe" in r for r in reasons)


def test_delayed_labels_unknown_ids_and_streams_without_a_learner():
    config = parse_learner_config('name = "l"\nstream = "s"\n[model]\nalgorithm = "river.logistic_regression"\n')
    events = [StreamEvent(stream="s", entity_key="k", values={"x": float(i % 2)}, msg_id=f"e{i}") for i in range(20)]
    labels = [Observation(stream="s", event_id=f"e{i}", entity_key="k", label=bool(i % 2)) for i in range(20)]
    strays = [Observation(stream="s", event_id="never-seen", entity_key="k", label=True),
              Observation(stream="nobody", event_id="e1", entity_key="k", label=True),
              Observation(stream="s", event_id="e1", entity_key="k", label=True)]        # judged already
    state = PartitionState()
    apply_step(state, {"l": (1, config)}, records(events), [], partition=0)
    assert state.learners["l"][1].report()["n_pending"] == 20
    out = apply_step(state, {"l": (1, config)}, [], records(labels + strays), partition=0)
    report = state.learners["l"][1].report()
    assert (report["n_learned"], report["n_pending"], report["n_unknown_labels"], report["n_parked"]) == (20, 0, 1, 1)
    errors = [d.error for d in out.dead_letters]
    assert len(errors) == 2
    assert any("no prediction of learner l waits for 'e1'" in e for e in errors)
    assert any("no learner learns 'nobody'" in e for e in errors)
    assert state.observations_offset == 23
    # The label of an event not seen yet waits for it; past its wait it is unknown and dead-lettered.
    later = StreamEvent(stream="s", entity_key="k", values={"x": 1.0}, produced_at=strays[0].produced_at + 60)
    out = apply_step(state, {"l": (1, config)}, records([later], 20), [], partition=0)
    report = state.learners["l"][1].report()
    assert (report["n_unknown_labels"], report["n_parked"]) == (2, 0)
    assert [d.source_offset for d in out.dead_letters] == [20]
    assert "saw no event 'never-seen'" in out.dead_letters[0].error


def test_a_label_that_arrives_before_its_event_is_applied_when_the_event_comes():
    config = parse_learner_config('name = "l"\nstream = "s"\n[model]\nalgorithm = "river.logistic_regression"\n')
    event = StreamEvent(stream="s", entity_key="k", values={"x": 1.0}, msg_id="first")
    label = Observation(stream="s", event_id="first", entity_key="k", label=True)
    state = PartitionState()
    apply_step(state, {"l": (1, config)}, [], records([label]), partition=0)       # the label's topic was ahead
    apply_step(state, {"l": (1, config)}, records([event]), [], partition=0)
    report = state.learners["l"][1].report()
    assert (report["n_learned"], report["n_parked"], report["n_unknown_labels"]) == (1, 0, 0)


def test_a_better_challenger_is_promoted_with_an_event_and_an_audit_record():
    config = parse_learner_config(
        'name = "cc"\nstream = "s"\nlabel = "y"\n[model]\nalgorithm = "river.logistic_regression"\n'
        'params = { lr = 1e-9, intercept_lr = 0.0 }\n[challenger]\nalgorithm = "river.logistic_regression"\n'
        '[promotion]\nwindow = 100\nmargin = 0.05\n')
    rng = random.Random(0)
    events = []
    for i in range(400):
        x = rng.uniform(-1, 1)
        events.append(StreamEvent(stream="s", entity_key="k", values={"x": x, "y": x > 0.3}))
    state = PartitionState()
    out = apply_step(state, {"cc": (1, config)}, records(events), [], partition=0)
    learner = state.learners["cc"][1]
    promoted = [decode(payload) for topic, _, payload, _ in out.outbox if b"learner.promoted" in payload]
    assert learner.n_promotions >= 1 and promoted
    assert promoted[0].champion_score > promoted[0].demoted_score + 0.05
    assert learner.champion.model.__class__.__name__ == "Pipeline"
    assert out.audit and out.audit[0][1] == "learner.promoted" and out.audit[0][2] == "cc"
    # The promoted model answers: it learned every event of the stream.
    assert learner.report()["n_learned"] == 400


def test_drift_on_a_flipped_concept_is_signalled_once_per_detection():
    config = parse_learner_config('name = "d"\nstream = "s"\nlabel = "y"\n'
                                  '[model]\nalgorithm = "river.logistic_regression"\n')
    rng = random.Random(1)
    events = []
    for i in range(4000):
        x = rng.uniform(-1, 1)
        events.append(StreamEvent(stream="s", entity_key="k", values={"x": x, "y": (x > 0) == (i < 2000)}))
    state = PartitionState()
    out = apply_step(state, {"d": (1, config)}, records(events), [], partition=0)
    drifts = [decode(payload) for _, _, payload, _ in out.outbox if b"drift.detected" in payload]
    assert drifts and all(d.offset >= 2000 for d in drifts)
    assert len({key for *_, key in out.outbox}) == len(out.outbox)     # replay-safe dedup keys
    again = apply_step(PartitionState(), {"d": (1, config)}, records(events), [], partition=0)
    assert [m[2] for m in again.outbox] == [m[2] for m in out.outbox]   # same ids on a replay


def test_a_new_revision_starts_afresh_and_a_removed_learner_is_dropped():
    state = PartitionState()
    recs = records(phishing_events()[:100])
    apply_step(state, {"phish": (1, CONFIG)}, recs, [], partition=0)
    apply_step(state, {"phish": (2, CONFIG)}, records(phishing_events()[100:110], 100), [], partition=0)
    assert state.learners["phish"][0] == 2 and state.learners["phish"][1].report()["n_learned"] == 10
    apply_step(state, {}, [], [], partition=0)
    assert state.learners == {}


def test_serving_answers_refuse_missing_features():
    config = parse_learner_config('name = "l"\nstream = "s"\nfeatures = ["a"]\n'
                                  '[model]\nalgorithm = "river.logistic_regression"\n')
    learner = OnlineLearner(config)
    with pytest.raises(EventRefused) as caught:
        learner.answer({"b": 1.0})
    assert caught.value.field == "values.a"
    assert learner.answer({"a": 1.0})["label"] in (None, "False", "True")


def test_entity_aggregates_are_features_from_the_entitys_earlier_events():
    config = parse_learner_config('name = "agg"\nstream = "s"\nlabel = "y"\nentity_aggregates = ["amount"]\n'
                                  '[model]\nalgorithm = "river.logistic_regression"\n')
    rng = random.Random(2)
    events = []
    for i in range(3000):      # big spenders (a high mean over their history) are the positives
        entity = f"u{i % 40}"
        rich = (i % 40) < 20
        amount = rng.gauss(100 if rich else 10, 30)
        events.append(StreamEvent(stream="s", entity_key=entity, values={"amount": amount, "y": rich}))
    state = PartitionState()
    apply_step(state, {"agg": (1, config)}, records(events), [], partition=0)
    learner = state.learners["agg"][1]
    assert learner.entities["u0"]["amount"][0] == 75          # 3000 / 40 events each
    x = learner.with_aggregates({"amount": 50.0}, "u1")
    assert x["amount__entity_n"] == 75 and x["amount__entity_mean"] == pytest.approx(
        learner.entities["u1"]["amount"][1] / 75)
    assert learner.answer({"amount": 50.0}, "u1")["label"] == "True"     # its history says rich
    assert learner.answer({"amount": 50.0}, "u39")["label"] == "False"
    assert learner.champion.scores()["accuracy"] > 0.9
    replayed = PartitionState()
    for at in range(0, 3000, 700):
        apply_step(replayed, {"agg": (1, config)}, records(events[at:at + 700], at), [], partition=0)
    assert replayed.learners["agg"][1].entities == learner.entities


def test_an_int_beyond_the_float_range_is_refused_or_left_out_and_the_step_goes_on():
    """JSON allows a 401-digit int; no model's arithmetic takes it (it raised OverflowError,
    which failed the whole step again on every replay)."""
    named = parse_learner_config('name = "named"\nstream = "s"\nlabel = "y"\nfeatures = ["a", "b"]\n'
                                 '[model]\nalgorithm = "river.logistic_regression"\n')
    any_number = parse_learner_config('name = "any"\nstream = "s"\nlabel = "y"\n'
                                      '[model]\nalgorithm = "river.logistic_regression"\n')
    huge = StreamEvent(stream="s", entity_key="k", values={"a": 1.0, "b": 10**400, "y": True})
    fine = StreamEvent(stream="s", entity_key="k", values={"a": 2.0, "b": 3, "y": False})
    state = PartitionState()
    out = apply_step(state, {"named": (1, named), "any": (1, any_number)}, records([huge, fine]), [], partition=0)
    named_report, any_report = (state.learners[n][1].report() for n in ("named", "any"))
    assert (named_report["n_learned"], named_report["n_refused"]) == (1, 1)
    assert [d.error for d in out.dead_letters] == [
        "learner named: values.b: a finite number; got an int beyond the float range"]
    assert (any_report["n_learned"], any_report["n_refused"]) == (2, 0)     # learned from "a" alone


def test_the_learner_partitions_doctests_pass():
    """Among them: a replay's records, read in one pass, cut at each journalled step's ends."""
    import doctest

    import actors.learner

    results = doctest.testmod(actors.learner)
    assert results.attempted >= 2 and results.failed == 0
