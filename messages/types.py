"""Constrained field types shared by messages: identifiers that are safe to use
as names anywhere (SQL identifiers are never built from them, but logs, file
names and topic keys are), bounded text, and bounded payloads."""

from __future__ import annotations

import functools
import re
from typing import Annotated

import msgspec

#: What a user's name may be (the same rule lives in ml.transforms.NAME_PATTERN: ml imports
#: nothing of the project).
NAME_RULE = r"^[A-Za-z][A-Za-z0-9_.\-]{0,62}\Z"
#: :data:`NAME_RULE` compiled, for checks outside a message (``NAME_RE.match(value)``).
NAME_RE = re.compile(NAME_RULE)
#: A message or request id (:data:`messages.base.MessageId`), for checks outside a message.
ID_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}\Z")

#: A name chosen by a user: a dataset, stream, model or feature name.
Name = Annotated[
    str,
    msgspec.Meta(pattern=NAME_RULE, max_length=63,
                 description="letters, digits, '_', '.', '-'; starts with a letter; at most 63"),
]

#: A model version: PostgreSQL integers bound it.
MAX_VERSION = 2**31 - 1
Version = Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
#: An entity key (customer id, device id ...): printable, bounded.
EntityKey = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+\Z")]

#: The name of an actor in the supervision tree.
ActorName = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:\-]+\Z")]

#: A scalar feature value as it arrives on the wire (strings bounded, no NUL).
Scalar = float | int | Annotated[str, msgspec.Meta(max_length=65536, pattern=r"^[^\x00]*\Z")] | bool | None

#: The name of a value in a :data:`Record`: 1-128 characters, none of them a control
#: character. That last rule is checked by :func:`check_value_names` (in the message's
#: ``__post_init__``), not by a ``pattern``: msgspec runs a pattern's regex on every string of
#: every message (~0.5 us each here, 8.5 of a stream event's 10 us decode), while a stream's
#: value names repeat from one event to the next.
ValueName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]

#: A flat record of named scalar values; names bounded, at most 1,024 fields.
Record = Annotated[dict[ValueName, Scalar], msgspec.Meta(max_length=1024)]

_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=4096)
def _free_of_control_characters(name: str) -> bool:
    return _CONTROL_CHARACTER.search(name) is None


def check_value_names(values: dict, field: str = "values") -> None:
    """ValueError (a ``ValidationError`` when decoding) naming ``$.field`` if a value's name
    holds a control character; each distinct name is checked once (a bounded memo).

    >>> check_value_names({"age": 3, "zip code": "x"})
    >>> check_value_names({"a\\x1b[31m": 1})
    Traceback (most recent call last):
    ...
    ValueError: Expected value names without control characters, got 'a\\x1b[31m' - at `$.values`
    """
    for name in values:
        if not _free_of_control_characters(name):
            raise ValueError(f"Expected value names without control characters, got {name!r} - at `$.{field}`")


#: Free text for reasons and details.
Text = Annotated[str, msgspec.Meta(max_length=8192, pattern=r"^[^\x00]*\Z")]
