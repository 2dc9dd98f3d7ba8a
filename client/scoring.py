"""Online scoring, routed in the caller: the routes come from Redis, the chosen version's
replica is called directly (one Ray hop), and when it is late or fails the fallback actor
answers with the previous version, else the baseline is used here, all within the
deadline ("better wrong than late"). Every answer says who gave it; a record of it goes
to the ``scores`` topic without waiting (the score recorder stores it)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import msgspec

from client.deadlines import within
from client.errors import ClientError, Refused
from messages.types import ID_RE, NAME_RE

#: A model name: what messages.types.Name allows.
NAME = NAME_RE      # what a model or learner name may be
ALIASES = ("production", "previous", "canary")
MAX_REQUEST_BYTES = 1 << 20


def valid_entity_key(value: object) -> bool:
    """Whether ``value`` can name an entity: 1-256 printable characters.

    >>> valid_entity_key("user-1"), valid_entity_key("x" * 257), valid_entity_key("")
    (True, False, False)
    """
    return isinstance(value, str) and 0 < len(value) <= 256 and value.isprintable()


class ScoringRefused(Refused):
    """A request refused (unknown model or version, bad or missing features)."""


class DeploymentRefused(Refused):
    """A deployment, rollback or batch job that could not start."""


class ScoringFailed(ClientError):
    """Nothing could answer within the deadline (no version, no fallback, no baseline)."""


class ScoreResult(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    model: str
    version: int | None            # the version that answered (None: the baseline)
    score: float | None            # positive-class probability / top-class probability / value
    label: str | None
    answered_by: str               # primary, fallback, baseline, cache
    fallback: bool
    latency_ms: float
    reason: str | None = None      # why the primary did not answer


def fallback_at_s(deadline_s: float) -> float:
    """When to ask the fallback if the primary has not answered: a quarter of the deadline
    (at least 3 ms, at most half) before it.

    >>> round(fallback_at_s(0.050), 4), round(fallback_at_s(0.004), 4)
    (0.0375, 0.002)
    """
    return deadline_s - min(max(0.25 * deadline_s, 0.003), deadline_s / 2)


def baseline_room_s(deadline_s: float) -> float:
    """What is left of a deadline for the last resort, the baseline, to be answered in: a
    tenth of it, at least 2 ms. A busy caller's event loop wakes a few ms late (p99 7 ms
    measured in the chaos benchmark's driver); with 5 % (5 ms of 100) answers that waited
    for the fallback came after the deadline.

    >>> round(baseline_room_s(0.100), 4), round(baseline_room_s(0.010), 4)
    (0.01, 0.002)
    """
    return max(0.002, 0.1 * deadline_s)


def _cause(exc: BaseException) -> BaseException:
    """The exception a remote method raised (Ray wraps it)."""
    return getattr(exc, "cause", None) or exc


class Router:
    def __init__(self, settings, redis, publish_many, routes_ttl_s: float = 0.5, record_every_s: float = 0.02) -> None:
        from actors.remote import RayRuntime
        from actors.wiring import signing_key_bytes
        from client.actor_lookup import ActorFinder
        from storage.serving_store import RedisServingStore

        self.settings, self._redis, self._publish_many = settings, redis, publish_many
        self.record_every_s = record_every_s
        #: Records carry the request's raw features for the monitor's drift figures.
        self.record_features = settings.monitor_features
        self._records: list[tuple[bytes, bytes]] = []
        self._flusher: asyncio.Task | None = None
        self._store = RedisServingStore(redis, settings.cluster_name, signing_key_bytes(settings))
        self._runtime = RayRuntime(settings.cluster_name)
        self._routes: dict[str, tuple[float, object]] = {}
        self._actors = ActorFinder(self._runtime.lookup)
        self._turn = itertools.count()
        self.routes_ttl_s = routes_ttl_s
        self._pending: set[asyncio.Task] = set()
        import actors.serving  # noqa: F401  (imported now, not inside the first request's deadline)

        fallback = self.actor("root.fallback")
        if fallback is not None:   # the first call to an actor opens a connection: open it now
            self._warm(fallback.ping.remote())

    async def routes(self, model: str, within_s: float | None = None):
        """``model``'s routes, read again from Redis every ``routes_ttl_s``. Once some were read,
        a read waits at most ``within_s``: while Redis is unreachable or slow (down, being
        repaired, loading its data) requests are routed by what was read last, and Redis is
        tried again a TTL later, not by every request."""
        cached = self._routes.get(model)
        if cached is not None and time.monotonic() - cached[0] < self.routes_ttl_s:
            return cached[1]
        from redis.exceptions import ConnectionError as RedisDown, TimeoutError as RedisLate

        try:
            read = self._store.routes(model)
            routes = await (read if cached is None or within_s is None
                            else within(read, max(within_s, 0.001)))
        except (OSError, RedisDown, RedisLate, asyncio.TimeoutError):
            if cached is None:
                raise
            self._routes[model] = (time.monotonic(), cached[1])
            return cached[1]     # Redis unreachable: route by what was last read rather than fail
        if routes is None or routes.production is None:
            raise ScoringRefused("model", f"{model!r} is not deployed (python run.py models deploy {model})")
        if cached is None:   # first sight of this model: find its replicas and open their connections
            for info in routes.versions.values():
                for name in info.replicas:
                    self._warm(self._open(name))
        self._routes[model] = (time.monotonic(), routes)
        return routes

    def forget_routes(self, model: str) -> None:
        """Read ``model``'s routes afresh on its next request, and look its replicas up again
        (after a deploy or rollback through this client, which must not route by what it just
        changed, nor to a replica of the same name that it replaced)."""
        self._routes.pop(model, None)
        self._actors.forget_below(f"serve.{model}.v")

    def actor(self, name: str):
        """The handle of the named actor (looked up once, then cached); None when it is not running.
        It may wait for Ray's GCS: on a request's path use :meth:`find_actor`."""
        return self._actors.lookup_now(name)

    async def find_actor(self, name: str, within_s: float):
        """The handle of the named actor, looked up without holding up this process's other
        requests, waiting at most ``within_s`` (:class:`client.actor_lookup.ActorFinder`)."""
        return await self._actors.find(name, within_s)

    def was_late(self, name: str) -> None:
        """The named actor let a request time out: ask the others first for a while."""
        self._actors.was_late(name)

    def punctual_first(self, names: list[str]) -> list[str]:
        return self._actors.punctual_first(names)

    async def _open(self, name: str) -> None:
        """Find the named actor and open this process's connection to it (its first call does)."""
        handle = await self.find_actor(name, 10.0)
        if handle is not None:
            await handle.stats.remote()

    def forget_actor(self, name: str) -> None:
        """Drop the cached handle of ``name`` (its actor failed or restarted): the next call looks it up."""
        self._actors.forget(name)

    async def score(self, model: str, features: dict | None = None, entity_key: str | None = None,
                    version: int | str | None = None, deadline_ms: float = 100.0,
                    request_id: str | None = None) -> ScoreResult:
        from messages.base import new_id

        began = time.perf_counter()
        request = self._check(model, features, entity_key, deadline_ms)
        if request_id is not None and (not isinstance(request_id, str) or not ID_RE.match(request_id)):
            raise ScoringRefused("request_id", f"1-64 letters, digits and _.:- only; got {str(request_id)[:80]!r}")
        request_id = request_id or new_id()
        request["request_id"] = request_id      # on the log lines of whoever answers it
        deadline_s = deadline_ms / 1000.0
        routes = await self.routes(model, within_s=0.25 * deadline_s)
        chosen = self._choose(routes, version)
        if features is not None:
            missing = [c for c in routes.raw_columns if c not in features]
            if missing:
                raise ScoringRefused(f"features.{missing[0]}", f"missing ({len(missing)} of the model's "
                                                              f"{len(routes.raw_columns)} inputs are missing)")
        reason = None
        answer = (await self._cached(model, chosen, entity_key, 0.25 * deadline_s)
                  if entity_key and version is None else None)
        if answer is None:
            answer, reason = await self._primary(routes, chosen, request, began, fallback_at_s(deadline_s))
        if answer is None:
            answer = await self._fallback(routes, model, chosen, request, began, deadline_s)
        latency_ms = (time.perf_counter() - began) * 1000.0
        result = ScoreResult(request_id=request_id, model=model, version=answer.get("version"),
                             score=answer.get("score"), label=answer.get("label"),
                             answered_by=answer["answered_by"], fallback=answer["answered_by"] in ("fallback", "baseline"),
                             latency_ms=latency_ms, reason=reason)
        self._record(result, entity_key, features if self.record_features else None, chosen)
        return result

    # --- steps ------------------------------------------------------------------------------

    @staticmethod
    def _check(model, features, entity_key, deadline_ms) -> dict:
        from actors.serving import ScoringError, check_features

        if not isinstance(model, str) or not NAME.match(model):
            raise ScoringRefused("model", "letters, digits, '_', '.', '-'; starts with a letter; at most 63")
        if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, (int, float)) or not 1 <= deadline_ms <= 60_000:
            raise ScoringRefused("deadline_ms", f"a number of milliseconds from 1 to 60,000; got {deadline_ms!r}")
        if (features is None) == (entity_key is None):
            raise ScoringRefused("features", "give exactly one of features and entity_key")
        if entity_key is not None and not valid_entity_key(entity_key):
            raise ScoringRefused("entity_key", "1-256 printable characters")
        if features is not None:
            try:
                check_features(features)
            except ScoringError as exc:
                raise ScoringRefused(exc.field, exc.reason) from None
            size = len(msgspec.json.encode(features))
            if size > MAX_REQUEST_BYTES:
                raise ScoringRefused("features", f"{size} bytes exceeds the limit of {MAX_REQUEST_BYTES}")
        return {"features": features} if features is not None else {"entity_key": entity_key}

    @staticmethod
    def _choose(routes, version) -> int:
        if version is None:
            if routes.canary is not None and routes.canary_weight > 0 and random.random() < routes.canary_weight:
                return routes.canary
            return routes.production
        if isinstance(version, str) and version in ALIASES:
            chosen = getattr(routes, version)
            if chosen is None:
                raise ScoringRefused("version", f"{routes.model} has no {version} version")
            return chosen
        if isinstance(version, bool) or not isinstance(version, int) or version not in routes.versions:
            live = ", ".join(str(v) for v in sorted(routes.versions))
            raise ScoringRefused("version", f"{routes.model} v{version} is not live (live: {live}; or an alias: "
                                            f"{', '.join(ALIASES)})")
        return version

    async def _cached(self, model: str, version: int, entity_key: str, within_s: float) -> dict | None:
        """The batch prediction cached for the entity, when Redis has a fresh one within ``within_s``."""
        from redis.exceptions import RedisError

        try:
            found = await within(self._store.prediction(model, version, entity_key), max(within_s, 0.001))
        except (RedisError, OSError, asyncio.TimeoutError):     # no cache now: the model answers
            return None
        if found is None:
            return None
        score, label = found
        return {"score": score, "label": label, "version": version, "answered_by": "cache"}

    async def _primary(self, routes, version: int, request: dict, began: float, until_s: float):
        """The chosen version's answer before ``until_s`` (replicas tried in turn on failure);
        (None, reason) when it did not come."""
        from actors.serving import ScoringError

        replicas = routes.versions[version].replicas
        start = next(self._turn)
        turn = self.punctual_first([replicas[(start + i) % len(replicas)] for i in range(len(replicas))])
        reason = "no replica"
        for name in turn:
            left = until_s - (time.perf_counter() - began)
            if left <= 0:
                return None, reason
            handle = await self.find_actor(name, left)
            if handle is None:
                reason = f"replica {name} is not running (or was not found in time)"
                continue
            left = until_s - (time.perf_counter() - began)
            if left <= 0:
                return None, reason
            try:
                answer = await within(handle.score.remote({**request, "answer_by": time.time() + left}), left)
                return {**answer, "answered_by": "primary"}, None
            except asyncio.TimeoutError:
                self.was_late(name)
                return None, f"v{version} did not answer within {until_s * 1000:.0f} ms"
            except Exception as exc:
                cause = _cause(exc)
                if isinstance(cause, ScoringError):
                    raise ScoringRefused(cause.field, cause.reason) from None
                self.forget_actor(name)
                reason = f"replica {name} failed: {type(cause).__name__}"
        return None, reason

    async def _fallback(self, routes, model: str, failed: int, request: dict, began: float, deadline_s: float) -> dict:
        from actors.serving import ScoringError

        room = baseline_room_s(deadline_s)
        left = deadline_s - (time.perf_counter() - began) - room
        handle = await self.find_actor("root.fallback", left) if left > 0 else None
        left = deadline_s - (time.perf_counter() - began) - room
        if handle is not None and left > 0:
            try:
                return await within(handle.request.remote("score", model, request, failed), left)
            except asyncio.TimeoutError:
                pass
            except Exception as exc:
                cause = _cause(exc)
                if isinstance(cause, ScoringError) and cause.field not in ("model",):
                    raise ScoringRefused(cause.field, cause.reason) from None
                self.forget_actor("root.fallback")
        if routes.baseline is None:
            raise ScoringFailed(f"{model}: v{failed} did not answer in time and there is no fallback")
        return {"score": routes.baseline.score, "label": routes.baseline.label, "version": None,
                "answered_by": "baseline"}

    def _warm(self, ref) -> None:
        async def settle():
            try:
                await ref
            except Exception:
                pass

        task = asyncio.get_running_loop().create_task(settle())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _record(self, result: ScoreResult, entity_key: str | None, features: dict | None = None,
                routed: int | None = None) -> None:
        from messages.codec import encode
        from messages.serving import ScoreRecorded

        event = ScoreRecorded(request_id=result.request_id, model=result.model, version=result.version,
                              answered_by=result.answered_by, score=result.score, label=result.label,
                              latency_ms=result.latency_ms, fallback=result.fallback, entity_key=entity_key,
                              reason=result.reason, features=features, routed_version=routed)
        self._records.append((encode(event), result.model.encode()))
        if self._flusher is None or self._flusher.done():   # records leave together, every record_every_s
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        while self._records:   # records added while a batch is being sent go with the next one
            await asyncio.sleep(self.record_every_s)
            await self._send_records()

    async def _send_records(self) -> None:
        records, self._records = self._records, []
        if records:
            await self._publish_many("scores", records)

    async def flush(self) -> None:
        """Wait until every score record handed to the broker is published."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._send_records()
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
