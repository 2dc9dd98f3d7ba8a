"""What a supervisor knows of each child: plain data, no Ray."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from supervisors.spec import AnySpec, SupervisorSpec


@dataclass
class ChildRecord:
    spec: AnySpec
    name: str                       # the Ray actor name, unique in the cluster's namespace
    handle: Any = None
    state: str = "starting"
    n_restarts: int = 0
    missed_heartbeats: int = 0
    last_beat: dict[str, Any] = field(default_factory=dict)
    last_beat_at: float = 0.0
    last_restart_s: float | None = None
    spawned_s: float | None = None        # how long the last start waited for the actor's name
    restarting: bool = False
    error: str = ""

    @property
    def is_supervisor(self) -> bool:
        return isinstance(self.spec, SupervisorSpec)

    def status(self) -> dict[str, Any]:
        """The child as `cluster status` shows it (worker fields; supervisors add theirs)."""
        beat = self.last_beat
        checkpoint_at = beat.get("last_checkpoint_at")
        return {
            "id": self.name,
            "kind": "supervisor" if self.is_supervisor else "worker",
            "state": self.state,
            "n_restarts": self.n_restarts,
            "last_restart_s": self.last_restart_s,
            "pid": beat.get("pid"),
            "n_processed": beat.get("n_processed"),
            "last_checkpoint_offset": beat.get("last_checkpoint_offset"),
            "last_checkpoint_age_s": (round(time.time() - checkpoint_at, 3) if checkpoint_at else None),
            "error": beat.get("error") or self.error or None,
            "activity": beat.get("activity") or None,
            "topic": beat.get("topic"),
            "partition": beat.get("partition"),
            "offset": beat.get("offset"),
        }
