"""The audit log, read back: who (which actor) did what (action) to which subject, when,
with the details the actor recorded. Newest first; filters match exactly.

    import asyncio
    from client.connection import Conveyor
    async def main():
        async with Conveyor.connect() as conveyor:
            for record in await conveyor.audit(action="model.deployed", subject="cancer", limit=10):
                print(record.at, record.actor, record.detail["version"])
    asyncio.run(main())
"""

from __future__ import annotations

import datetime as dt
import json
import re

import msgspec

from client.data import QueryRefused, check_limit

#: What actors, actions and subjects look like (actor names, dotted actions, model and dataset names).
_FILTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}\Z")
#: Envelope fields of a recorded message, left out of a one-line summary.
_ENVELOPE = ("type", "msg_id", "correlation_id", "causation_id", "produced_at")


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: dt.datetime
    actor: str
    action: str
    subject: str
    detail: dict


def check_filter(field: str, value: object) -> str | None:
    """``value`` if it can be an actor, action or subject, else :class:`QueryRefused`.

    >>> check_filter("action", "model.deployed"), check_filter("actor", None)
    ('model.deployed', None)
    >>> try:
    ...     check_filter("subject", "../../etc/passwd")
    ... except QueryRefused as e:
    ...     print(e.field)
    subject
    """
    if value is None:
        return None
    if not isinstance(value, str) or not _FILTER.match(value):
        raise QueryRefused(field, f"{value!r:.80} is not a name: letters, digits, '_', '.', ':', '@', '-', starting"
                                  " with a letter or digit, at most 128 characters")
    return value


def summary(detail: dict, width: int = 100) -> str:
    """A one-line ``key=value`` summary of a record's detail, without the message envelope.

    >>> summary({"type": "model.deployed", "msg_id": "ab", "model": "cancer", "version": 2})
    'model=cancer version=2'
    >>> len(summary({"x": "y" * 500}, width=40))
    40
    """
    text = " ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in detail.items()
                    if k not in _ENVELOPE and v is not None)
    return text if len(text) <= width else text[:width - 3] + "..."


class AuditQueries:
    """The audit method of :class:`client.connection.Conveyor`."""

    async def audit(self, *, actor: str | None = None, action: str | None = None, subject: str | None = None,
                    limit: int = 50) -> list[AuditRecord]:
        """Audit records, newest first, matching every filter given."""
        actor, action = check_filter("actor", actor), check_filter("action", action)
        subject, limit = check_filter("subject", subject), check_limit(limit)
        rows = await (await self._db()).fetch(
            "SELECT id, at, actor, action, subject, detail FROM audit_log WHERE ($1::text IS NULL OR actor = $1)"
            " AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR subject = $3) ORDER BY id DESC LIMIT $4",
            actor, action, subject, limit)
        return [AuditRecord(**{**dict(r), "detail": _detail(r["detail"])}) for r in rows]


def _detail(value) -> dict:
    found = json.loads(value) if isinstance(value, str) else value
    return found if isinstance(found, dict) else {"value": found}
