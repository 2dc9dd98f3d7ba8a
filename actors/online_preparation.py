"""Online preparation of stream events: per-entity running aggregates (count, sum, min,
max of every numeric field) and, when the stream has a fitted feature set (a dataset
of the same name prepared offline), the event's feature vector from the very same
transform code. Both go to PostgreSQL and Redis.

Aggregates are part of the stream-ingest worker's checkpointed state and are written
as absolute values, so a replay from a checkpoint rewrites the same numbers.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from messages.stream import StreamEvent

#: Per entity ("stream\\x1fentity"): per field [n, total, min, max].
Aggregates = dict[str, dict[str, list[float]]]
SEP = "\x1f"
_INFINITIES = (float("inf"), float("-inf"))


def update_aggregates(aggregates: Aggregates, event: StreamEvent) -> str | None:
    """Fold the event's numeric values into its entity's aggregates; the entity's slot key.

    >>> aggs = {}
    >>> for x in (1, 5, 3):
    ...     slot = update_aggregates(aggs, StreamEvent(stream="s", entity_key="e", values={"x": x, "c": "red"}))
    >>> aggs[slot]["x"]
    [3, 9.0, 1.0, 5.0]
    """
    fields = None
    for name, value in event.values.items():
        kind = type(value)        # exactly int or float: a decoded event's numbers (bool is neither)
        if kind is int:
            try:
                value = float(value)
            except OverflowError:     # an int beyond any float: not a number to aggregate
                continue
        elif kind is not float or value != value or value in _INFINITIES:
            continue
        if fields is None:
            slot = f"{event.stream}{SEP}{event.entity_key}"
            fields = aggregates.setdefault(slot, {})
        current = fields.get(name)
        if current is None:
            fields[name] = [1, value, value, value]
            continue
        current[0] += 1
        current[1] += value
        if value < current[2]:
            current[2] = value
        elif value > current[3]:
            current[3] = value
    if fields is None:
        return None
    return slot


def aggregate_rows(aggregates: Aggregates, slots: set[str]) -> list[tuple]:
    """(stream, entity, field, n, total, min, max) rows of the touched ``slots``."""
    rows = []
    for slot in sorted(slots):
        stream, entity = slot.split(SEP, 1)
        for name, (n, total, low, high) in aggregates[slot].items():
            rows.append((stream, entity, name, int(n), total, low, high))
    return rows


def write_aggregates(rows: list[tuple]):
    """The rows' upsert as one statement (one array per column), not one execution per row:
    a batch touches hundreds of entities with a row per numeric field each."""
    columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in range(7)]

    async def write(conn) -> None:
        await conn.execute(
            "INSERT INTO online_aggregates (stream, entity_key, field, n, total, min, max)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::float8[],"
            " $6::float8[], $7::float8[]) ON CONFLICT (stream, entity_key, field) DO UPDATE SET"
            " n = EXCLUDED.n, total = EXCLUDED.total, min = EXCLUDED.min, max = EXCLUDED.max, updated_at = now()",
            *columns)
    return write


def write_vectors(rows: list[tuple[str, str, str, str, list[float]]]):
    async def write(conn) -> None:
        await conn.executemany(
            "INSERT INTO stream_features (msg_id, stream, entity_key, feature_set_id, vector)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (msg_id) DO NOTHING", rows)
    return write


class FeatureSetCache:
    """The newest fitted feature set of each stream's dataset, refreshed every ``ttl_s``."""

    def __init__(self, pool, signing_key: bytes, ttl_s: float = 5.0) -> None:
        self._pool, self._key, self._ttl_s = pool, signing_key, ttl_s
        self._cache: dict[str, tuple[float, Any]] = {}

    async def get(self, dataset: str):
        hit = self._cache.get(dataset)
        if hit is not None and time.monotonic() - hit[0] < self._ttl_s:
            return hit[1]
        from actors.preparation import stored_feature_set_id
        from ml.features import FittedFeatureSet
        from storage.signing import verify

        row = await self._pool.fetchrow("SELECT fitted, signature FROM feature_sets WHERE dataset = $1"
                                        " ORDER BY created_at DESC LIMIT 1", dataset)
        found = None
        if row is not None:
            verify(self._key, bytes(row["fitted"]), bytes(row["signature"]))
            fitted = FittedFeatureSet.from_bytes(bytes(row["fitted"]))
            found = (stored_feature_set_id(dataset, fitted.feature_set_id), fitted)
        self._cache[dataset] = (time.monotonic(), found)
        return found


class AggregateView(msgspec.Struct, frozen=True):
    n: int
    total: float
    min: float
    max: float

    @property
    def mean(self) -> float:
        return self.total / self.n
