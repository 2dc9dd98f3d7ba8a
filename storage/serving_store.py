"""What serving reads fast, from Redis: the artifacts of deployed versions (signed, so
any replica can load one without PostgreSQL) and each model's routes (which version
answers as production, which is the previous one, a weighted canary, the replicas of
every live version, and the baseline a caller falls back on).

Keys: ``conveyor:<cluster>:serve:artifact:<model>:<version>`` (signature + artifact),
``conveyor:<cluster>:serve:routes:<model>`` (msgpack :class:`Routes`).
"""

from __future__ import annotations

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


_SIG_BYTES = 32
_SET_MANY_WITH_TTL = """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i], 'EX', ttl)
end
return #KEYS
"""


class RedisServingStore:
    def __init__(self, client, cluster: str, signing_key: bytes) -> None:
        self._client = client
        self._prefix = f"conveyor:{cluster}:serve:"
        self._key = signing_key
        self._encode = msgspec.msgpack.Encoder()
        self._decode_routes = msgspec.msgpack.Decoder(Routes)

    async def put_artifact(self, model: str, version: int, artifact: bytes) -> None:
        await self._client.set(f"{self._prefix}artifact:{model}:{version}", sign(self._key, artifact) + artifact)

    async def artifact(self, model: str, version: int) -> bytes:
        """The artifact's bytes, its signature verified (SignatureMismatch otherwise)."""
        raw = await self._client.get(f"{self._prefix}artifact:{model}:{version}")
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
        await self._client.set(f"{self._prefix}routes:{routes.model}", self._encode.encode(routes))
        return routes

    async def routes(self, model: str) -> Routes | None:
        raw = await self._client.get(f"{self._prefix}routes:{model}")
        return None if raw is None else self._decode_routes.decode(raw)

    async def all_routes(self) -> list[Routes]:
        out = []
        async for key in self._client.scan_iter(match=f"{self._prefix}routes:*", count=100):
            raw = await self._client.get(key)
            if raw is not None:
                out.append(self._decode_routes.decode(raw))
        return out

    def prediction_key(self, model: str, version: int, entity_key: str) -> str:
        return f"{self._prefix}cache:{model}:{version}:{entity_key}"

    async def put_predictions(self, model: str, version: int, items: list[tuple[str, Any]], ttl_s: int,
                              chunk: int = 5000) -> None:
        """(entity key, (score, label)) of many rows in the prediction cache, with a TTL: one
        server-side script call per chunk (a command each costs ~40 µs of client time)."""
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            await self._client.eval(_SET_MANY_WITH_TTL, len(part),
                                    *(self.prediction_key(model, version, key) for key, _ in part),
                                    *(self._encode.encode(value) for _, value in part), ttl_s)

    async def prediction(self, model: str, version: int, entity_key: str) -> Any:
        raw = await self._client.get(self.prediction_key(model, version, entity_key))
        return None if raw is None else msgspec.msgpack.decode(raw)
