"""Supervision lifecycle signals: what supervisors say about their children."""

from __future__ import annotations

from messages.base import Message
from messages.types import ActorName, Text


class ActorCrashed(Message, tag="actor.crashed"):
    """A supervised child died (process gone, or an error escaped it)."""

    supervisor: ActorName
    child_id: ActorName
    reason: Text = ""


class ActorHung(Message, tag="actor.hung"):
    """A supervised child missed too many heartbeats and was killed."""

    supervisor: ActorName
    child_id: ActorName
    missed_heartbeats: int


class ActorRestarted(Message, tag="actor.restarted"):
    """A supervised child answers again after a restart."""

    supervisor: ActorName
    child_id: ActorName
    n_restarts: int
    restart_s: float


class RestartIntensityExceeded(Message, tag="supervisor.intensity_exceeded"):
    """Too many restarts inside the window: the supervisor gives up and escalates."""

    supervisor: ActorName
    n_restarts: int
    period_s: float
