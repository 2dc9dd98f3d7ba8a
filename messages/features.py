"""Messages of preparation."""

from __future__ import annotations

from typing import Annotated

import msgspec

from messages.base import Message
from messages.types import Name

Count = Annotated[int, msgspec.Meta(ge=0)]
FeatureSetId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8,64}\Z")]
BatchId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+\Z")]


class FeaturesGenerated(Message, tag="features.generated"):
    """Event: the rows of raw batch ``batch_id`` have features in feature set ``feature_set_id``
    (offline store, and the latest vector per entity in the online store)."""

    dataset: Name
    feature_set_id: FeatureSetId
    batch_id: BatchId
    n_rows: Count
    n_quarantined: Count
    fitted_here: bool = False


class FeaturesJoined(Message, tag="features.joined"):
    """Event: join ``join`` combined the latest features of all its sources (run ``run_id``)."""

    join: Name
    run_id: FeatureSetId
    sources: Annotated[list[Name], msgspec.Meta(min_length=2, max_length=16)]
    n_rows: Count
    n_unmatched: Count
