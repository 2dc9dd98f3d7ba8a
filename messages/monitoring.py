"""Messages of monitoring: alerts about a live model version, published on ``alerts``.

Examples
--------
>>> a = AlertRaised(model="cancer", version=3, kind="latency", severity="critical", value=41.0,
...                 threshold=25.0, summary="p99 latency 41.0 ms over 60 s exceeds the objective of 25 ms")
>>> a.kind, a.rolled_back_to is None
('latency', True)
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from messages.base import Message, MessageId
from messages.types import Name, Text, Version

AlertKind = Literal["latency", "errors", "fallbacks", "feature_drift", "prediction_drift", "accuracy"]


class AlertRaised(Message, tag="alert.raised"):
    """Event: a live version of ``model`` crossed a monitoring threshold (``kind``); ``value``
    is what was measured, ``threshold`` what it was held against, ``details`` the figures
    behind it (e.g. the PSI of each drifting feature)."""

    model: Name
    version: Version
    kind: AlertKind
    value: float
    threshold: float
    summary: Text
    severity: Literal["warning", "critical"] = "warning"
    details: Annotated[dict[Annotated[str, msgspec.Meta(max_length=128)], float],
                       msgspec.Meta(max_length=1024)] = {}
    #: Set when the alert made the model roll back: the version production moved to.
    rolled_back_to: Version | None = None
    #: The requests behind it (see ``client.get_score``): the slowest, the newest a fallback
    #: answered or the primary failed, the newest an outcome judged wrong.
    evidence: Annotated[list[MessageId], msgspec.Meta(max_length=5)] = []
