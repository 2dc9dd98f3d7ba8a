"""Supervision declared as data (Erlang/OTP style): child specs and supervisor flags.

>>> flags = SupervisorFlags(strategy=Strategy.ONE_FOR_ALL, intensity=3, period_s=10)
>>> worker = ChildSpec(id="w0", factory="actors.stream_ingest:StreamIngestWorker")
>>> tree = SupervisorSpec(id="root", flags=flags, children=(worker,))
>>> tree.children[0].restart.value
'permanent'
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import msgspec


class Strategy(str, Enum):
    ONE_FOR_ONE = "one_for_one"    # restart only the child that failed
    ONE_FOR_ALL = "one_for_all"    # restart every child
    REST_FOR_ONE = "rest_for_one"  # restart the failed child and the ones started after it


class Restart(str, Enum):
    PERMANENT = "permanent"  # always restarted
    TRANSIENT = "transient"  # restarted only after an abnormal exit
    TEMPORARY = "temporary"  # never restarted


class SupervisorFlags(msgspec.Struct, frozen=True, kw_only=True):
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 5           # at most this many restarts ...
    period_s: float = 30.0       # ... inside this sliding window, else escalate
    backoff_base_s: float = 0.05
    backoff_max_s: float = 5.0
    heartbeat_interval_s: float = 0.5   # how often each child's process is checked (exited, frozen)
    max_missed_heartbeats: int = 3
    n_checks_per_ping: int = 4          # a settled child on this node is pinged every n-th check
    start_timeout_s: float = 60.0


class ChildSpec(msgspec.Struct, frozen=True, kw_only=True, tag="worker", tag_field="kind"):
    """A worker child: ``factory`` is ``"module:Class"`` of a Ray-free worker class whose
    constructor takes ``(context, **args)``; ``args`` must be plain data."""

    id: str
    factory: str
    args: dict[str, Any] = {}
    restart: Restart = Restart.PERMANENT
    num_cpus: float = 0


class HostSpec(msgspec.Struct, frozen=True, kw_only=True, tag="host", tag_field="kind"):
    """Light workers that share one actor process, supervised as one child: when one of
    them fails, or the process dies or hangs, all of them are restarted together. For
    workers that mostly wait (relays, triggers, coordinators): every actor process costs
    its interpreter and Ray's core worker, about a second of CPU to start and ~1 % of a
    core while idle, on this kind of machine. The workers keep their own ids (each shown
    as a child of the host in the status tree), and take no requests.

    >>> host = HostSpec(id="light", children=(ChildSpec(id="a", factory="m:A"), ChildSpec(id="b", factory="m:B")))
    >>> [c.id for c in host.children]
    ['a', 'b']
    """

    id: str
    children: tuple[ChildSpec, ...]
    restart: Restart = Restart.PERMANENT
    num_cpus: float = 0


class SupervisorSpec(msgspec.Struct, frozen=True, kw_only=True, tag="supervisor", tag_field="kind"):
    """A supervisor child (or the root): its own flags and children, in start order."""

    id: str
    flags: SupervisorFlags = SupervisorFlags()
    restart: Restart = Restart.PERMANENT
    children: tuple["ChildSpec | HostSpec | SupervisorSpec", ...] = ()

    def child(self, child_id: str) -> "ChildSpec | HostSpec | SupervisorSpec":
        for spec in self.children:
            if spec.id == child_id:
                return spec
        raise KeyError(child_id)


AnySpec = ChildSpec | HostSpec | SupervisorSpec
