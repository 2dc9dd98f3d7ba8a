"""The one frozen, tagged base every Conveyor message derives from.

Every type carries an explicit dotted wire tag (never the class name), so a
renamed class keeps its wire format. New fields get defaults.

Examples
--------
>>> class Pinged(Message, tag="example.pinged"):
...     note: str = ""
>>> m = Pinged(note="hi")
>>> m.correlation_id == m.msg_id   # a message with no cause starts its own chain
True
>>> child = Pinged(note="again", **caused_by(m))
>>> (child.correlation_id, child.causation_id) == (m.correlation_id, m.msg_id)
True
"""

from __future__ import annotations

import time
import uuid

from typing import Annotated

import msgspec

#: Message ids are chosen by producers too, so they are bounded and plain.
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+\Z")]
OptionalId = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[A-Za-z0-9_.:\-]*\Z")]


def new_id() -> str:
    """A fresh message id: 32 lowercase hex characters."""
    return uuid.uuid4().hex


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of all messages: identity, causality and production time."""

    msg_id: MessageId = msgspec.field(default_factory=new_id)
    correlation_id: OptionalId = ""
    causation_id: OptionalId = ""
    produced_at: float = msgspec.field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not self.correlation_id:
            # Frozen structs still allow setting fields during __post_init__.
            msgspec.structs.force_setattr(self, "correlation_id", self.msg_id)


def valid_chain(correlation_id: str, causation_id: str = "") -> tuple[str, str]:
    """The ids a caller passed along with a request, checked like a message's
    (ValueError naming the field otherwise).

    >>> valid_chain("deploy-7f3a")
    ('deploy-7f3a', '')
    >>> valid_chain("x; DROP TABLE audit_log")
    Traceback (most recent call last):
    ...
    ValueError: correlation_id: letters, digits and _.:- only, at most 64; got 'x; DROP TABLE audit_log'
    """
    for field, value in (("correlation_id", correlation_id), ("causation_id", causation_id)):
        try:
            msgspec.convert(value, OptionalId)
        except msgspec.ValidationError:
            raise ValueError(f"{field}: letters, digits and _.:- only, at most 64; got {str(value)[:80]!r}") from None
    return correlation_id, causation_id


def caused_by(cause: Message) -> dict[str, str]:
    """Keyword arguments that chain a new message to the one that caused it."""
    return {"correlation_id": cause.correlation_id, "causation_id": cause.msg_id}
