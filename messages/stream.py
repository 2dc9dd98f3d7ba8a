"""Messages of the online line: events from the outside world."""

from __future__ import annotations

from messages.base import Message
from messages.types import EntityKey, Name, Record


class StreamEvent(Message, tag="stream.event"):
    """Something happened to an entity; published on the ``events`` topic keyed by entity.

    Examples
    --------
    >>> e = StreamEvent(stream="clicks", entity_key="user-1", values={"x": 1.5})
    >>> e.stream, e.values["x"]
    ('clicks', 1.5)
    """

    stream: Name
    entity_key: EntityKey
    values: Record = {}
    event_time: float | None = None
