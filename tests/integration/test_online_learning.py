"""Online learning against a real cluster: River's Phishing streamed through the broker
is learned with exactly River's progressive accuracy, also when the learner is killed
twice mid-stream; labels that come later, bad events and labels, drift, promotion,
and serving from the live learner (and its baseline when it is late)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from river import datasets, evaluate, linear_model, metrics, preprocessing

from messages.stream import Observation, StreamEvent
from tests.integration.test_log_chain import _lines_mentioning
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PHISHING = list(datasets.Phishing())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def learner_toml(name: str, stream: str, extra: str = "", model: str = "river.logistic_regression") -> str:
    return f'name = "{name}"\nstream = "{stream}"\n{extra}\n[model]\nalgorithm = "{model}"\n'


def phishing_events(stream: str, key: str = "one-entity") -> list[StreamEvent]:
    return [StreamEvent(stream=stream, entity_key=key, values={**x, "label": y}) for x, y in PHISHING]


def reference():
    """River alone on the same data: the progressive scores and the final model."""
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    accuracy = evaluate.progressive_val_score(PHISHING, model, metrics.Accuracy()).get()
    auc = evaluate.progressive_val_score(PHISHING, preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                                         metrics.ROCAUC()).get()
    return accuracy, auc, model


async def learner_actor(conveyor, key: str):
    from client.learning import partition_of

    partition = partition_of(key, await conveyor.learner_partitions())
    return partition, (await conveyor.status()).actor(f"root.learn.learner-{partition}")


async def _key_of_another_partition(conveyor, partition: int) -> str | None:
    """An entity key whose events go to a partition other than ``partition`` (None with one partition)."""
    from client.learning import partition_of

    n = await conveyor.learner_partitions()
    return next((f"other-{i}" for i in range(1000) if partition_of(f"other-{i}", n) != partition), None) if n > 1 else None


async def predictions(conveyor, name: str, partition: int) -> list[dict]:
    from actors.remote import RayRuntime

    handle = RayRuntime(conveyor.settings.cluster_name).lookup(f"root.learn.learner-{partition}")
    answers = await handle.request.remote("predict_many", name, [x for x, _ in PHISHING])
    return [{"label": a["label"], "score": a["score"]} for a in answers]


async def test_phishing_through_the_broker_scores_exactly_like_river(conveyor):
    name, stream = unique("phish"), unique("phishing")
    made = await conveyor.create_learner(learner_toml(name, stream, 'label = "label"'))
    assert made["revision"] == 1 and made["task"] == "classification"
    await conveyor.submit_many(phishing_events(stream))
    report = await conveyor.wait_learned(name, len(PHISHING), timeout_s=120)
    accuracy, auc, model = reference()
    partition = (await learner_actor(conveyor, "one-entity"))[0]
    part = report[partition]
    assert part["scores"] == {"accuracy": accuracy, "roc_auc": auc}      # exactly, not approximately
    assert (part["n_predicted"], part["n_learned"], part["n_duplicates"], part["n_refused"]) == (1250, 1250, 0, 0)
    answers = await predictions(conveyor, name, partition)
    assert [a["label"] for a in answers] == [str(model.predict_one(x)) for x, _ in PHISHING]
    assert [a["score"] for a in answers] == [model.predict_proba_one(x)[True] for x, _ in PHISHING]


async def test_killed_twice_mid_stream_the_learner_ends_exactly_where_an_uninterrupted_one_does(conveyor, db):
    name, stream, key = unique("phishk"), unique("phishingk"), "killed-entity"
    await conveyor.create_learner(learner_toml(name, stream, 'label = "label"'))
    partition, first = await learner_actor(conveyor, key)
    events = phishing_events(stream, key)
    kills = []
    sent = 0
    for upto in (350, 800):   # each kill after a checkpoint and journalled steps after it, mid-stream
        version = await db.fetchval("SELECT max(version) FROM checkpoints WHERE owner = $1",
                                    f"learner/events/{partition}") or 0
        await conveyor.submit_many(events[sent:upto])
        await conveyor.wait_learned(name, upto, timeout_s=120)
        await eventually(lambda: _newer_checkpoint(db, partition, version), timeout_s=60, what="a new checkpoint")
        await conveyor.submit_many(events[upto:upto + 100])
        await conveyor.wait_learned(name, upto + 100, timeout_s=120)
        actor = (await conveyor.status()).actor(f"root.learn.learner-{partition}")
        os.kill(actor.pid, signal.SIGKILL)
        kills.append(actor.pid)
        await conveyor.submit_many(events[upto + 100:upto + 150])     # arrive while it is down
        sent = upto + 150
        await eventually(lambda: _restarted(conveyor, partition, actor), timeout_s=60, what="learner restarted")
    await conveyor.submit_many(events[sent:])
    report = await conveyor.wait_learned(name, len(PHISHING), timeout_s=120)
    accuracy, auc, model = reference()
    part = report[partition]
    assert part["scores"] == {"accuracy": accuracy, "roc_auc": auc}
    assert (part["n_predicted"], part["n_learned"]) == (1250, 1250)
    answers = await predictions(conveyor, name, partition)
    assert [a["label"] for a in answers] == [str(model.predict_one(x)) for x, _ in PHISHING]
    assert [a["score"] for a in answers] == [model.predict_proba_one(x)[True] for x, _ in PHISHING]
    final = (await conveyor.status()).actor(f"root.learn.learner-{partition}")
    assert final.n_restarts >= first.n_restarts + 2 and final.pid not in kills


async def _newer_checkpoint(db, partition, version):
    newest = await db.fetchval("SELECT max(version) FROM checkpoints WHERE owner = $1", f"learner/events/{partition}")
    return newest if newest and newest > version else None


async def _restarted(conveyor, partition, before):
    now = (await conveyor.status()).actor(f"root.learn.learner-{partition}")
    return now if now.state == "running" and now.pid != before.pid else None


async def test_labels_that_come_later_bad_input_and_duplicates_and_the_stream_goes_on(conveyor, db):
    name, stream, key = unique("late"), unique("latestream"), "late-entity"
    await conveyor.create_learner(learner_toml(name, stream, 'features = ["a", "b"]'))
    events = [StreamEvent(stream=stream, entity_key=key, values={"a": float(i % 7), "b": float(i % 3)})
              for i in range(300)]
    bad = [StreamEvent(stream=stream, entity_key=key, values={"a": 1.0}),
           StreamEvent(stream=stream, entity_key=key, values={"a": "x'); DROP TABLE learners;--", "b": 1.0})]
    labels = [Observation(stream=stream, event_id=e.msg_id, entity_key=key, label=(i % 7) > 3)
              for i, e in enumerate(events)]
    strays = [Observation(stream=stream, event_id="no-such-event", entity_key=key, label=True,
                          produced_at=time.time() - 60),      # waited long enough for its event: unknown
              Observation(stream=unique("nolearner"), event_id=events[0].msg_id, entity_key=key, label=True),
              Observation(stream=stream, event_id=events[1].msg_id, entity_key=key, label="yes")]
    partition = (await learner_actor(conveyor, key))[0]
    for at in range(0, 300, 50):        # each chunk's labels come after its events
        chunk = events[at:at + 50] + (bad + [events[10]] if at == 150 else [])   # events[10] sent twice
        await conveyor.submit_many(chunk)
        await conveyor.submit_many(labels[at:at + 50] + (strays if at == 0 else []))
    await conveyor.submit_raw("observations", b'{"type": "stream.observation", "stream": "s"}', key.encode(),
                              partition=partition)
    report = await conveyor.wait_learned(name, 300, timeout_s=120)
    part = report[partition]
    assert (part["n_learned"], part["n_pending"], part["n_duplicates"]) == (300, 0, 1)
    assert (part["n_refused"], part["n_unknown_labels"]) == (3, 1)   # 2 events + 1 label refused; 1 unknown id
    from actors.remote import RayRuntime

    handle = RayRuntime(conveyor.settings.cluster_name).lookup(f"root.learn.learner-{partition}")
    learned = await handle.request.remote("predict_many", name, [{"a": 6.0, "b": 0.0}, {"a": 0.0, "b": 0.0}])
    assert [a["label"] for a in learned] == ["True", "False"]
    expected = ["values.b: missing", "values.a: a finite number; got str", "no-such-event", "no learner learns",
                "missing required field"]

    async def dead_lettered():
        rows = await db.fetch("SELECT error FROM dead_letters WHERE topic IN ('events', 'observations')"
                              " AND partition = $1 AND received_at > now() - interval '10 minutes'", partition)
        found = [e for e in expected if any(e in r["error"] for r in rows)]
        return found if found == expected else None

    await eventually(dead_lettered, timeout_s=30, what="every refusal dead-lettered with its reason")
    assert await db.fetchval("SELECT count(*) FROM learners") > 0      # the hostile value was only data


async def test_drift_is_announced_and_a_better_challenger_is_promoted_with_an_audit_record(cluster, conveyor, db):
    import random

    name, stream, key = unique("flip"), unique("flipstream"), "flip-entity"
    await conveyor.create_learner(
        f'name = "{name}"\nstream = "{stream}"\nlabel = "y"\n[model]\nalgorithm = "river.logistic_regression"\n'
        'params = { lr = 1e-9, intercept_lr = 0.0 }\n[challenger]\nalgorithm = "river.logistic_regression"\n'
        '[promotion]\nwindow = 100\nmargin = 0.05\n')
    rng = random.Random(5)
    xs = [rng.uniform(-1, 1) for _ in range(4000)]
    events = [StreamEvent(stream=stream, entity_key=key, values={"x": x, "y": (x > 0) == (i < 2000)},
                          correlation_id=f"{name}-{i}") for i, x in enumerate(xs)]
    chain_of = {e.msg_id: e.correlation_id for e in events}
    await conveyor.submit_many(events)
    report = await conveyor.wait_learned(name, 4000, timeout_s=120)
    partition = (await learner_actor(conveyor, key))[0]
    part = report[partition]
    assert part["n_promotions"] >= 1 and part["n_drifts"] >= 1
    published = await eventually(lambda: _learning_events(conveyor.settings, name), timeout_s=30,
                                 what="drift and promotion on the learning topic")
    kinds = {m["type"] for m in published}
    assert {"drift.detected", "learner.promoted"} <= kinds
    assert all(m["offset"] >= 2000 for m in published if m["type"] == "drift.detected")
    # Each is chained to the event that set it off: that event's id and correlation id.
    assert all(m["correlation_id"] == chain_of[m["causation_id"]] for m in published)
    audit = await db.fetch("SELECT detail FROM audit_log WHERE action = 'learner.promoted' AND subject = $1", name)
    assert audit and json.loads(audit[0]["detail"])["metric"] == "accuracy"
    detail = json.loads(audit[0]["detail"])
    assert detail["correlation_id"] == chain_of[detail["causation_id"]]
    logs = Path(json.loads((cluster.state_dir / "cluster.json").read_text())["services"]["ray"]["work_dir"]) \
        / "session_latest" / "logs"

    def promoted_lines():
        return [line for line in _lines_mentioning(logs, f'"{name}-') if line.get("event") == "challenger promoted"]

    lines = await eventually(promoted_lines, timeout_s=30, what="the learner's log line of the promotion")
    assert {(line["worker"], line["learner"]) for line in lines} == {(f"root.learn.learner-{partition}", name)}
    assert all(line["correlation_id"] == chain_of[line["causation_id"]] for line in lines)


async def _learning_events(settings, name):
    from storage.kafka import PartitionReader

    reader = PartitionReader(settings.kafka_bootstrap, "learning", 0, settings.kafka_fetch_max_wait_ms)
    await reader.start(0)
    try:
        found = [json.loads(r.value) for r in await reader.read(timeout_ms=500, max_records=100_000)]
    finally:
        await reader.stop()
    mine = [m for m in found if m.get("learner") == name]
    return mine if {"drift.detected", "learner.promoted"} <= {m["type"] for m in mine} else None


async def _checkpointed(db, name, partition, n):
    report = await db.fetchval("SELECT report FROM learner_reports WHERE name = $1 AND partition = $2", name, partition)
    return report is not None and json.loads(report)["n_learned"] == n


async def test_the_live_learner_serves_while_it_learns_and_its_baseline_answers_when_it_is_late(conveyor, db):
    from client.scoring import ScoringRefused

    name, stream, key = unique("serve"), unique("servestream"), "serve-entity"
    await conveyor.create_learner(learner_toml(name, stream, 'label = "label"'))
    events = phishing_events(stream, key)
    await conveyor.submit_many(events[:600])
    await conveyor.wait_learned(name, 600, timeout_s=60)
    x = PHISHING[0][0]
    early = await conveyor.score_online(name, x, entity_key=key, deadline_ms=2000)
    assert early.answered_by == "online" and early.label in ("True", "False") and 0 <= early.score <= 1
    await conveyor.submit_many(events[600:])
    await conveyor.wait_learned(name, 1250, timeout_s=60)
    _, _, model = reference()
    late = await conveyor.score_online(name, x, deadline_ms=2000)     # no entity: found on its partition
    assert (late.label, late.score) == (str(model.predict_one(x)), model.predict_proba_one(x)[True])
    # A frozen learner is late: its baseline (the most frequent label and its share) answers in time.
    partition, actor = await learner_actor(conveyor, key)
    await eventually(lambda: _checkpointed(db, name, partition, 1250), timeout_s=30, what="a checkpoint of every event")
    await asyncio.sleep(0.2)                            # the baseline is published right after the checkpoint
    os.kill(actor.pid, signal.SIGSTOP)
    try:
        frozen = await conveyor.score_online(name, x, entity_key=key, deadline_ms=50)
    finally:
        os.kill(actor.pid, signal.SIGCONT)
    majority = max((sum(1 for _, y in PHISHING if y is v), v) for v in (True, False))
    assert (frozen.answered_by, frozen.fallback, frozen.label) == ("baseline", True, str(majority[1]))
    assert frozen.score == pytest.approx(majority[0] / len(PHISHING))
    assert frozen.latency_ms < 1000
    # The other partition saw none of these events, so it never checkpointed and has no baseline
    # of its own: frozen, it is answered for by the baseline of the partition that learned them.
    other = await _key_of_another_partition(conveyor, partition)
    if other is not None:
        _, idle = await learner_actor(conveyor, other)
        os.kill(idle.pid, signal.SIGSTOP)
        try:
            stand_in = await conveyor.score_online(name, x, entity_key=other, deadline_ms=50)
        finally:
            os.kill(idle.pid, signal.SIGCONT)
        assert (stand_in.answered_by, stand_in.label, stand_in.score) == ("baseline", frozen.label, frozen.score)
    with pytest.raises(ScoringRefused) as caught:
        await conveyor.score_online(unique("nobody"), x, deadline_ms=2000)
    assert caught.value.field == "learner"
    with pytest.raises(ScoringRefused):
        await conveyor.score_online(name, {"colour": "red"}, deadline_ms=2000)   # nothing numeric to use


async def test_after_its_partition_restarts_a_callers_next_answer_comes_from_the_new_partition(conveyor):
    """The caller's cached handle names the partition that was killed: the next request is
    answered by the restarted partition, not by the baseline."""
    name, stream, key = unique("restart"), unique("restartstream"), "restart-entity"
    await conveyor.create_learner(learner_toml(name, stream, 'label = "label"'))
    await conveyor.submit_many(phishing_events(stream, key)[:400])
    await conveyor.wait_learned(name, 400, timeout_s=60)
    x = PHISHING[0][0]
    assert (await conveyor.score_online(name, x, entity_key=key, deadline_ms=2000)).answered_by == "online"
    partition, before = await learner_actor(conveyor, key)
    os.kill(before.pid, signal.SIGKILL)
    await eventually(lambda: _restarted(conveyor, partition, before), timeout_s=60, what="learner restarted")
    await conveyor.wait_learned(name, 400, timeout_s=60)           # restored and answering again
    again = await conveyor.score_online(name, x, entity_key=key, deadline_ms=2000)
    assert (again.answered_by, again.fallback) == ("online", False), again.reason


async def test_bad_learner_configs_and_labels_are_refused_before_anything_is_stored(conveyor, db):
    from client.learning import LearnerNotFound, LearnerRefused

    n_before = await db.fetchval("SELECT count(*) FROM learners")
    for text, field in [
        (learner_toml("x", "s", model="sklearn.random_forest"), "model.algorithm"),
        (learner_toml("x'; DROP TABLE learners;--", "s"), "name"),
        (learner_toml("x", "s", extra='label = "y"\nfeatures = ["y"]'), "features[0]"),
        ('name = "x"\n', "stream"),
        ("x" * 70_000, "config"),
    ]:
        with pytest.raises(LearnerRefused) as caught:
            await conveyor.create_learner(text)
        assert caught.value.field == field
    assert await db.fetchval("SELECT count(*) FROM learners") == n_before
    with pytest.raises(LearnerRefused) as caught:
        await conveyor.observe("s", "e1", "k", {"nested": "label"})
    assert caught.value.field == "label"
    with pytest.raises(LearnerRefused):
        await conveyor.observe("s", "bad id with spaces", "k", True)
    with pytest.raises(LearnerNotFound):
        await conveyor.remove_learner(unique("ghost"))
    with pytest.raises(LearnerNotFound):
        await conveyor.learner_report(unique("ghost"))


async def test_a_removed_learner_stops_learning(conveyor):
    name, stream = unique("gone"), unique("gonestream")
    await conveyor.create_learner(learner_toml(name, stream, 'label = "label"'))
    await conveyor.submit_many(phishing_events(stream)[:100])
    await conveyor.wait_learned(name, 100, timeout_s=60)
    await conveyor.remove_learner(name)
    assert name not in {learner["name"] for learner in await conveyor.learners()}
    from client.learning import LearnerNotFound

    with pytest.raises(LearnerNotFound):
        await conveyor.learner_report(name)
    again = await conveyor.create_learner(learner_toml(name, stream, 'label = "label"'))   # a fresh revision
    assert again["revision"] == 3
    await conveyor.submit_many(phishing_events(stream)[:10])
    report = await conveyor.wait_learned(name, 10, timeout_s=60)
    assert sum(r["n_learned"] for r in report.values()) == 10               # learned from scratch


async def test_labels_from_a_producer_that_does_not_ring_are_joined_while_events_keep_coming(conveyor):
    """A learner partition busy with events reads a quiet ``observations`` partition only when
    its doorbell rings, or every quarter of a second: labels from a producer that never rings
    (any plain Kafka client) are joined while a backlog of events is still being learned,
    not once it is over."""
    from messages.codec import encode
    from storage.kafka import KafkaPublisher

    name, stream, key = unique("quiet"), unique("quietstream"), "quiet-entity"
    busy, busy_stream = unique("busy"), unique("busystream")
    await conveyor.create_learner(learner_toml(name, stream, 'features = ["a"]'))
    await conveyor.create_learner(learner_toml(busy, busy_stream, 'label = "label"'))
    events = [StreamEvent(stream=stream, entity_key=key, values={"a": float(i % 5)}) for i in range(200)]
    await conveyor.submit_many(events)                  # predicted; their labels come later

    async def all_predicted():
        report = await conveyor.learner_report(name)
        return sum(r["n_pending"] for r in report.values()) == 200

    await eventually(all_predicted, timeout_s=60, what="the 200 events predicted")
    backlog = 30_000            # seconds of learning for the same partition (same entity)

    async def submit_backlog(start: int, end: int) -> None:
        for at in range(start, end, 5000):
            await conveyor.submit_many([StreamEvent(stream=busy_stream, entity_key=key,
                                                    values={"a": float(i % 7), "label": i % 7 > 3})
                                        for i in range(at, at + 5000)])

    # the labels go out after the backlog's first part and before the rest: events flow
    # before, while and after they arrive (published after the whole backlog, they could
    # find it learned already on a machine that learns as fast as the events are sent)
    await submit_backlog(0, 5000)
    plain = KafkaPublisher(conveyor.settings.kafka_bootstrap)          # rings no doorbell
    await plain.start()
    try:
        for i, event in enumerate(events):
            label = Observation(stream=stream, event_id=event.msg_id, entity_key=key, label=i % 5 > 2)
            await plain.publish_raw("observations", encode(label), key.encode())
    finally:
        await plain.stop()
    await submit_backlog(5000, backlog)

    async def joined():
        report = await conveyor.learner_report(name)
        if sum(r["n_learned"] for r in report.values()) < 200:
            return None
        return [sum(r["n_learned"] for r in (await conveyor.learner_report(busy)).values())]

    [busy_learned] = await eventually(joined, timeout_s=60, interval_s=0.1, what="the 200 labels joined")
    assert busy_learned < backlog, "the labels waited until the backlog of events was over"
