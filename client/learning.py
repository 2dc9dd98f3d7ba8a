"""Client side of online learning: learners (created from a TOML config, stored as
immutable revisions the learner partitions pick up within a second), labels submitted
as observations, events submitted in bulk, reports, and scoring with a live learner.

Mixed into :class:`client.connection.Conveyor`.
"""

from __future__ import annotations

import asyncio
import json
import time

from client.data import check_name
from client.errors import ClientError, Refused


class LearnerRefused(Refused):
    """A learner configuration, label or request refused (the field and the reason)."""


class LearnerNotFound(ClientError):
    """No learner of that name exists."""


def check_learner_config(config_toml: str):
    """The checked config, or :class:`LearnerRefused` naming the field."""
    from ml.learner_config import LearnerConfigError, parse_learner_config

    if not isinstance(config_toml, (str, bytes)):
        raise LearnerRefused("config", f"expected TOML text, got {type(config_toml).__name__}")
    try:
        return parse_learner_config(config_toml)
    except LearnerConfigError as exc:
        raise LearnerRefused(exc.field, exc.reason) from None


def partition_of(entity_key: str, n_partitions: int) -> int:
    """The partition of ``events`` an entity's events go to (the producer's default partitioner).

    >>> partition_of("user-1", 1)
    0
    >>> partition_of("user-1", 4) == partition_of("user-1", 4)
    True
    """
    from aiokafka.partitioner import murmur2

    return (murmur2(entity_key.encode()) & 0x7FFFFFFF) % n_partitions


class LearningCalls:
    """Online-learning calls of the client."""

    async def create_learner(self, config, timeout_s: float = 30.0) -> dict:
        """Register a learner (TOML text or a path to it); a learner of the same name gets a new
        revision, learned from scratch from then on. Returns name, revision and stream once every
        learner partition has taken it up: every event submitted afterwards is learned."""
        from client.connection import _config_text

        text = _config_text(config)
        parsed = check_learner_config(text)
        import asyncpg

        pool = await self._db()
        try:
            async with pool.acquire() as conn, conn.transaction():     # the revision and its audit record together
                revision = await conn.fetchval(
                    "INSERT INTO learners (name, revision, stream, config) SELECT $1, COALESCE(max(revision), 0) + 1,"
                    " $2, $3 FROM learners WHERE name = $1 RETURNING revision", parsed.name, parsed.stream, text)
                await conn.execute("INSERT INTO audit_log (actor, action, subject, detail) VALUES ('client',"
                                   " 'learner.created', $1, $2::jsonb)", parsed.name,
                                   json.dumps({"revision": revision, "stream": parsed.stream}))
        except asyncpg.UniqueViolationError:
            raise LearnerRefused("name", f"{parsed.name!r} is being created by another caller; try again") from None
        await self._until_partitions(lambda active: active.get(parsed.name) == revision, timeout_s,
                                     f"learner {parsed.name} revision {revision} taken up")
        return {"name": parsed.name, "revision": revision, "stream": parsed.stream, "task": parsed.task}

    async def learner_partitions(self) -> int:
        """How many learner partitions the cluster runs: one per partition of ``events`` (the
        broker says how many; this process's settings may differ from the cluster's)."""
        publisher = await self._ensure_publisher()
        return await publisher.partition_count("events")

    async def _until_partitions(self, check, timeout_s: float, what: str) -> None:
        """Wait until ``check(active revisions)`` holds on every learner partition."""
        self._join_ray()      # sets Ray's environment before ray is imported
        from actors.remote import RayRuntime

        runtime = RayRuntime(self.settings.cluster_name)
        deadline = time.monotonic() + timeout_s
        for p in range(await self.learner_partitions()):
            while True:
                handle = runtime.lookup(f"root.learn.learner-{p}")
                try:
                    if handle is not None and check(await asyncio.wait_for(
                            handle.request.remote("active_revisions"), 5.0)):
                        break
                except Exception as exc:   # a partition being restarted: ask again
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{what}: learner partition {p} did not answer ({exc})") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what}: not on learner partition {p} after {timeout_s:.0f} s")
                await asyncio.sleep(0.1)

    async def remove_learner(self, name: str) -> int:
        """Stop a learner (its partitions drop it within a second); the revision of the removal."""
        check_name("name", name)
        pool = await self._db()
        revision = await pool.fetchval(
            "INSERT INTO learners (name, revision, stream, config, removed) SELECT name, revision + 1, stream, config,"
            " true FROM learners WHERE name = $1 AND NOT removed AND revision = (SELECT max(revision) FROM learners"
            " WHERE name = $1) RETURNING revision", name)
        if revision is None:
            raise LearnerNotFound(f"no learner {name!r} (python run.py learners list)")
        await pool.execute("INSERT INTO audit_log (actor, action, subject, detail) VALUES ('client', 'learner.removed',"
                           " $1, $2::jsonb)", name, json.dumps({"revision": revision}))
        await self._until_partitions(lambda active: name not in active, 30.0, f"learner {name} removed")
        return revision

    async def learners(self) -> list[dict]:
        """Every live learner with its stream, revision and the reports its partitions last checkpointed."""
        rows = await (await self._db()).fetch(
            "SELECT l.name, l.revision, l.stream, l.created_at,"
            " COALESCE(jsonb_object_agg(r.partition, r.report) FILTER (WHERE r.partition IS NOT NULL), '{}') AS reports"
            " FROM (SELECT DISTINCT ON (name) * FROM learners ORDER BY name, revision DESC) l"
            " LEFT JOIN learner_reports r ON r.name = l.name WHERE NOT l.removed"
            " GROUP BY l.name, l.revision, l.stream, l.created_at ORDER BY l.name")
        return [{**dict(r), "reports": json.loads(r["reports"])} for r in rows]

    async def learner_report(self, name: str, timeout_s: float = 10.0) -> dict:
        """The learner's live report from every partition: {partition: report} (progressive scores,
        counts of predictions, learned events, pending, expired and unknown labels, drifts,
        promotions, the champion and the challenger)."""
        check_name("name", name)
        if name not in {learner["name"] for learner in await self.learners()}:
            raise LearnerNotFound(f"no learner {name!r} (python run.py learners list)")
        self._join_ray()      # sets Ray's environment before ray is imported
        from actors.remote import RayRuntime

        runtime = RayRuntime(self.settings.cluster_name)
        out = {}
        for p in range(await self.learner_partitions()):
            handle = runtime.lookup(f"root.learn.learner-{p}")
            if handle is None:
                continue
            report = await asyncio.wait_for(handle.request.remote("report"), timeout_s)
            if name in report["learners"]:
                out[p] = report["learners"][name]
        return out

    async def wait_learned(self, name: str, n_events: int, timeout_s: float = 300.0) -> dict:
        """Wait until the learner's partitions have learned ``n_events`` in all; their reports."""
        deadline = time.monotonic() + timeout_s
        while True:
            report = await self.learner_report(name)
            if sum(r["n_learned"] for r in report.values()) >= n_events:
                return report
            if time.monotonic() > deadline:
                got = sum(r["n_learned"] for r in report.values())
                raise TimeoutError(f"learner {name}: {got} of {n_events} events learned after {timeout_s:.0f} s")
            await asyncio.sleep(0.2)

    async def observe(self, stream: str, event_id: str, entity_key: str, label) -> str:
        """Publish the label of an earlier event (joined to its prediction by ``event_id``); the message id."""
        from messages.stream import Observation

        try:
            message = Observation(stream=stream, event_id=event_id, entity_key=entity_key, label=label)
        except Exception as exc:   # msgspec checks only when decoding: re-check through the codec below
            raise LearnerRefused("observation", str(exc)) from None
        _check_wire(message)
        return await self.submit(message, key=entity_key)

    async def submit_many(self, messages: list, topic: str | None = None) -> list[str]:
        """Publish many messages together (each to its default topic, keyed like :meth:`submit`);
        their ids, once the broker has them all."""
        from client.connection import DEFAULT_TOPICS
        from client.errors import SubmitRefused
        from messages.codec import MAX_MESSAGE_BYTES, encode

        by_topic: dict[str, list[tuple[bytes, bytes | None]]] = {}
        for i, message in enumerate(messages):
            where = topic or DEFAULT_TOPICS.get(type(message))
            if where is None:
                raise SubmitRefused(f"messages[{i}]", f"no default topic for {type(message).__name__}; name one")
            try:
                payload = encode(message)
            except UnicodeEncodeError:
                raise SubmitRefused(f"messages[{i}]", "holds text that is not valid Unicode") from None
            if len(payload) > MAX_MESSAGE_BYTES:
                raise SubmitRefused(f"messages[{i}]", f"{len(payload)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
            key = getattr(message, "entity_key", None)
            by_topic.setdefault(where, []).append((payload, key.encode() if key else None))
        publisher = await self._ensure_publisher()
        for where, items in by_topic.items():
            await publisher.publish_many(where, items)
        return [m.msg_id for m in messages]

    async def connect_learners(self, timeout_s: float = 10.0) -> None:
        """Open this process's connections to every learner partition now: a process's first
        call to an actor sets its connection up, which a cold one-off request would otherwise
        pay inside its deadline (and be answered by the baseline)."""
        import asyncio

        router = await self._router()
        if getattr(self, "_n_learner_partitions", None) is None:
            self._n_learner_partitions = await self.learner_partitions()
        async def ping(partition: int) -> None:
            handle = await router.find_actor(f"root.learn.learner-{partition}", timeout_s)
            if handle is not None:
                await handle.ping.remote()

        await asyncio.wait_for(asyncio.gather(*(ping(p) for p in range(self._n_learner_partitions)),
                                              return_exceptions=True), timeout=timeout_s)

    async def score_online(self, learner: str, features: dict, *, entity_key: str | None = None,
                           deadline_ms: float = 100.0):
        """Score with a live learner's champion (on the entity's partition, else partition 0) within
        ``deadline_ms``; late, the learner's baseline answers. A :class:`client.scoring.ScoreResult`."""
        from client.online_scoring import score_online

        router = await self._router()
        if getattr(self, "_n_learner_partitions", None) is None:
            self._n_learner_partitions = await self.learner_partitions()
        return await score_online(router, learner, features, entity_key, deadline_ms, self._n_learner_partitions)


def _check_wire(message) -> None:
    """Refuse what the learner partitions' decoder would refuse (msgspec checks constraints on decode)."""
    from messages.codec import DecodeFailed, decode, encode

    try:
        decode(encode(message))
    except DecodeFailed as exc:
        field = exc.reason.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in exc.reason else "observation"
        raise LearnerRefused(field, exc.reason.split(" - at ")[0]) from None
    except UnicodeEncodeError:
        raise LearnerRefused("observation", "holds text that is not valid Unicode") from None
