"""The life of a supervised worker, Ray-free: a run loop, a heartbeat, a stop.

A subclass implements ``setup`` (open connections), ``step`` (one unit of work,
awaiting I/O), and ``teardown``. An exception escaping ``setup`` or ``step`` puts
the worker in the ``failed`` state with the error; its supervisor sees that in
the next heartbeat and restarts it.
"""

from __future__ import annotations

import asyncio
import os
import time
from enum import Enum
from typing import Any

import structlog

from storage.settings import Settings


class WorkerState(str, Enum):
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"
    STOPPED = "stopped"


class Worker:
    """Base of every supervised worker; ``run`` is started by the hosting actor."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.state = WorkerState.STARTING
        self.error = ""
        self.started_at = time.time()
        self.n_processed = 0
        self.last_checkpoint_offset: int | None = None
        self.last_checkpoint_at: float | None = None
        self.log = structlog.get_logger("conveyor.worker").bind(worker=name)

    async def setup(self) -> None:
        """Open connections and restore state."""

    async def step(self) -> None:
        """Do one unit of work; must await I/O so heartbeats are answered."""
        await asyncio.sleep(1)

    async def teardown(self) -> None:
        """Close what ``setup`` opened."""

    async def run(self) -> None:
        try:
            await self.setup()
            self.state = WorkerState.RUNNING
            while self.state is WorkerState.RUNNING:
                await self.step()
        except asyncio.CancelledError:
            self.state = WorkerState.STOPPED
        except Exception as exc:  # reported through the heartbeat, acted on by the supervisor
            self.state, self.error = WorkerState.FAILED, f"{type(exc).__name__}: {exc}"
            self.log.error("worker failed", error=self.error)
        finally:
            try:
                await self.teardown()
            except Exception as exc:
                self.log.warning("teardown failed", error=str(exc))

    def heartbeat(self) -> dict[str, Any]:
        """What the supervisor and `cluster status` see of this worker."""
        return {
            "state": self.state.value,
            "error": self.error,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "n_processed": self.n_processed,
            "last_checkpoint_offset": self.last_checkpoint_offset,
            "last_checkpoint_at": self.last_checkpoint_at,
        }


def shared_heartbeat(workers: dict[str, Worker]) -> dict[str, Any]:
    """The heartbeat of workers sharing one process, supervised as one child: ``failed`` if
    any of them failed or its loop ended (``error`` names each), ``starting`` until all of
    them run, else ``running``; ``workers`` holds each one's own heartbeat by its id.

    >>> a, b = Worker(None, "root.a"), Worker(None, "root.b")
    >>> shared_heartbeat({"a": a, "b": b})["state"]
    'starting'
    >>> a.state = b.state = WorkerState.RUNNING
    >>> shared_heartbeat({"a": a, "b": b})["state"]
    'running'
    >>> b.state, b.error = WorkerState.FAILED, "OSError: gone"
    >>> beat = shared_heartbeat({"a": a, "b": b})
    >>> beat["state"], beat["error"], beat["workers"]["a"]["state"]
    ('failed', 'root.b: OSError: gone', 'running')
    """
    beats = {worker_id: worker.heartbeat() for worker_id, worker in workers.items()}
    ended = [i for i, beat in beats.items() if beat["state"] in (WorkerState.FAILED.value, WorkerState.STOPPED.value)]
    if ended:
        state = WorkerState.FAILED.value
    elif any(beat["state"] == WorkerState.STARTING.value for beat in beats.values()):
        state = WorkerState.STARTING.value
    else:
        state = WorkerState.RUNNING.value
    errors = [f"{workers[i].name}: {beats[i]['error'] or beats[i]['state']}" for i in ended]
    return {"state": state, "error": "; ".join(errors), "pid": os.getpid(), "workers": beats}


async def beat_once_started(ping, timeout_s: float, step_s: float = 0.02) -> dict[str, Any]:
    """``await ping()`` (a heartbeat) once it no longer says ``starting``, or when ``timeout_s``
    have passed: what a supervisor starting an actor waits for, with one call. Asking the
    actor for a beat every 20 ms instead, across processes, cost both sides CPU for as long
    as the start took, ~12 CPU s of a whole tree's start on 2 cores (where it slowed every
    other start).

    >>> worker = Worker(None, "root.w")
    >>> async def ping():
    ...     return worker.heartbeat()
    >>> asyncio.run(beat_once_started(ping, 0.05))["state"]
    'starting'
    >>> worker.state = WorkerState.RUNNING
    >>> asyncio.run(beat_once_started(ping, 60))["state"]
    'running'
    """
    deadline = time.monotonic() + timeout_s
    beat = await ping()
    while beat.get("state") == WorkerState.STARTING.value and time.monotonic() < deadline:
        await asyncio.sleep(step_s)
        beat = await ping()
    return beat


class AnswersStarted:
    """For an actor with an async ``ping`` (its heartbeat): ``started``, the call a
    supervisor starting it waits on (:func:`beat_once_started`)."""

    async def started(self, timeout_s: float) -> dict[str, Any]:
        """The heartbeat once this actor has left ``starting``, or after ``timeout_s``."""
        return await beat_once_started(self.ping, timeout_s)
