"""Small process helpers: free ports, short socket directories, waiting, stopping by pid."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import psutil

#: Unix socket paths must fit in sockaddr_un (108 bytes on Linux, with the NUL).
MAX_SOCKET_PATH = 100


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def short_dir(preferred: Path, tag: str, longest_entry: int = 40) -> Path:
    """``preferred`` if a socket of ``longest_entry`` characters fits below it,
    else a short directory under the system temp dir derived from its path."""
    if len(str(preferred)) + 1 + longest_entry <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"conveyor-{tag}-{digest}"


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    """Poll ``check`` until it is true; ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # the service is still coming up
            last_error = exc
        time.sleep(interval_s)
    raise TimeoutError(f"{what} did not answer within {timeout_s:.0f} s (last error: {last_error})")


def alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def exit_watch(pid: int) -> int | None:
    """A file descriptor that becomes readable when process ``pid`` exits (a pidfd: Linux
    5.3 and later), for an event loop's ``add_reader``; None where there is none (the process
    is gone already, or the system has no pidfd). The caller closes it."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def stopped(pid: int | None) -> bool:
    """Whether ``pid`` is stopped by a signal (SIGSTOP, SIGTSTP): it runs nothing until it
    is continued. A process stopped by a debugger is not counted."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False


def with_descendants(pids: Iterable[int]) -> list[psutil.Process]:
    """The processes ``pids`` and all their descendants that are still alive."""
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                found[p.pid] = p
        except psutil.Error:
            continue
    return list(found.values())


def terminate(procs: list[psutil.Process], grace_s: float = 5.0) -> list[int]:
    """SIGTERM (and SIGCONT, for frozen ones) then SIGKILL after ``grace_s``; the pids still alive.

    Liveness is polled rather than waited for: these processes are usually not our
    children, and a zombie whose parent does not reap it counts as gone.
    """
    for proc in procs:
        for sig in (signal.SIGTERM, signal.SIGCONT):
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass
    remaining = _wait_gone(procs, grace_s)
    for proc in remaining:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return [p.pid for p in _wait_gone(remaining, grace_s)]


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    remaining = [p for p in procs if _running(p)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.02)
        remaining = [p for p in remaining if _running(p)]
    return remaining


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def processes_mentioning(text: str) -> list[int]:
    """Pids of processes whose command line contains ``text``."""
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(text in part for part in cmdline) and proc.info["pid"] != os.getpid():
            pids.append(proc.info["pid"])
    return pids
