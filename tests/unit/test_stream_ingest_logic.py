"""Unit tests of the pure core of stream ingestion: ``ingest_batch`` and its checkpointed state."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.stream_ingest import IngestState, ingest_batch
from messages.codec import DecodeFailed, decode, encode
from messages.lifecycle import ActorCrashed, ActorHung, ActorRestarted, RestartIntensityExceeded
from messages.stream import StreamEvent
from storage.base import BatchEffects, DeadLetter, RawEventRow
from storage.kafka import Record

TOPIC, PARTITION = "events", 3


def event(stream: str = "clicks", key: str = "user-1", msg_id: str | None = None, **values) -> StreamEvent:
    kwargs = {"msg_id": msg_id} if msg_id else {}
    return StreamEvent(stream=stream, entity_key=key, values=values, event_time=100.5, **kwargs)


def rec(offset: int, value: bytes | StreamEvent, key: bytes | None = b"k") -> Record:
    return Record(offset, key, encode(value) if not isinstance(value, bytes) else value)


def reason_of(raw: bytes) -> str:
    with pytest.raises(DecodeFailed) as info:
        decode(raw)
    return info.value.reason


def run(records: list[Record], state: IngestState | None = None) -> tuple[IngestState, BatchEffects]:
    state = IngestState() if state is None else state
    return state, ingest_batch(state, records, TOPIC, PARTITION)


# --- good events ------------------------------------------------------------------------------


def test_empty_batch_changes_nothing():
    state, effects = run([])
    assert state == IngestState()
    assert effects == BatchEffects()


def test_valid_events_become_raw_rows():
    e1 = event("clicks", "user-1", msg_id="m1", x=1.5, label="a")
    e2 = event("views", "user 2", msg_id="m2")
    state, effects = run([rec(10, e1), rec(11, e2, key=None)])
    assert effects.raw_events == [
        RawEventRow("m1", "clicks", "user-1", '{"x":1.5,"label":"a"}', 100.5, 10),
        RawEventRow("m2", "views", "user 2", "{}", 100.5, 11),
    ]
    assert effects.dead_letters == [] and effects.outbox == []
    assert effects.checkpoint_state is None
    assert state.accepted == {"clicks": 1, "views": 1} and state.n_dead == 0


def test_payload_is_json_text_of_the_values():
    values = {"f": 0.1, "i": -3, "s": 'quote " and \\ backslash', "b": False, "n": None, "u": "ключ"}
    e = StreamEvent(stream="s", entity_key="k", values=values)
    _, effects = run([rec(0, e)])
    row = effects.raw_events[0]
    assert isinstance(row.payload, str)
    assert json.loads(row.payload) == values
    assert row.event_time is None


def test_counts_accumulate_per_stream_across_batches():
    state = IngestState()
    ingest_batch(state, [rec(0, event("a")), rec(1, event("b")), rec(2, event("a"))], TOPIC, PARTITION)
    ingest_batch(state, [rec(3, event("a")), rec(4, event("c"))], TOPIC, PARTITION)
    assert state.accepted == {"a": 3, "b": 1, "c": 1}


def test_fresh_states_do_not_share_their_counts():
    first, second = IngestState(), IngestState()
    ingest_batch(first, [rec(0, event("a"))], TOPIC, PARTITION)
    assert second.accepted == {}


# --- dead letters -----------------------------------------------------------------------------


BAD_PAYLOADS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff\xfe garbage", id="not-utf8"),
    pytest.param(b"{not json", id="malformed"),
    pytest.param(b'{"type":"no.such.type","stream":"s","entity_key":"k"}', id="unknown-tag"),
    pytest.param(b'{"type":"stream.event","entity_key":"k"}', id="missing-field"),
    pytest.param(b'{"type":"stream.event","stream":"../../etc/passwd","entity_key":"k"}', id="hostile-name"),
    pytest.param(b'{"type":"stream.event","stream":"s","entity_key":"k","values":{"a":{"b":1}}}', id="nested"),
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS)
def test_undecodable_records_become_dead_letters(payload):
    state, effects = run([rec(42, payload, key=b"the-key")])
    expected_reason = reason_of(payload)
    assert effects.raw_events == []
    assert effects.dead_letters == [DeadLetter(TOPIC, PARTITION, 42, b"the-key", payload, expected_reason)]
    assert state.n_dead == 1 and state.accepted == {}
    [(topic, key, body, dedup_key)] = effects.outbox
    assert (topic, key) == ("dead_letters", b"the-key")
    assert dedup_key == f"dead-letter:{TOPIC}:{PARTITION}:42"   # a replay inserts it once
    note = json.loads(body)
    assert note == {"topic": TOPIC, "partition": PARTITION, "offset": 42, "error": expected_reason,
                    "payload": payload.decode("utf-8", "replace")}


def test_unknown_tag_reason_names_the_type_field():
    _, effects = run([rec(0, b'{"type":"no.such.type"}')])
    assert "$.type" in effects.dead_letters[0].error


@pytest.mark.parametrize("message", [
    ActorCrashed(supervisor="root", child_id="c", reason="x"),
    ActorHung(supervisor="root", child_id="c", missed_heartbeats=3),
    ActorRestarted(supervisor="root", child_id="c", n_restarts=1, restart_s=0.2),
    RestartIntensityExceeded(supervisor="root", n_restarts=6, period_s=30.0),
], ids=lambda m: type(m).__name__)
def test_lifecycle_messages_do_not_belong_on_the_events_topic(message):
    state, effects = run([rec(5, encode(message), key=None)])
    assert effects.raw_events == []
    [dead] = effects.dead_letters
    assert dead.source_offset == 5 and dead.key is None and dead.payload == encode(message)
    assert type(message).__name__ in dead.error and repr(TOPIC) in dead.error
    [(topic, key, body, dedup_key)] = effects.outbox
    assert topic == "dead_letters" and key is None
    assert json.loads(body)["error"] == dead.error
    assert state.n_dead == 1 and state.accepted == {}


def test_dead_letter_note_carries_at_most_1024_bytes_of_payload():
    payload = b"x" * 5000
    _, effects = run([rec(0, payload)])
    assert effects.dead_letters[0].payload == payload  # the store keeps it whole
    assert json.loads(effects.outbox[0][2])["payload"] == "x" * 1024


def test_oversized_record_is_dead_lettered():
    big = encode(StreamEvent(stream="s", entity_key="k", values={"blob": "x" * (1 << 20)}))
    _, effects = run([rec(0, big)])
    assert "exceeds" in effects.dead_letters[0].error


def test_mixed_batch_keeps_every_good_row():
    good = [event("a", msg_id=f"g{i}", i=i) for i in range(4)]
    records = [
        rec(0, good[0]),
        rec(1, b"garbage"),
        rec(2, good[1]),
        rec(3, encode(ActorCrashed(supervisor="s", child_id="c"))),
        rec(4, good[2]),
        rec(5, b'{"type":"stream.event","stream":"a","entity_key":"bad\\u0001key"}'),
        rec(6, good[3]),
    ]
    state, effects = run(records)
    assert [(r.msg_id, r.source_offset) for r in effects.raw_events] == [("g0", 0), ("g1", 2), ("g2", 4), ("g3", 6)]
    assert [d.source_offset for d in effects.dead_letters] == [1, 3, 5]
    assert [o[0] for o in effects.outbox] == ["dead_letters"] * 3
    assert "$.entity_key" in effects.dead_letters[2].error
    assert state.accepted == {"a": 4} and state.n_dead == 3


def test_deeply_nested_record_is_dead_lettered_not_raised():
    depth = 10_000
    payload = b'{"type":"stream.event","stream":"s","entity_key":"k","x":' + b"[" * depth + b"]" * depth + b"}"
    _, effects = run([rec(0, event(msg_id="ok")), rec(1, payload)])
    assert [d.source_offset for d in effects.dead_letters] == [1]


@pytest.mark.parametrize("values", ['{"x":"a\\u0000b"}', '{"a\\u0000":1}'], ids=["in-value", "in-name"])
def test_event_with_nul_in_values_is_dead_lettered(values):
    payload = b'{"type":"stream.event","stream":"s","entity_key":"k","values":' + values.encode() + b"}"
    _, effects = run([rec(0, payload)])
    assert effects.raw_events == [] and len(effects.dead_letters) == 1


def test_dead_letter_error_text_has_no_nul():
    _, effects = run([rec(0, b'{"type":"a\\u0000b"}')])
    assert "\x00" not in effects.dead_letters[0].error


# --- checkpoint and replay --------------------------------------------------------------------


def mixed_records(n: int) -> list[Record]:
    out = []
    for offset in range(n):
        kind = offset % 5
        if kind == 3:
            out.append(rec(offset, b"broken %d" % offset))
        elif kind == 4:
            out.append(rec(offset, encode(ActorHung(supervisor="s", child_id="c", missed_heartbeats=1))))
        else:
            out.append(rec(offset, event(f"s{kind}", key=f"k{offset}", msg_id=f"m{offset}", v=offset)))
    return out


def test_state_round_trips_through_msgpack():
    state, _ = run(mixed_records(20))
    restored = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=IngestState)
    assert restored == state
    assert restored.accepted is not state.accepted


@pytest.mark.parametrize("snapshot_at, crash_at", [(0, 7), (5, 5), (5, 17), (12, 30), (30, 30)])
def test_replay_from_checkpoint_equals_processing_once(snapshot_at, crash_at):
    records = mixed_records(30)
    batches = [records[i:i + 4] for i in range(0, len(records), 4)]

    def upto(limit: int) -> list[list[Record]]:
        return [[r for r in b if r.offset < limit] for b in batches if b and b[0].offset < limit]

    # Uninterrupted reference run.
    reference = IngestState()
    reference_effects = [ingest_batch(reference, b, TOPIC, PARTITION) for b in batches]

    # Run up to the checkpoint, snapshot, carry on until the crash, then lose the live state.
    live = IngestState()
    for b in upto(snapshot_at):
        ingest_batch(live, b, TOPIC, PARTITION)
    snapshot = msgspec.msgpack.encode(live)
    for b in [[r for r in b if snapshot_at <= r.offset < crash_at] for b in batches]:
        ingest_batch(live, b, TOPIC, PARTITION)
    del live

    # Restore and replay everything from the checkpoint's offset, in different batch sizes.
    restored = msgspec.msgpack.decode(snapshot, type=IngestState)
    rest = [r for r in records if r.offset >= snapshot_at]
    replay_effects = [ingest_batch(restored, rest[i:i + 7], TOPIC, PARTITION) for i in range(0, len(rest), 7)]

    assert restored == reference
    # The replayed effects are the same rows (idempotent keys: msg_id and source offset).
    ref_rows = [r for e in reference_effects for r in e.raw_events if r.source_offset >= snapshot_at]
    ref_dead = [d for e in reference_effects for d in e.dead_letters if d.source_offset >= snapshot_at]
    assert [r for e in replay_effects for r in e.raw_events] == ref_rows
    assert [d for e in replay_effects for d in e.dead_letters] == ref_dead


def test_processing_is_deterministic():
    records = mixed_records(25)
    s1, e1 = run(records)
    s2, e2 = run(list(records))
    assert s1 == s2 and e1 == e2


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=64),
                          st.builds(lambda s, k, v: encode(StreamEvent(stream=s, entity_key=k, values={"v": v})),
                                    st.sampled_from(["a", "b", "c"]), st.sampled_from(["k1", "k2"]),
                                    st.integers(-5, 5))), max_size=30),
       st.integers(0, 30))
def test_split_point_does_not_change_the_result(payloads, split):
    records = [Record(i, None, p) for i, p in enumerate(payloads)]
    whole, effects = run(records)
    first = IngestState()
    ingest_batch(first, records[:split], TOPIC, PARTITION)
    restored = msgspec.msgpack.decode(msgspec.msgpack.encode(first), type=IngestState)
    ingest_batch(restored, records[split:], TOPIC, PARTITION)
    assert restored == whole
    assert len(effects.raw_events) + len(effects.dead_letters) == len(records)
    assert sum(whole.accepted.values()) + whole.n_dead == len(records)


def test_a_producers_duplicate_is_stored_counted_and_aggregated_once():
    from actors.stream_ingest import message_ids

    state = IngestState()
    original = StreamEvent(stream="s", entity_key="k", values={"x": 2.0})
    first = ingest_batch(state, [rec(0, original), rec(1, original)], TOPIC, PARTITION)   # twice in one batch
    assert len(first.raw_events) == 1 and state.accepted == {"s": 1}
    assert state.aggregates["s\x1fk"]["x"] == [1, 2.0, 2.0, 2.0]
    later = [rec(7, original)]                                    # again, in a later batch
    assert message_ids(later) == {original.msg_id: 7}
    again = ingest_batch(state, later, TOPIC, PARTITION, sent_before=frozenset([original.msg_id]))
    assert again.raw_events == [] and state.accepted == {"s": 1}
    assert state.aggregates["s\x1fk"]["x"] == [1, 2.0, 2.0, 2.0]
    assert message_ids([Record(9, None, b"not json")]) == {}


def test_an_int_beyond_the_float_range_is_stored_and_left_out_of_the_aggregates():
    """A 401-digit int is valid JSON: it raised OverflowError in the aggregates before, failing
    the partition's batch again on every replay."""
    state = IngestState()
    effects = ingest_batch(state, [rec(0, event(x=10**400, y=2.0)), rec(1, event(x=1.0))], TOPIC, PARTITION)
    assert len(effects.raw_events) == 2 and "1" + "0" * 400 in effects.raw_events[0].payload
    assert state.aggregates["clicks\x1fuser-1"] == {"y": [1, 2.0, 2.0, 2.0], "x": [1, 1.0, 1.0, 1.0]}


def test_aggregates_fold_ints_and_floats_and_leave_out_everything_else():
    state = IngestState()
    values = [dict(x=3, b=True, s="7", n=None), dict(x=-1.5, b=False), dict(x=10.0)]
    ingest_batch(state, [rec(i, event(**v)) for i, v in enumerate(values)], TOPIC, PARTITION)
    assert state.aggregates["clicks\x1fuser-1"] == {"x": [3, 11.5, -1.5, 10.0]}


class Conn:
    """Records what a stage write executes."""

    def __init__(self) -> None:
        self.calls = []

    async def execute(self, sql, *args):
        self.calls.append((sql, args))


async def test_aggregates_go_to_postgres_with_a_checkpoint_at_most_every_few_seconds_and_all_after_a_restore():
    from actors.stream_ingest import StreamIngestWorker

    worker = StreamIngestWorker(None, "root.ingest.events-3", partition=PARTITION)
    ingest_batch(worker.ingest_state, [rec(0, event(key="a", x=1.0)), rec(1, event(key="b", x=2.0))],
                 TOPIC, PARTITION, touched=worker._unstored)
    [write] = worker.checkpoint_writes()
    conn = Conn()
    await write(conn)
    [(sql, columns)] = conn.calls
    assert "online_aggregates" in sql and columns[1] == ["a", "b"] and columns[3] == [1, 1]
    ingest_batch(worker.ingest_state, [rec(2, event(key="a", x=3.0))], TOPIC, PARTITION, touched=worker._unstored)
    assert worker.checkpoint_writes() == []           # stored moments ago: with a later checkpoint
    worker._stored_at -= worker.store_aggregates_every_s
    [write] = worker.checkpoint_writes()
    conn = Conn()
    await write(conn)
    assert conn.calls[0][1][1] == ["a"] and conn.calls[0][1][3] == [2]     # only what changed, absolute
    restarted = StreamIngestWorker(None, "root.ingest.events-3", partition=PARTITION)
    restarted.restore(worker.snapshot())
    [write] = restarted.checkpoint_writes()           # which were stored is not known: all of them
    conn = Conn()
    await write(conn)
    assert conn.calls[0][1][1] == ["a", "b"]


class _Batches:
    """Stands in for the partition reader: the given batches, then nothing."""

    def __init__(self, *batches: list[Record]) -> None:
        self.batches = list(batches)

    async def read(self, timeout_ms, max_records, then_pause=False):
        return self.batches.pop(0) if self.batches else []


class _Commits:
    """Stands in for the ledger: keeps what each step commits."""

    def __init__(self) -> None:
        self.commits: list[tuple[int, BatchEffects]] = []

    async def commit(self, claim, next_offset, effects):
        self.commits.append((next_offset, effects))


async def test_aggregates_put_off_by_the_last_checkpoint_of_a_stream_are_stored_once_it_goes_quiet():
    """A stream that stops right after a checkpoint which put its aggregates off (stored
    moments before) gets them into PostgreSQL with a checkpoint of an idle step, not never."""
    from actors.stream_ingest import StreamIngestWorker

    class Unwired(StreamIngestWorker):      # the real checkpoint rules; no pool, Redis or feature sets
        async def handle(self, records):
            return ingest_batch(self.ingest_state, records, self.topic, self.partition, touched=self._unstored)

    worker = Unwired(None, "root.ingest.events-3", partition=PARTITION, checkpoint_every_n=2)
    worker._reader = _Batches([rec(0, event(key="a", x=1.0)), rec(1, event(key="b", x=2.0))],
                              [rec(2, event(key="a", x=3.0)), rec(3, event(key="a", x=4.0))])
    worker.ledger = ledger = _Commits()
    await worker.step()
    await worker.step()
    [(_, first), (_, second)] = ledger.commits
    assert len(first.writes) == 1 and second.checkpoint_state is not None and second.writes == []
    await worker.step()                              # quiet, the checkpoint moments old: nothing yet
    assert len(ledger.commits) == 2
    worker.last_checkpoint_at -= worker.checkpoint_every_s
    worker._stored_at -= worker.store_aggregates_every_s
    await worker.step()                              # quiet, a checkpoint due: the put-off copy goes
    [(offset, third)] = ledger.commits[2:]
    conn = Conn()
    await third.writes[0](conn)
    assert offset == 4 and conn.calls[0][1][1] == ["a"] and conn.calls[0][1][3] == [3]
    worker.last_checkpoint_at -= worker.checkpoint_every_s
    await worker.step()                              # nothing left to store: no more checkpoints
    assert len(ledger.commits) == 3


def test_a_stateful_worker_without_a_checkpoint_replays_its_partition_from_the_start():
    """Killed before its first checkpoint, a worker had committed batches whose share of the
    state (aggregates) only a replay from the log's start can rebuild."""
    import doctest

    import actors.partition_worker
    from actors.partition_worker import resume_offset
    from storage.base import Checkpoint, Claim

    claim = Claim("stream-ingest", TOPIC, PARTITION, epoch=2, next_offset=1081, generation=1)
    assert resume_offset(claim, None, stateful=True) == 0
    assert resume_offset(claim, None, stateful=False) == 1081
    assert resume_offset(claim, Checkpoint("o", 1, 1000, b"", 0.0, generation=1), stateful=True) == 1000
    results = doctest.testmod(actors.partition_worker)
    assert results.attempted >= 4 and results.failed == 0
