"""The offline feature store (PostgreSQL) and the online store (Redis: the latest
vector per entity key, with a TTL)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import AsyncIterable, Sequence

import asyncpg
import msgspec
import numpy as np

from storage.copy_binary import COLUMNS as COPY_COLUMNS
from storage.copy_binary import SIGNATURE as COPY_SIGNATURE
from storage.copy_binary import TRAILER as COPY_TRAILER
from storage.copy_binary import encode_rows
from storage.float_arrays import float8_matrix
from storage.signing import sign, verify


@dataclass(frozen=True)
class FeatureRows:
    """The vectors of one batch: row ``j`` of ``X`` comes from line ``lines[j]`` of the
    raw batch, of entity ``keys[j]``, with label ``labels[j]`` (None when absent)."""

    lines: Sequence[int]
    keys: Sequence[str | None]
    X: np.ndarray
    labels: Sequence[str | None]

    def __len__(self) -> int:
        return len(self.lines)


@dataclass(frozen=True)
class EncodedRows:
    """Vectors in the binary COPY form (:meth:`PostgresFeatureStore.encoded`, CPU-bound: a
    thread can encode a part while the event loop sends the earlier ones)."""

    n_rows: int
    pieces: list[bytes]

    def __len__(self) -> int:
        return self.n_rows


@dataclass(frozen=True)
class StoredFeatureSet:
    feature_set_id: str
    dataset: str
    spec_toml: str
    fitted: bytes
    feature_names: list[str]


class PostgresFeatureStore:
    def __init__(self, pool: asyncpg.Pool, signing_key: bytes) -> None:
        self._pool = pool
        self._key = signing_key

    async def set_spec(self, dataset: str, spec_toml: str, actor: str = "client") -> int:
        """The dataset's current spec, kept as a new version by the configuration service; the version."""
        from storage.config_store import set_config

        return await set_config(self._pool, "feature_spec", dataset, spec_toml, actor)

    async def spec(self, dataset: str) -> str | None:
        return await self._pool.fetchval("SELECT spec_toml FROM feature_specs WHERE dataset = $1", dataset)

    async def latest_set(self, dataset: str, spec_toml: str) -> StoredFeatureSet | None:
        """The newest feature set of ``dataset`` fitted from exactly this spec (signature checked)."""
        row = await self._pool.fetchrow(
            "SELECT feature_set_id, fitted, signature, feature_names FROM feature_sets"
            " WHERE dataset = $1 AND spec_toml = $2 ORDER BY created_at DESC LIMIT 1", dataset, spec_toml)
        if row is None:
            return None
        verify(self._key, bytes(row["fitted"]), bytes(row["signature"]))
        return StoredFeatureSet(row["feature_set_id"], dataset, spec_toml, bytes(row["fitted"]),
                                list(row["feature_names"]))

    async def add_set(self, conn, dataset: str, spec_toml: str, feature_set_id: str, fitted: bytes,
                      feature_names: Sequence[str], batch_id: str) -> None:
        await conn.execute(
            "INSERT INTO feature_sets (feature_set_id, dataset, spec_toml, fitted, signature, feature_names,"
            " fitted_on_batch) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (feature_set_id) DO NOTHING",
            feature_set_id, dataset, spec_toml, fitted, sign(self._key, fitted), list(feature_names), batch_id)

    @staticmethod
    def encoded(feature_set_id: str, batch_id: str, rows: FeatureRows) -> EncodedRows:
        """Pure and CPU-bound: ``rows`` in the binary COPY form :meth:`write_vectors` sends."""
        return EncodedRows(len(rows), list(encode_rows(feature_set_id, batch_id, rows.lines, rows.keys, rows.X,
                                                       rows.labels)))

    async def write_vectors(self, conn, feature_set_id: str, batch_id: str, parts: AsyncIterable[EncodedRows]) -> int:
        """The vectors of a batch in one binary COPY, in the caller's transaction, fed part
        by part as ``parts`` yields them (each :meth:`encoded`): PostgreSQL stores one part
        while the next is made. With :meth:`write_quality` in the same transaction, all of a
        batch lands or none (a replay first asks :meth:`prepared`). The number of vectors.

        Raises
        ------
        LookupError
            No feature set ``feature_set_id`` (checked once per batch, the row locked
            against removal until the transaction ends, instead of a foreign key checked
            per vector).
        """
        if not await conn.fetchval("SELECT 1 FROM feature_sets WHERE feature_set_id = $1 FOR KEY SHARE",
                                   feature_set_id):
            raise LookupError(f"feature_set_id: no feature set {feature_set_id!r} to write batch {batch_id} into")
        written = 0

        async def source():
            nonlocal written
            yield COPY_SIGNATURE
            async for part in parts:
                written += len(part)
                for piece in part.pieces:
                    yield piece
            yield COPY_TRAILER

        await conn.copy_to_table("features", source=source(), columns=list(COPY_COLUMNS), format="binary")
        return written

    async def write_quality(self, conn, feature_set_id: str, batch_id: str, quarantined: list[tuple[int, str]],
                            report: bytes) -> None:
        """A batch's quarantined rows ((line, reason)) and its quality report (JSON), in the
        caller's transaction."""
        await conn.executemany(
            "INSERT INTO feature_quarantine (feature_set_id, batch_id, line_no, reason) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING", [(feature_set_id, batch_id, line, reason) for line, reason in quarantined])
        await conn.execute(
            "INSERT INTO feature_quality (feature_set_id, batch_id, report) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT DO NOTHING", feature_set_id, batch_id, report.decode())

    async def prepared(self, feature_set_id: str, batch_id: str) -> bool:
        """Whether this batch already has its features in this feature set."""
        return bool(await self._pool.fetchval("SELECT 1 FROM feature_quality WHERE feature_set_id = $1"
                                              " AND batch_id = $2", feature_set_id, batch_id))

    async def latest_vectors(self, dataset: str) -> list[tuple[str, str, list[float]]]:
        """(entity key, feature set id, vector) of the newest row of every entity of the
        newest feature set of ``dataset``: what the online store is warmed with."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT ON (f.entity_key) f.entity_key, f.feature_set_id, f.vector"
            " FROM features f JOIN raw_batches b ON b.batch_id = f.batch_id"
            " WHERE f.feature_set_id = (SELECT feature_set_id FROM feature_sets WHERE dataset = $1"
            "                           ORDER BY created_at DESC LIMIT 1) AND f.entity_key IS NOT NULL"
            " ORDER BY f.entity_key, b.created_at DESC, f.line_no DESC", dataset)
        return [(r["entity_key"], r["feature_set_id"], list(r["vector"])) for r in rows]

    async def matrix(self, feature_set_id: str, batch_ids: Sequence[str] | None = None
                     ) -> tuple[list[str], list[str | None], np.ndarray, list[str | None]]:
        """(feature names, entity keys, vectors as a (rows, features) float matrix, labels) of
        a feature set's rows in a stable order (batch, then line); restricted to ``batch_ids``
        when given. The vectors travel in their binary form (``array_send``) and become the
        matrix in one step, never a Python float each."""
        names = await self._pool.fetchval("SELECT feature_names FROM feature_sets WHERE feature_set_id = $1",
                                          feature_set_id)
        if names is None:
            raise LookupError(f"feature_set_id: no feature set {feature_set_id!r}")
        rows = await self._pool.fetch(
            "SELECT f.entity_key, array_send(f.vector) AS vector, f.label FROM features f"
            " JOIN raw_batches b USING (batch_id)"
            " WHERE f.feature_set_id = $1 AND ($2::text[] IS NULL OR f.batch_id = ANY($2::text[]))"
            " ORDER BY b.created_at, f.batch_id, f.line_no", feature_set_id,
            list(batch_ids) if batch_ids is not None else None)
        X = float8_matrix([r["vector"] for r in rows], len(names))
        return list(names), [r["entity_key"] for r in rows], X, [r["label"] for r in rows]

    async def datasets_with_features(self) -> list[str]:
        return [r["dataset"] for r in await self._pool.fetch("SELECT DISTINCT dataset FROM feature_sets")]


class OnlineVector(msgspec.Struct, frozen=True):
    feature_set_id: str
    vector: list[float]
    updated_at: float


def msgpack_vectors(feature_set_id: str, X: np.ndarray, updated_at: float) -> tuple[bytes, int]:
    """``OnlineVector(feature_set_id, X[j], updated_at)`` of every row ``j``, in msgpack as
    the store's encoder writes it (a map of the three fields; every float a float 64),
    concatenated; and the size of one (all are the same size).

    >>> values, width = msgpack_vectors("fs", np.array([[1.5, -2.0], [0.0, 3.25]]), 7.0)
    >>> dec = msgspec.msgpack.Decoder(OnlineVector)
    >>> [dec.decode(values[i:i + width]) for i in range(0, len(values), width)]  # doctest: +NORMALIZE_WHITESPACE
    [OnlineVector(feature_set_id='fs', vector=[1.5, -2.0], updated_at=7.0),
     OnlineVector(feature_set_id='fs', vector=[0.0, 3.25], updated_at=7.0)]
    """
    encode = msgspec.msgpack.encode
    n_rows, n_features = X.shape
    empty = encode(OnlineVector(feature_set_id, [], updated_at))
    array_header = encode([None] * n_features)[:len(encode([None] * n_features)) - n_features]
    head = encode({"feature_set_id": feature_set_id, "vector": None})[:-1]   # the map of three: fixed below
    head = b"\x83" + head[1:] + array_header
    tail = empty[empty.index(encode("updated_at")):]
    dtype = np.dtype([("head", "u1", (len(head),)), ("elements", [("tag", "u1"), ("value", ">f8")], (n_features,)),
                      ("tail", "u1", (len(tail),))])
    rows = np.empty(n_rows, dtype=dtype)
    rows["head"] = np.frombuffer(head, dtype="u1")
    rows["elements"]["tag"] = 0xCB
    rows["elements"]["value"] = X
    rows["tail"] = np.frombuffer(tail, dtype="u1")
    return rows.tobytes(), dtype.itemsize


#: Keys per script call. Redis serves no other client while a script runs, and every
#: client (the serving actors' reads included) gives up on a reply after its socket
#: timeout: with 10,000 keys per call, on a loaded machine (load average ~25), Redis
#: left clients without a reply for more than 5 s and root.prepare, root.serve and
#: root.fallback crashed on "Timeout reading from redis.sock". An idle machine sets
#: about 200 keys per ms.
ONLINE_CHUNK = 2_000


#: SET ``ARGV[1] .. key`` to its value, with the TTL ``ARGV[2]``, for every key of a chunk
#: (single Redis, not Redis Cluster). Keys and values come as two blobs cut by their
#: sizes (msgpack arrays of ints): three arguments per chunk instead of two per key,
#: so the client does not pack a command argument per key.
_SET_CHUNK_WITH_TTL = """
local prefix, ttl = ARGV[1], ARGV[2]
local key_sizes, keys = cmsgpack.unpack(ARGV[3]), ARGV[4]
local value_sizes, values = cmsgpack.unpack(ARGV[5]), ARGV[6]
local k, v = 1, 1
for i = 1, #key_sizes do
  local key_end, value_end = k + key_sizes[i], v + value_sizes[i]
  redis.call('SET', prefix .. string.sub(keys, k, key_end - 1), string.sub(values, v, value_end - 1), 'EX', ttl)
  k, v = key_end, value_end
end
return #key_sizes
"""


class RedisOnlineStore:
    """``conveyor:<cluster>:online:<dataset>:<entity key>`` -> the entity's latest vector."""

    def __init__(self, client, cluster: str, ttl_s: int) -> None:
        self._client = client
        self._prefix = f"conveyor:{cluster}:online:"
        self._ttl_s = ttl_s
        self._encode = msgspec.msgpack.Encoder()
        self._decode = msgspec.msgpack.Decoder(OnlineVector)

    def _key(self, dataset: str, entity_key: str) -> str:
        return f"{self._prefix}{dataset}:{entity_key}"

    async def put_many(self, dataset: str, items: Sequence[tuple[str, str, list[float]]],
                       chunk: int = ONLINE_CHUNK) -> None:
        """Set every entity's vector with the TTL (a later item of the same key wins)."""
        now = time.time()
        encode = self._encode.encode
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            values = [encode(OnlineVector(fsid, vector, now)) for _, fsid, vector in part]
            await self._set_chunk(dataset, [key for key, _, _ in part], b"".join(values), list(map(len, values)))

    async def put_vectors(self, dataset: str, feature_set_id: str, keys: Sequence[str], X: np.ndarray,
                          chunk: int = ONLINE_CHUNK) -> None:
        """Set entity ``keys[j]``'s vector to ``X[j]`` (feature set ``feature_set_id``) with the
        TTL, for a whole batch: the stored values are what :meth:`put_many` stores, laid
        out for all rows at once (:func:`msgpack_vectors`) instead of a list and an
        encoder call per row."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) != len(keys):
            raise ValueError(f"X: expected one vector per key; got shape {X.shape} for {len(keys)} keys")
        for start in range(0, len(keys), chunk):
            values, width = msgpack_vectors(feature_set_id, X[start:start + chunk], time.time())
            await self._set_chunk(dataset, keys[start:start + chunk], values, [width] * (len(values) // width))

    async def _set_chunk(self, dataset: str, keys: Sequence[str], values: bytes, sizes: list[int]) -> None:
        """One script call for a chunk, awaited before the next is sent: Redis serves no
        other client while it runs one, so chunks stay small, and a call must finish
        within the client's socket timeout, which a pipeline of every chunk would not
        under load."""
        encoded = [key.encode() for key in keys]
        encode = self._encode.encode
        await self._client.eval(_SET_CHUNK_WITH_TTL, 0, self._key(dataset, ""), self._ttl_s,
                                encode(list(map(len, encoded))), b"".join(encoded), encode(sizes), values)

    async def get(self, dataset: str, entity_key: str) -> OnlineVector | None:
        raw = await self._client.get(self._key(dataset, entity_key))
        return None if raw is None else self._decode.decode(raw)

    async def get_many(self, dataset: str, entity_keys: Sequence[str]) -> list[OnlineVector | None]:
        """The vectors of many entities in one round trip (None where absent)."""
        if not entity_keys:
            return []
        raws = await self._client.mget([self._key(dataset, k) for k in entity_keys])
        return [None if raw is None else self._decode.decode(raw) for raw in raws]

    async def count(self, dataset: str) -> int:
        n = 0
        async for _ in self._client.scan_iter(match=f"{self._prefix}{dataset}:*", count=1000):
            n += 1
        return n


__all__ = ["EncodedRows", "FeatureRows", "PostgresFeatureStore", "RedisOnlineStore", "OnlineVector", "StoredFeatureSet"]
