"""The data service: read-only queries over raw batches, their rejected lines, feature
sets, online score records and batch scoring jobs. (Candidates: ``Conveyor.candidates``
and ``Conveyor.candidate``.) Every argument is checked here and every value reaches
PostgreSQL as a query parameter; a bad one raises :class:`QueryRefused` naming the field.

    import asyncio
    from client.connection import Conveyor
    async def main():
        async with Conveyor.connect() as conveyor:
            for batch in await conveyor.raw_batches("cancer", limit=5):
                print(batch.batch_id, batch.n_rows, batch.n_rejected, batch.state)
            print([s.feature_set_id for s in await conveyor.feature_sets("cancer")])
            print(await conveyor.score_counts("cancer"))
    asyncio.run(main())
"""

from __future__ import annotations

import datetime as dt
import re

import msgspec

from client.errors import Refused
from messages.types import ID_RE, MAX_VERSION, NAME_RE

MAX_LIMIT = 10_000
ANSWERERS = ("primary", "fallback", "baseline", "cache")
_NAME = NAME_RE
_HEX_ID = re.compile(r"^[0-9a-f]{8,64}\Z")


class QueryRefused(Refused):
    """A query refused before it ran: a bad argument, or an unknown model, version or id."""


# --- argument checks (pure) ------------------------------------------------------------------

def check_limit(limit: object) -> int:
    """``limit`` if it is a whole number from 1 to 10,000, else :class:`QueryRefused`.

    >>> check_limit(20)
    20
    >>> try:
    ...     check_limit(0)
    ... except QueryRefused as e:
    ...     print(e)
    limit: a whole number from 1 to 10000; got 0
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryRefused("limit", f"a whole number from 1 to {MAX_LIMIT}; got {_shown(limit)}")
    return limit


def check_name(field: str, value: object, optional: bool = False) -> str | None:
    """A model or dataset name (letters, digits, '_', '.', '-'; starts with a letter; at most
    63), else :class:`QueryRefused` naming ``field``: quotes, SQL and paths never pass.

    >>> try:
    ...     check_name("model", "x'; DROP TABLE scores;--")
    ... except QueryRefused as e:
    ...     print(e.field, "|", e.reason[:29])
    model | "x'; DROP TABLE scores;--" is
    """
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise QueryRefused(field, f"{_shown(value)} is not a name: letters, digits, '_', '.', '-', starting with a"
                                  " letter, at most 63 characters")
    return value


def check_request_ids(values: object) -> None:
    """None, or a list of at most 1,000 request ids (a message id: letters, digits, _.:-).

    >>> check_request_ids(["r-1", "x; DROP TABLE scores"])
    Traceback (most recent call last):
    ...
    client.data.QueryRefused: request_ids: 'x; DROP TABLE scores' is not an id: 1-64 letters, digits and _.:- only
    """
    if values is None:
        return
    if not isinstance(values, list) or not 1 <= len(values) <= 1000:
        raise QueryRefused("request_ids", f"a list of 1 to 1,000 request ids; got {_shown(values)}")
    for value in values:
        check_message_id("request_ids", value)


def check_message_id(field: str, value: object) -> str:
    """A request, run or job id (a message id: 1-64 letters, digits and ``_.:-``), else
    :class:`QueryRefused` naming ``field``.

    >>> check_message_id("run_id", "7f3a-01")
    '7f3a-01'
    """
    if not isinstance(value, str) or not ID_RE.match(value):
        raise QueryRefused(field, f"{_shown(value)} is not an id: 1-64 letters, digits and _.:- only")
    return value


def check_id(field: str, value: object, optional: bool = False) -> str | None:
    """A batch, feature set, candidate or job id: 8 to 64 lowercase hex digits.

    >>> check_id("batch_id", "0123abcd")
    '0123abcd'
    """
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _HEX_ID.match(value):
        raise QueryRefused(field, f"{_shown(value)} is not an id: 8 to 64 lowercase hex digits")
    return value


def check_version(value: object, optional: bool = False) -> int | None:
    """A version number (1 to 2,147,483,647).

    >>> check_version(2**31)
    Traceback (most recent call last):
    ...
    client.data.QueryRefused: version: a version number from 1 to 2147483647; got 2147483648
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise QueryRefused("version", f"a version number from 1 to {MAX_VERSION}; got {_shown(value)}")
    return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- results -------------------------------------------------------------------------------

class RawBatchInfo(msgspec.Struct, frozen=True, kw_only=True):
    batch_id: str
    dataset: str
    format: str
    source_path: str
    checksum: str
    key_column: str | None
    time_column: str | None
    label_column: str | None
    n_rows: int
    n_rejected: int
    state: str                      # loading, complete
    created_at: dt.datetime
    completed_at: dt.datetime | None


class RejectedLine(msgspec.Struct, frozen=True, kw_only=True):
    batch_id: str
    line_no: int
    field: str | None               # None: the line as a whole
    reason: str
    raw: str


class FeatureSetInfo(msgspec.Struct, frozen=True, kw_only=True):
    feature_set_id: str
    dataset: str
    feature_names: list[str]
    fitted_on_batch: str
    n_rows: int                     # vectors stored, over every batch prepared with the set
    n_batches: int
    created_at: dt.datetime


class ScoreRecord(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    model: str
    version: int | None             # the version that answered (None: the baseline)
    answered_by: str
    score: float | None
    label: str | None
    latency_ms: float
    fallback: bool
    entity_key: str | None
    reason: str | None
    scored_at: dt.datetime


class ScoreCount(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    version: int | None
    answered_by: str
    n: int
    first_at: dt.datetime
    last_at: dt.datetime


class ScoreJobInfo(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    model: str
    version: int | None
    candidate_id: str | None
    feature_set_id: str | None
    state: str                      # scoring, done, failed
    error: str | None
    n_rows: int | None
    n_stored: int                   # result rows in the score store
    created_at: dt.datetime
    finished_at: dt.datetime | None


def _rows(kind, rows) -> list:
    return [kind(**dict(r)) for r in rows]


# --- the queries ---------------------------------------------------------------------------

class DataQueries:
    """The data service's methods of :class:`client.connection.Conveyor` (which provides
    ``_db()``, its connection pool)."""

    async def raw_batches(self, dataset: str | None = None, *, limit: int = 50) -> list[RawBatchInfo]:
        """Raw batches (of ``dataset``), newest first."""
        check_name("dataset", dataset, optional=True)
        rows = await (await self._db()).fetch(
            "SELECT batch_id, dataset, format, source_path, checksum, key_column, time_column, label_column, n_rows,"
            " n_rejected, state, created_at, completed_at FROM raw_batches WHERE $1::text IS NULL OR dataset = $1"
            " ORDER BY created_at DESC, batch_id LIMIT $2", dataset, check_limit(limit))
        return _rows(RawBatchInfo, rows)

    async def raw_rejects(self, batch_id: str, *, limit: int = 50) -> list[RejectedLine]:
        """The lines of a batch that were refused, with their reasons, in file order."""
        db = await self._db()
        check_id("batch_id", batch_id)
        limit = check_limit(limit)
        if not await db.fetchval("SELECT 1 FROM raw_batches WHERE batch_id = $1", batch_id):
            raise QueryRefused("batch_id", f"no raw batch {batch_id!r}")
        rows = await db.fetch("SELECT batch_id, line_no, field, reason, raw FROM raw_rejects WHERE batch_id = $1"
                              " ORDER BY line_no LIMIT $2", batch_id, limit)
        return _rows(RejectedLine, rows)

    async def feature_sets(self, dataset: str | None = None, *, limit: int = 50) -> list[FeatureSetInfo]:
        """Feature sets (of ``dataset``), newest first, with their vector and batch counts."""
        check_name("dataset", dataset, optional=True)
        rows = await (await self._db()).fetch(
            "SELECT s.feature_set_id, s.dataset, s.feature_names, s.fitted_on_batch, s.created_at,"
            " coalesce(n.n_rows, 0)::int AS n_rows, coalesce(n.n_batches, 0)::int AS n_batches"
            " FROM (SELECT * FROM feature_sets WHERE $1::text IS NULL OR dataset = $1"
            "       ORDER BY created_at DESC, feature_set_id LIMIT $2) s"
            " LEFT JOIN LATERAL (SELECT count(*) AS n_rows, count(DISTINCT batch_id) AS n_batches FROM features f"
            "                    WHERE f.feature_set_id = s.feature_set_id) n ON true"
            " ORDER BY s.created_at DESC, s.feature_set_id", dataset, check_limit(limit))
        return _rows(FeatureSetInfo, rows)

    async def score_records(self, model: str, *, version: int | None = None, answered_by: str | None = None,
                            request_ids: list[str] | None = None, limit: int = 50) -> list[ScoreRecord]:
        """Recorded online answers of ``model`` (given by ``version``, by ``answered_by``, to
        ``request_ids``: e.g. the evidence of an alert), newest first."""
        check_name("model", model)
        check_version(version, optional=True)
        if answered_by is not None and answered_by not in ANSWERERS:
            raise QueryRefused("answered_by", f"one of {', '.join(ANSWERERS)}; got {_shown(answered_by)}")
        check_request_ids(request_ids)
        rows = await (await self._db()).fetch(
            "SELECT request_id, model, version, answered_by, score, label, latency_ms, fallback, entity_key, reason,"
            " scored_at FROM scores WHERE model = $1 AND ($2::int IS NULL OR version = $2)"
            " AND ($3::text IS NULL OR answered_by = $3) AND ($5::text[] IS NULL OR request_id = ANY($5::text[]))"
            " ORDER BY scored_at DESC, request_id LIMIT $4",
            model, version, answered_by, check_limit(limit), request_ids)
        return _rows(ScoreRecord, rows)

    async def score_counts(self, model: str, version: int | None = None) -> list[ScoreCount]:
        """How many online answers of ``model`` each version gave, by who answered."""
        check_name("model", model)
        check_version(version, optional=True)
        rows = await (await self._db()).fetch(
            "SELECT model, version, answered_by, count(*)::int AS n, min(scored_at) AS first_at,"
            " max(scored_at) AS last_at FROM scores WHERE model = $1 AND ($2::int IS NULL OR version = $2)"
            " GROUP BY model, version, answered_by ORDER BY version NULLS LAST, answered_by", model, version)
        return _rows(ScoreCount, rows)

    async def score_jobs(self, model: str | None = None, *, candidate_id: str | None = None,
                         limit: int = 50) -> list[ScoreJobInfo]:
        """Batch scoring jobs (of ``model``, of one candidate), newest first, with their stored rows."""
        check_name("model", model, optional=True)
        check_id("candidate_id", candidate_id, optional=True)
        rows = await (await self._db()).fetch(
            "SELECT j.job_id, j.model, j.version, j.candidate_id, j.feature_set_id, j.state, j.error, j.n_rows,"
            " (SELECT count(*) FROM batch_scores b WHERE b.job_id = j.job_id)::int AS n_stored, j.created_at,"
            " j.finished_at FROM score_jobs j WHERE ($1::text IS NULL OR j.model = $1)"
            " AND ($2::text IS NULL OR j.candidate_id = $2) ORDER BY j.created_at DESC, j.job_id LIMIT $3",
            model, candidate_id, check_limit(limit))
        return _rows(ScoreJobInfo, rows)
