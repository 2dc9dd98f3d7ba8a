"""A learner partition: the River learners of one partition of the ``events`` topic, fed
that partition's events and the same partition of ``observations`` (labels that come
later, keyed by the same entity).

Each step reads a batch of events and a batch of observations, records them in the
journal (``learner_steps``: where both topics ended and which learners were active),
applies them (:func:`actors.learner_steps.apply_step`), and commits the journal row,
dead letters, drift/promotion events (outbox) and audit records in one transaction,
with a checkpoint of the whole state every N events or T seconds. A step's commit is
written while the next step reads and learns (commits stay in order; a failed one fails
the worker). A restarted
partition restores its newest checkpoint and replays the journalled steps after it,
reading exactly the recorded ranges: its state is then what it would have been had it
never stopped. Between steps it answers ``predict`` from the live champion (a read
never sees a half-applied step: steps are applied without yielding).
"""

from __future__ import annotations

import asyncio
import collections
import json
import pickle
import time

from actors.learner_steps import PartitionState, StepEffects, apply_step
from actors.worker import Worker, WorkerState
from ml.errors import FieldError
from storage.base import BatchEffects
from storage.kafka import PartitionReader, reader_for
from storage.postgres import KEEP_CHECKPOINTS
from storage.settings import Settings

#: The log line of each message a step emits.
SIGNAL_LINES = {"DriftDetected": "drift detected", "LearnerPromoted": "challenger promoted"}


def warm_up() -> None:
    """What a spare process does ahead of hosting a learner partition: import River."""
    from ml.online_learning import import_river

    import_river()


class LearnerUnknown(FieldError):
    """A request for a learner this partition does not learn."""


class LearnerNotReady(RuntimeError):
    """A request to a partition still restoring its learners (after a restart): it cannot
    tell yet which learners it has, nor answer from where they will be."""


class LearnerWorker(Worker):
    consumer = "learner"
    requests = ("predict", "predict_many", "report", "active_revisions")
    #: How often the set of learners is read from PostgreSQL.
    refresh_every_s = 1.0
    #: Records per topic per step: a step costs one transaction (journal, offsets), so
    #: bigger steps learn faster from a backlog; a step never waits for a batch to fill.
    max_batch = 5000
    slice_size = 250
    #: While events flow, a quiet ``observations`` partition (nothing at the last read, no ring
    #: since) is read this often, not at every step: each such read waits out a fetch window
    #: (~15 ms) for nothing: 3-5 % of a busy learner's time, measured.
    quiet_observations_every_s = 0.25

    def __init__(self, settings: Settings, name: str, partition: int = 0) -> None:
        super().__init__(settings, name)
        self.partition = partition
        self.owner = f"learner/events/{partition}"
        self.learning = PartitionState()
        self.active: dict[str, tuple[int, object]] = {}
        self._configs: dict[tuple[str, int], object] = {}
        self._refreshed_at = 0.0
        self._since_checkpoint = 0
        self._checkpoint_steps: collections.deque[int] = collections.deque(maxlen=KEEP_CHECKPOINTS)
        self.pool = self.ledger = self.claim = self._redis = None
        self.events = self.observations = None
        self.doorbell = None
        self._river: asyncio.Future | None = None
        self._observations_read_at = float("-inf")     # monotonic
        self._checkpoint_taken_at: float | None = None
        #: The previous step's commit, still being written while this step reads and learns;
        #: awaited before the next commit (commits keep their order) and at teardown.
        self._committing: asyncio.Task | None = None
        self._baselines_published: set[tuple[str, int]] = set()    # (learner, revision)

    # --- start: restore, replay -----------------------------------------------------------------

    async def setup(self) -> None:
        from actors.wiring import doorbell_for, import_plugins, ledger_for, pool_for
        from storage.redis_store import connect_redis

        from ml.online_learning import import_river

        began = time.monotonic()
        import_plugins(self.settings.plugins)      # a learner may use a user's own algorithm
        # River is imported in a thread meanwhile, never in the loop (a second on a quiet machine):
        # awaited only where a model is built or unpickled.
        self._river = asyncio.ensure_future(asyncio.to_thread(import_river))
        self.pool = await pool_for(self.settings, max_size=2)
        self.ledger = ledger_for(self.settings, self.pool)
        self._redis = connect_redis(self.settings.redis_url)
        self.claim = await self.ledger.claim(self.consumer, "events", self.partition)
        # Steps journalled on an older generation of the broker's log name offsets that are gone
        # (an embedded broker started again): replaying them would wait for records that never come.
        await self.pool.execute("DELETE FROM learner_steps WHERE owner = $1 AND generation <> $2",
                                self.owner, self.claim.generation)
        checkpoint = await self.ledger.latest_checkpoint(self.owner)
        if checkpoint is not None:
            await self._river
            state = pickle.loads(checkpoint.state)    # signature verified by the ledger
            if checkpoint.generation != self.claim.generation:    # keep the models, read the new log
                state.events_offset = state.observations_offset = 0
            self.learning = state
            self.last_checkpoint_offset, self.last_checkpoint_at = self.learning.events_offset, checkpoint.created_at
        restored = time.monotonic()
        self.doorbell = doorbell_for(self.settings)
        self.events = self._reader("events", self.learning.events_offset)
        self.observations = self._reader("observations", self.learning.observations_offset)
        await self.events.start(self.learning.events_offset)
        await self.observations.start(self.learning.observations_offset)
        reading = time.monotonic()
        replayed = await self._replay()
        done = time.monotonic()
        self.log.info("learner partition ready", step=self.learning.step, replayed_steps=replayed,
                      events_offset=self.learning.events_offset, learners=sorted(self.learning.learners),
                      restore_s=round(restored - began, 3), readers_s=round(reading - restored, 3),
                      replay_s=round(done - reading, 3))

    def _reader(self, topic: str, offset: int) -> PartitionReader:
        return reader_for(self.settings, topic, self.partition, doorbell=self.doorbell)

    async def _replay(self) -> int:
        rows = await self.pool.fetch(
            "SELECT step, events_end, observations_end, learners FROM learner_steps"
            " WHERE owner = $1 AND step > $2 ORDER BY step", self.owner, self.learning.step)
        if not rows:
            return 0
        # every journalled step's records in one pass (a read per step cost a fetch each:
        # ~1 s for 50 steps here), then cut at each step's ends
        events = await _read_until(self.events, self.learning.events_offset, rows[-1]["events_end"])
        observations = await _read_until(self.observations, self.learning.observations_offset,
                                         rows[-1]["observations_end"])
        by_step = zip(rows, _cut(events, [row["events_end"] for row in rows]),
                      _cut(observations, [row["observations_end"] for row in rows]))
        for row, step_events, step_observations in by_step:
            active = await self._configs_of(json.loads(row["learners"]))
            await self._apply(active, step_events, step_observations)      # its effects were committed then
            self.learning.step = row["step"]
            self.n_processed += len(step_events)
        return len(rows)

    async def _configs_of(self, revisions: dict[str, int]) -> dict[str, tuple[int, object]]:
        from ml.learner_config import parse_learner_config

        missing = [(n, r) for n, r in revisions.items() if (n, r) not in self._configs]
        if missing:
            await self._river
            rows = await self.pool.fetch(
                "SELECT name, revision, config FROM learners WHERE (name, revision) IN"
                " (SELECT * FROM unnest($1::text[], $2::int[]))", [n for n, _ in missing], [r for _, r in missing])
            for row in rows:
                self._configs[(row["name"], row["revision"])] = parse_learner_config(row["config"])
        return {n: (r, self._configs[(n, r)]) for n, r in revisions.items() if (n, r) in self._configs}

    async def _refresh(self) -> None:
        if time.monotonic() - self._refreshed_at < self.refresh_every_s:
            return
        self._refreshed_at = time.monotonic()
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (name) name, revision, removed FROM learners ORDER BY name, revision DESC")
        self.active = await self._configs_of({r["name"]: r["revision"] for r in rows if not r["removed"]})

    # --- the loop ---------------------------------------------------------------------------------

    async def step(self) -> None:
        if self._committing is not None and self._committing.done():
            await self._committed()          # a failed commit fails the worker now, even when idle
        await self._refresh()
        batch = self.max_batch
        events = await self.events.read(timeout_ms=200, max_records=batch, wake_with=(self.observations,))
        observations = []
        if (not events or self.observations.may_have_records()
                or time.monotonic() - self._observations_read_at >= self.quiet_observations_every_s):
            observations = await self.observations.read(timeout_ms=0 if events else 200, max_records=batch,
                                                         idle_backoff=not events, wake_with=(self.events,))
            self._observations_read_at = time.monotonic()
        self._since_checkpoint += len(events) + len(observations)
        checkpointed_at = self._checkpoint_taken_at or self.last_checkpoint_at or self.started_at
        due = self._since_checkpoint > 0 and (
            self._since_checkpoint >= self.settings.learner_checkpoint_every_n
            or time.time() - checkpointed_at >= self.settings.learner_checkpoint_every_s)
        revisions = {name: revision for name, (revision, _) in self.active.items()}
        adopted = {name: revision for name, (revision, _) in self.learning.learners.items()}
        moved = bool(events or observations) or revisions != adopted   # a learner set change is a step too
        if not moved and not due:
            return
        out = await self._apply(self.active, events, observations) if moved else StepEffects()
        effects = BatchEffects(dead_letters=out.dead_letters, outbox=out.outbox)
        if moved:
            self.learning.step += 1
            effects.writes.append(self._journal(self.learning.step, revisions))
        if out.audit:
            effects.writes.append(_audit(out.audit))
        if due:
            effects.checkpoint_state = pickle.dumps(self.learning, protocol=pickle.HIGHEST_PROTOCOL)
            effects.writes.append(self._reports())
            if len(self._checkpoint_steps) == self._checkpoint_steps.maxlen:
                effects.writes.append(self._prune(self._checkpoint_steps[0]))
            self._since_checkpoint, self._checkpoint_taken_at = 0, time.time()
            self._checkpoint_steps.append(self.learning.step)
        await self._committed()
        self._committing = asyncio.ensure_future(self._commit(
            effects, self.learning.events_offset, len(events), out.signals, due, self._baselines_due(due)))

    async def _committed(self) -> None:
        """Wait for the previous step's commit; its error, if it failed (the worker then fails:
        its supervisor restarts it from the last checkpoint and the journal)."""
        if self._committing is not None:
            committing, self._committing = self._committing, None
            await committing

    async def _commit(self, effects: BatchEffects, events_offset: int, n_events: int, signals: list,
                      checkpoint: bool, baselines: list) -> None:
        """Write one step (its journal row, effects and any checkpoint) in one transaction; then
        log its signals and publish the baselines taken with it."""
        await self.ledger.commit(self.claim, events_offset, effects)
        self.n_processed += n_events
        for message in signals:      # each line carries the chain of the event that caused it
            self.log.info(SIGNAL_LINES[type(message).__name__], learner=message.learner, msg_id=message.msg_id,
                          correlation_id=message.correlation_id, causation_id=message.causation_id)
        if checkpoint:
            self.last_checkpoint_offset, self.last_checkpoint_at = events_offset, time.time()
        if baselines:
            await self._publish_baselines(baselines)

    def _baselines_due(self, checkpoint: bool) -> list[tuple[str, int, dict]]:
        """(learner, revision, baseline) to publish after this step: every learner that learned
        something at a checkpoint, and a learner's first baseline at once."""
        learned = [(name, revision, learner) for name, (revision, learner) in self.learning.learners.items()
                   if learner.champion.n_learned]
        if not checkpoint:
            learned = [item for item in learned if item[:2] not in self._baselines_published]
        return [(name, revision, {**learner.baseline(), "task": learner.config.task})
                for name, revision, learner in learned]

    async def _apply(self, active, events: list, observations: list) -> StepEffects:
        """One step, applied in slices of ``slice_size`` records with the loop yielded between
        them (heartbeats and predictions are answered; a prediction sees the model after a
        whole event). Live and replayed steps are sliced alike, so they end alike."""
        size = self.slice_size
        parts = [(events[i:i + size], []) for i in range(0, len(events), size)]
        parts += [([], observations[i:i + size]) for i in range(0, len(observations), size)]
        out = StepEffects()
        for part_events, part_observations in parts or [([], [])]:
            done = apply_step(self.learning, active, part_events, part_observations, self.partition)
            out.dead_letters += done.dead_letters
            out.outbox += done.outbox
            out.audit += done.audit
            out.signals += done.signals
            await asyncio.sleep(0)
        return out

    def _journal(self, step: int, revisions: dict[str, int]):
        # the ends as they are now: the write runs while the next step is applied
        events_end, observations_end = self.learning.events_offset, self.learning.observations_offset

        async def write(conn) -> None:
            await conn.execute(
                "INSERT INTO learner_steps (owner, step, events_end, observations_end, learners, generation)"
                " VALUES ($1, $2, $3, $4, $5::jsonb, $6)", self.owner, step, events_end,
                observations_end, json.dumps(revisions), self.claim.generation)
        return write

    def _prune(self, below_step: int):
        async def write(conn) -> None:
            await conn.execute("DELETE FROM learner_steps WHERE owner = $1 AND step <= $2", self.owner, below_step)
        return write

    def _reports(self):
        rows = [(name, self.partition, json.dumps(learner.report()))
                for name, (_, learner) in self.learning.learners.items()]

        async def write(conn) -> None:
            await conn.executemany(
                "INSERT INTO learner_reports (name, partition, report) VALUES ($1, $2, $3::jsonb)"
                " ON CONFLICT (name, partition) DO UPDATE SET report = EXCLUDED.report, updated_at = now()", rows)
        return write

    async def _publish_baselines(self, baselines: list[tuple[str, int, dict]]) -> None:
        """Each learner's answer of last resort, for a router whose request is late: at every
        checkpoint, and after the first step a learner learned in; none for a learner that
        learned nothing here yet (a router then takes another partition's)."""
        pipe = self._redis.pipeline(transaction=False)
        for name, _, baseline in baselines:
            pipe.set(baseline_key(self.settings.cluster_name, name, self.partition), json.dumps(baseline))
        await pipe.execute()
        self._baselines_published.update((name, revision) for name, revision, _ in baselines)

    async def teardown(self) -> None:
        if self._committing is not None:      # the last step's commit: let it land (or fail)
            try:
                await asyncio.wait_for(self._committing, timeout=10)
            except Exception as exc:
                self.log.warning("last step not committed", error=str(exc)[:300])
        for reader in (self.events, self.observations):
            if reader is not None:
                await reader.stop()
        if self.doorbell is not None:
            await self.doorbell.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self.pool is not None:
            await self.pool.close()

    # --- requests -----------------------------------------------------------------------------------

    def predict(self, learner: str, values: dict, entity_key: str | None = None) -> dict:
        if self.state is not WorkerState.RUNNING:
            raise LearnerNotReady(f"partition {self.partition} is {self.state.value}, not answering yet")
        found = self.learning.learners.get(learner)
        if found is None:
            raise LearnerUnknown("learner", f"no learner {learner!r} learns on partition {self.partition}"
                                            " (python run.py learners list)")
        online = found[1]
        return {**online.answer(values, entity_key), "n_learned": online.champion.n_learned, "champion": online.champion_algorithm}

    def active_revisions(self) -> dict[str, int]:
        """The learners this partition learns for from its next step on."""
        return {name: revision for name, (revision, _) in self.active.items()}

    def predict_many(self, learner: str, rows: list[dict]) -> list[dict]:
        """Answers for many rows from one snapshot of the champion."""
        return [self.predict(learner, values) for values in rows]

    def report(self) -> dict:
        return {"partition": self.partition, "step": self.learning.step, "events_offset": self.learning.events_offset,
                "observations_offset": self.learning.observations_offset,
                "learners": {name: learner.report() for name, (_, learner) in self.learning.learners.items()}}

    def heartbeat(self) -> dict:
        beat = super().heartbeat()
        beat.update(offset=self.learning.events_offset, topic="events", partition=self.partition)
        parts = []
        for name, (_, learner) in self.learning.learners.items():
            scores = learner.champion.scores()
            metric = next(iter(scores), None)
            if metric is not None:
                parts.append(f"{name}: {metric} {scores[metric]:.4f} over {learner.champion.n_learned} events")
        if parts:
            beat["activity"] = "; ".join(parts)
        return beat


def baseline_key(cluster: str, learner: str, partition: int) -> str:
    return f"conveyor:{cluster}:learn:baseline:{learner}:{partition}"


def _audit(rows: list[tuple[str, str, str, dict]]):
    async def write(conn) -> None:
        await conn.executemany("INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)",
                               [(a, b, c, json.dumps(d)) for a, b, c, d in rows])
    return write


def _cut(records: list, ends: list[int]) -> list[list]:
    """``records`` (in offset order) cut before each of ``ends``: the records of each step.

    >>> from storage.kafka import Record
    >>> [[r.offset for r in part] for part in _cut([Record(o, None, b"") for o in (3, 4, 7, 8)], [5, 5, 9])]
    [[3, 4], [], [7, 8]]
    """
    parts, i = [], 0
    for end in ends:
        j = i
        while j < len(records) and records[j].offset < end:
            j += 1
        parts.append(records[i:j])
        i = j
    return parts


async def _read_until(reader: PartitionReader, start: int, end: int, timeout_s: float = 60.0) -> list:
    """Exactly the records [start, end) of ``reader`` (positioned at ``start``); the reader is
    left positioned at ``end``. TimeoutError when the log no longer holds them."""
    records: list = []
    position = start
    deadline = time.monotonic() + timeout_s
    while position < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"replay: offsets {position}..{end} did not arrive within {timeout_s:.0f} s")
        got = await reader.read(timeout_ms=1000, max_records=end - position, idle_backoff=False)
        records.extend(r for r in got if r.offset < end)
        if got:
            position = max(position, min(got[-1].offset + 1, end))
    reader.seek(end)
    return records
