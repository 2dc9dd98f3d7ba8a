"""What a supervisor knows of each child: plain data, no Ray."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from supervisors.spec import AnySpec, HostSpec, SupervisorSpec


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
    reported: bool = False                # the child said it failed: ask it at the next check
    watched_pid: int | None = None        # the process whose exit wakes the supervisor at once ...
    watch: Any = None                     # ... and what the runtime returned for it

    @property
    def is_supervisor(self) -> bool:
        return isinstance(self.spec, SupervisorSpec)

    @property
    def is_host(self) -> bool:
        return isinstance(self.spec, HostSpec)

    def ping_due(self, now: float, period_s: float, local: bool) -> bool:
        """Whether this check asks the child for a heartbeat (a Ray call). A settled child
        (running, on this node, answering) is asked once ``period_s`` has passed since its
        last beat: between pings its process is looked at locally, and a worker that fails
        reports it at once. Every other child is asked at every check.

        >>> child = ChildRecord(spec=None, name="root.w", state="running", last_beat_at=100.0)
        >>> child.ping_due(101.0, period_s=2.0, local=True), child.ping_due(102.0, period_s=2.0, local=True)
        (False, True)
        >>> child.ping_due(101.0, period_s=2.0, local=False)      # on another node
        True
        >>> child.missed_heartbeats = 1                            # late once: asked at every check
        >>> child.ping_due(101.0, period_s=2.0, local=True)
        True
        """
        settled = (local and not self.is_supervisor and self.state == "running" and not self.reported
                   and self.missed_heartbeats == 0)
        return not settled or now - self.last_beat_at >= period_s

    def status(self) -> dict[str, Any]:
        """The child as `cluster status` shows it (worker fields; supervisors add theirs, a
        host the workers it runs, each restarted with it)."""
        kind = "supervisor" if self.is_supervisor else "host" if self.is_host else "worker"
        entry = self._entry(self.name, kind, self.state, self.last_beat, self.error)
        if self.is_host:
            beats = self.last_beat.get("workers", {})
            entry["children"] = [
                self._entry(name, "worker", beat.get("state", self.state) if self.state == "running" else self.state,
                            beat, "")     # each worker's beat carries its pid: the host's
                for name, beat in ((name, beats.get(worker.id, {})) for worker, name in self.hosted())]
        return entry

    def hosted(self) -> list[tuple[Any, str]]:
        """A host's workers with their names: beside the host's, under its supervisor
        (``root.light`` runs ``root.outbox``, ...)."""
        supervisor = self.name.rsplit(".", 1)[0]
        return [(worker, f"{supervisor}.{worker.id}") for worker in self.spec.children]

    def _entry(self, name: str, kind: str, state: str, beat: dict[str, Any], error: str) -> dict[str, Any]:
        checkpoint_at = beat.get("last_checkpoint_at")
        return {
            "id": name,
            "kind": kind,
            "state": state,
            "n_restarts": self.n_restarts,
            "last_restart_s": self.last_restart_s,
            "pid": beat.get("pid"),
            "n_processed": beat.get("n_processed"),
            "last_checkpoint_offset": beat.get("last_checkpoint_offset"),
            "last_checkpoint_age_s": (round(time.time() - checkpoint_at, 3) if checkpoint_at else None),
            "error": beat.get("error") or error or None,
            "activity": beat.get("activity") or None,
            "topic": beat.get("topic"),
            "partition": beat.get("partition"),
            "offset": beat.get("offset"),
        }
