"""JSON wire codec for every message type; the decoder is built once.

Decoding validates at the edge: a payload that is not one of the known tagged
types, breaks a field constraint, or is too large raises :class:`DecodeFailed`
with msgspec's text, which names the field (``at `$.stream```).

Examples
--------
>>> from messages.stream import DriftDetected, LearnerPromoted, Observation, StreamEvent
>>> raw = encode(StreamEvent(stream="s", entity_key="k"))
>>> decode(raw).stream
's'
>>> try:
...     decode(b'{"type": "no.such.type"}')
... except DecodeFailed as e:
...     print(e.reason)
Invalid value 'no.such.type' - at `$.type`
"""

from __future__ import annotations

from typing import Union

import msgspec

from messages.base import Message
from messages.features import FeaturesGenerated, FeaturesJoined
from messages.ingestion import IngestBatch, LoadPartition, RawIngested, SourceAvailable
from messages.lifecycle import ActorCrashed, ActorHung, ActorRestarted, RestartIntensityExceeded
from messages.monitoring import AlertRaised
from messages.stream import DriftDetected, LearnerPromoted, Observation, StreamEvent
from messages.serving import ModelDeployed, ScoreBatch, ScorePartition, ScoreRecorded, ScoresReady
from messages.training import ModelEvaluated, ModelTrained, TrainModels

#: Messages larger than this are refused before parsing.
MAX_MESSAGE_BYTES = 1 << 20

ALL_TYPES: tuple[type[Message], ...] = (
    StreamEvent,
    Observation,
    DriftDetected,
    LearnerPromoted,
    SourceAvailable,
    IngestBatch,
    LoadPartition,
    RawIngested,
    FeaturesGenerated,
    FeaturesJoined,
    TrainModels,
    ModelTrained,
    ModelEvaluated,
    ModelDeployed,
    ScoreRecorded,
    ScoreBatch,
    ScorePartition,
    ScoresReady,
    AlertRaised,
    ActorCrashed,
    ActorHung,
    ActorRestarted,
    RestartIntensityExceeded,
)

AnyMessage = Union[ALL_TYPES]  # type: ignore[valid-type]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyMessage)


class DecodeFailed(ValueError):
    """Bytes that are not a valid Conveyor message; ``reason`` is the decoder's text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(message: Message) -> bytes:
    """The JSON bytes of ``message``, its wire tag in the ``type`` field."""
    return _encoder.encode(message)


def decode(raw: bytes) -> Message:
    """The typed message in ``raw``, or :class:`DecodeFailed` naming what is wrong."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise DecodeFailed(f"message of {len(raw)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise DecodeFailed(printable(str(exc))) from None
    except RecursionError:
        raise DecodeFailed("message nested too deeply") from None


def printable(text: str) -> str:
    r"""``text`` with control characters escaped, safe for logs and text columns.

    >>> print(printable("bad " + chr(0)))
    bad \x00
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def tag_of(message_type: type[Message]) -> str:
    """The wire tag of a message type."""
    return message_type.__struct_config__.tag  # type: ignore[return-value]
