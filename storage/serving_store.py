"""What serving reads fast, from Redis: the artifacts of deployed versions (signed, so
any replica can load one without PostgreSQL) and each model's routes (which version
answers as production, which is the previous one, a weighted canary, the replicas of
every live version, and the baseline a caller falls back on).

Keys: ``conveyor:<cluster>:serve:artifact:<model>:<version>`` (signature + artifact),
``conveyor:<cluster>:serve:routes`` (a hash of model -> msgpack :class:`Routes`),
``conveyor:<cluster>:serve:cache:<model>:<version>`` (batch predictions: a hash of entity
key -> msgpack (score, label, stale after)).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from storage.signing import sign, verify


class VersionInfo(msgspec.Struct, kw_only=True):
    candidate_id: str
    replicas: list[str]                    # names of its replica actors
    feature_set_id: str
    dataset: str


class Baseline(msgspec.Struct, kw_only=True):
    """The answer of last resort: the majority class with its prior, or the mean."""

    score: float
    label: str | None = None


class Routes(msgspec.Struct, kw_only=True):
    model: str
    task: str
    revision: int = 0
    production: int | None = None
    previous: int | None = None
    canary: int | None = None
    canary_weight: float = 0.0
    versions: dict[int, VersionInfo] = {}
    baseline: Baseline | None = None
    n_features: int = 0
    feature_names: list[str] = []
    raw_columns: list[str] = []            # the inputs a request's features must name
    #: Versions production was rolled back from (by an operator or the monitor): never rolled
    #: back to; deploying one to production again takes it off.
    demoted: list[int] = []
    #: Earlier production versions, oldest first: the chain a rollback moves back along
    #: (see storage.route_rules).
    history: list[int] = []


_SIG_BYTES = 32


class RedisServingStore:
    def __init__(self, client, cluster: str, signing_key: bytes) -> None:
        self._client = client
        self._prefix = f"conveyor:{cluster}:serve:"
        self._routes_key = f"{self._prefix}routes"
        self._key = signing_key
        self._encode = msgspec.msgpack.Encoder()
        self._decode_routes = msgspec.msgpack.Decoder(Routes)

    async def put_artifact(self, model: str, version: int, artifact: bytes) -> None:
        await self._client.set(self.artifact_key(model, version), sign(self._key, artifact) + artifact)

    async def artifact(self, model: str, version: int) -> bytes:
        """The artifact's bytes, its signature verified (SignatureMismatch otherwise)."""
        raw = await self._client.get(self.artifact_key(model, version))
        if raw is None:
            raise LookupError(f"version: {model} v{version} is not deployed")
        signature, artifact = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
        verify(self._key, artifact, signature)
        return artifact

    async def put_feature_set(self, feature_set_id: str, fitted: bytes) -> None:
        await self._client.set(f"{self._prefix}featureset:{feature_set_id}", sign(self._key, fitted) + fitted)

    async def feature_set(self, feature_set_id: str) -> bytes:
        raw = await self._client.get(f"{self._prefix}featureset:{feature_set_id}")
        if raw is None:
            raise LookupError(f"feature_set_id: {feature_set_id} is not loaded for serving")
        signature, fitted = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
        verify(self._key, fitted, signature)
        return fitted

    async def set_routes(self, routes: Routes) -> Routes:
        """Store ``routes`` with the next revision (callers compare revisions to refresh)."""
        current = await self.routes(routes.model)
        routes = msgspec.structs.replace(routes, revision=(current.revision if current else 0) + 1)
        await self._client.hset(self._routes_key, routes.model, self._encode.encode(routes))
        return routes

    async def routes(self, model: str) -> Routes | None:
        raw = await self._client.hget(self._routes_key, model)
        return None if raw is None else self._decode_routes.decode(raw)

    async def all_routes(self) -> list[Routes]:
        """Every model's routes, in one round trip (read every half second by the deployment
        manager and the fallback, so never a walk of the keyspace, which holds a key per
        entity of every dataset's online store)."""
        return [self._decode_routes.decode(raw) for raw in (await self._client.hgetall(self._routes_key)).values()]

    def artifact_key(self, model: str, version: int) -> str:
        return f"{self._prefix}artifact:{model}:{version}"

    def predictions_key(self, model: str, version: int) -> str:
        return f"{self._prefix}cache:{model}:{version}"

    async def put_predictions(self, model: str, version: int, items: list[tuple[str, Any]], ttl_s: int,
                              chunk: int = 5000) -> None:
        """(entity key, (score, label)) of many rows in the prediction cache, fresh for
        ``ttl_s``: one hash per version, a field per entity holding its answer and when it
        goes stale (a key per entity with its own TTL cost Redis ~2.5x more per row); the
        hash itself expires ``ttl_s`` after its last write."""
        from storage.redis_store import send_packed

        key, stale_at, encode = self.predictions_key(model, version), time.time() + ttl_s, self._encode.encode
        commands: list[tuple] = []
        for start in range(0, len(items), chunk):
            fields: list = ["HSET", key]
            for entity, value in items[start:start + chunk]:
                fields += (entity, encode((*value, stale_at)))
            commands.append(tuple(fields))
        commands.append(("EXPIRE", key, ttl_s))
        await send_packed(self._client, commands)

    async def prediction(self, model: str, version: int, entity_key: str) -> Any:
        """The cached (score, label) of an entity, or None when there is none or it is stale."""
        raw = await self._client.hget(self.predictions_key(model, version), entity_key)
        if raw is None:
            return None
        *value, stale_at = msgspec.msgpack.decode(raw)
        return value if time.time() < stale_at else None
