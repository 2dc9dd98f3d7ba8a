"""One step of a learner partition, pure: bring the set of learners to the step's
(name -> revision) map, then feed every event of the step in offset order, then every
observation in offset order. The same function runs live and on replay, so a partition
restored from a checkpoint and fed the journalled steps reaches the very same state.

Examples
--------
>>> from messages.codec import encode
>>> from messages.stream import StreamEvent
>>> from ml.learner_config import parse_learner_config
>>> from storage.kafka import Record
>>> config = parse_learner_config('name = "l"\\nstream = "s"\\nlabel = "y"\\n'
...                               '[model]\\nalgorithm = "river.logistic_regression"')
>>> state = PartitionState()
>>> events = [Record(i, b"k", encode(StreamEvent(stream="s", entity_key="k", values={"x": i % 2, "y": i % 2 == 1})))
...           for i in range(50)]
>>> out = apply_step(state, {"l": (1, config)}, events, [], partition=0)
>>> state.learners["l"][1].report()["n_learned"], state.events_offset
(50, 50)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

from messages.base import caused_by
from messages.codec import DecodeFailed, decode, encode, printable
from messages.stream import DriftDetected, LearnerPromoted, Observation, StreamEvent
from ml.online_learning import Drift, EventRefused, OnlineLearner, Promoted
from storage.base import DeadLetter
from storage.kafka import Record

#: Where drift and promotion events go.
LEARNING_TOPIC = "learning"


@dataclass
class PartitionState:
    """Everything a learner partition knows; pickled whole into its checkpoints."""

    step: int = 0
    events_offset: int = 0
    observations_offset: int = 0
    clock: float = 0.0                                   # the newest event time seen
    learners: dict[str, tuple[int, OnlineLearner]] = field(default_factory=dict)


@dataclass
class StepEffects:
    dead_letters: list[DeadLetter] = field(default_factory=list)
    outbox: list[tuple] = field(default_factory=list)     # (topic, key, payload, dedup_key)
    audit: list[tuple[str, str, str, dict]] = field(default_factory=list)
    signals: list = field(default_factory=list)           # the drift and promotion messages, to log
    n_events: int = 0
    n_labels: int = 0


def apply_step(state: PartitionState, active: dict[str, tuple[int, Any]], events: list[Record],
               observations: list[Record], partition: int) -> StepEffects:
    """Advance ``state`` by one step; the effects to write with it. ``active`` maps each
    learner name to (revision, LearnerConfig)."""
    out = StepEffects()
    _adopt(state, active)
    by_stream: dict[str, list[str]] = {}
    for name, (_, learner) in state.learners.items():
        by_stream.setdefault(learner.config.stream, []).append(name)
    for record in events:
        _event(state, by_stream, record, partition, out)
    for record in observations:
        _observation(state, by_stream, record, partition, out)
    for name, (_, learner) in state.learners.items():
        for event_id, (offset, key, value) in learner.expire_parked(state.clock):
            out.dead_letters.append(DeadLetter("observations", partition, offset, key, value, printable(
                f"event_id: learner {name} saw no event {event_id!r} within {learner.PARK_S:.0f} s of its label")))
    if events:
        state.events_offset = events[-1].offset + 1
    if observations:
        state.observations_offset = observations[-1].offset + 1
    return out


def _adopt(state: PartitionState, active: dict[str, tuple[int, Any]]) -> None:
    for name in [n for n in state.learners if n not in active]:
        del state.learners[name]
    for name, (revision, config) in active.items():
        current = state.learners.get(name)
        if current is None or current[0] != revision:
            state.learners[name] = (revision, OnlineLearner(config))


def _event(state, by_stream, record: Record, partition: int, out: StepEffects) -> None:
    try:
        event = decode(record.value)
    except DecodeFailed:
        return                    # stream ingestion dead-letters what does not decode
    if not isinstance(event, StreamEvent) or event.stream not in by_stream:
        return
    state.clock = max(state.clock, event.produced_at)
    out.n_events += 1
    for name in by_stream[event.stream]:
        learner = state.learners[name][1]
        try:
            _, signals = learner.on_event(event.msg_id, event.values, state.clock, event.entity_key)
        except EventRefused as exc:
            learner.n_refused += 1
            out.dead_letters.append(DeadLetter("events", partition, record.offset, record.key, record.value,
                                               printable(f"learner {name}: {exc}")))
            continue
        _signals(name, partition, record.offset, event, signals, out)


def _observation(state, by_stream, record: Record, partition: int, out: StepEffects) -> None:
    def refuse(reason: str) -> None:
        out.dead_letters.append(DeadLetter("observations", partition, record.offset, record.key, record.value,
                                           printable(reason)))

    try:
        observation = decode(record.value)
        if not isinstance(observation, Observation):
            raise DecodeFailed(f"a {type(observation).__name__} does not belong on topic 'observations'")
    except DecodeFailed as exc:
        return refuse(exc.reason)
    names = by_stream.get(observation.stream)
    if not names:
        return refuse(f"stream: no learner learns {observation.stream!r}")
    out.n_labels += 1
    state.clock = max(state.clock, observation.produced_at)
    for name in names:
        learner = state.learners[name][1]
        try:
            signals = learner.on_label(observation.event_id, observation.label, at=observation.produced_at,
                                       ref=(record.offset, record.key, record.value))
        except EventRefused as exc:
            learner.n_refused += 1
            refuse(f"learner {name}: {exc}")
            continue
        if signals is None:
            refuse(f"event_id: no prediction of learner {name} waits for {observation.event_id!r}"
                   " (unknown, expired or already judged)")
            continue
        _signals(name, partition, record.offset, observation, signals, out, source="o")


def _signals(name: str, partition: int, offset: int, cause: StreamEvent | Observation, signals: list,
             out: StepEffects, source: str = "e") -> None:
    """Messages for the signals, their ids and times taken from the record that caused them
    (a replayed step emits byte-identical messages, deduplicated by the outbox), chained to it:
    the event's correlation id follows into the drift or promotion and its audit record."""
    at, chain = cause.produced_at, caused_by(cause)
    for signal in signals:
        if isinstance(signal, Drift):
            key = f"drift:{name}:{partition}:{source}{offset}:{signal.role}"
            message = DriftDetected(msg_id=_id(key), produced_at=at, **chain, learner=name, partition=partition, role=signal.role,
                                    detector=signal.detector, n_learned=signal.n_learned, offset=offset,
                                    metrics=signal.metrics)
        elif isinstance(signal, Promoted):
            key = f"promoted:{name}:{partition}:{source}{offset}"
            message = LearnerPromoted(msg_id=_id(key), produced_at=at, **chain, learner=name, partition=partition, champion=signal.champion,
                                      demoted=signal.demoted, metric=signal.metric,
                                      champion_score=signal.champion_score, demoted_score=signal.demoted_score,
                                      window=signal.window, n_learned=signal.n_learned)
            out.audit.append((f"learner/{partition}", "learner.promoted", name,
                              msgspec.to_builtins(message)))
        else:
            continue
        out.outbox.append((LEARNING_TOPIC, name.encode(), encode(message), key))
        out.signals.append(message)


def _id(key: str) -> str:
    """A message id derived from its dedup key: a replayed step emits the same message."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]
