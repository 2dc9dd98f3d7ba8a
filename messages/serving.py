"""Messages of deployment and scoring.

Examples
--------
>>> d = ModelDeployed(model="cancer", version=3, candidate_id="c3", previous_version=2, replicas=2)
>>> d.alias
'production'
>>> r = ScoreRecorded(request_id="r1", model="cancer", version=3, answered_by="primary", score=0.93,
...                   label="1", latency_ms=1.2, fallback=False)
>>> r.entity_key is None
True
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from messages.base import Message, MessageId
from messages.types import EntityKey, Name, Version

AnsweredBy = Literal["primary", "fallback", "baseline", "cache"]
#: Raw features as the router accepted them (actors.serving.check_features): no tighter, so
#: a record the router sent always decodes.
RequestFeatures = Annotated[dict[str, float | int | str | bool | None], msgspec.Meta(max_length=4096)]


class ModelDeployed(Message, tag="model.deployed"):
    """Event: ``version`` of ``model`` serves as ``alias`` (production, or a weighted canary);
    a rollback is a deployment of the previous version."""

    model: Name
    version: Version
    candidate_id: MessageId
    previous_version: Version | None = None
    alias: Literal["production", "canary"] = "production"
    replicas: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    canary_weight: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    rollback: bool = False
    #: Why it was rolled back (e.g. an automatic rollback's alert).
    reason: Annotated[str, msgspec.Meta(max_length=1024)] | None = None


class ScoreRecorded(Message, tag="score.recorded"):
    """Event: one online answer, as the caller got it (published off the latency path)."""

    request_id: MessageId
    model: Name
    version: Version | None
    answered_by: AnsweredBy
    score: float | None
    label: Annotated[str, msgspec.Meta(max_length=256)] | None
    latency_ms: Annotated[float, msgspec.Meta(ge=0)]
    fallback: bool
    entity_key: EntityKey | None = None
    reason: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    #: The raw features the caller sent (monitoring compares their distribution with the
    #: training data's); None for an entity-key request or when ``monitor_features`` is off.
    features: RequestFeatures | None = None
    #: The version the router chose (``version`` is the one that answered: a fallback's).
    routed_version: Version | None = None


class ScoreBatch(Message, tag="score.batch"):
    """Command: score every row of a feature set with a model version (default: production;
    the feature set defaults to the one the version was trained on)."""

    model: Name
    version: Version | None = None
    feature_set_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8,64}\Z")] | None = None


#: A row of a feature set, by its place in the set's order: (batch id, line number).
RowKey = tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=128)],
               Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]]


class ScorePartition(Message, tag="score.partition"):
    """Task: score partition ``partition`` of ``n_partitions`` of job ``job_id``'s rows: the
    rows from ``start`` (inclusive) to ``stop`` (exclusive) in the feature set's order, open
    where None. Without either while ``n_partitions`` > 1 (a task planned before ranges):
    every n-th row instead."""

    job_id: MessageId
    model: Name
    version: Version
    candidate_id: MessageId
    feature_set_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8,64}\Z")]
    partition: Annotated[int, msgspec.Meta(ge=0)]
    n_partitions: Annotated[int, msgspec.Meta(ge=1, le=256)]
    start: RowKey | None = None
    stop: RowKey | None = None


class ScoresReady(Message, tag="scores.ready"):
    """Event: every row of job ``job_id`` is scored and stored."""

    job_id: MessageId
    model: Name
    version: Version
    feature_set_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8,64}\Z")]
    n_rows: Annotated[int, msgspec.Meta(ge=0)]
