"""Messages of the online line: events from the outside world."""

from __future__ import annotations

from typing import Annotated

import msgspec

from messages.base import Message, MessageId
from messages.types import EntityKey, Name, Record, check_value_names


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

    def __post_init__(self) -> None:
        super().__post_init__()
        check_value_names(self.values)


#: A label: what the outside world observed for an earlier event.
Label = bool | int | float | Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+\Z")]


class Observation(Message, tag="stream.observation"):
    """The observed outcome of an earlier event (its label), published on the
    ``observations`` topic keyed by the event's entity, so it reaches the partition
    that saw the event; joined to the event's prediction by ``event_id``.

    Examples
    --------
    >>> o = Observation(stream="clicks", event_id="e1", entity_key="user-1", label=True)
    >>> o.event_id, o.label
    ('e1', True)
    """

    stream: Name
    event_id: MessageId
    entity_key: EntityKey
    label: Label


class DriftDetected(Message, tag="drift.detected"):
    """A learner's error stream changed (ADWIN or Page-Hinkley fired)."""

    learner: Name
    partition: int
    role: Name                       # champion or challenger
    detector: Name
    n_learned: int
    offset: int                      # the events offset of the event that fired it
    metrics: dict[str, float] = {}


class LearnerPromoted(Message, tag="learner.promoted"):
    """A challenger beat the champion over the window by more than the margin."""

    learner: Name
    partition: int
    champion: Name                   # the algorithm that now answers
    demoted: Name
    metric: Name
    champion_score: float            # the promoted model's windowed score
    demoted_score: float
    window: int
    n_learned: int
