"""alive tells a live process from one that has exited (gone, or a zombie its parent has
not reaped yet), and stopped a frozen one: how a supervisor sees a killed child at once,
and a frozen one at its first missed heartbeat. Ray-free: this
module must not import Ray (the session cluster sets Ray's token before Ray is imported)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from storage.processes import alive, stopped, wait_until


@pytest.fixture
def child():
    """A sleeping process of our own, always killed and reaped."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_a_running_process_has_not_exited_and_a_killed_one_has_even_before_it_is_reaped(child):
    assert alive(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    # the kernel makes it a zombie, not reaped by us yet
    wait_until(lambda: not alive(child.pid), timeout_s=2, what="the killed process seen as exited")
    child.wait()
    assert not alive(child.pid)              # reaped: no such process


def test_a_stopped_process_has_not_exited_and_is_stopped_until_continued(child):
    assert not stopped(child.pid)
    os.kill(child.pid, signal.SIGSTOP)
    wait_until(lambda: stopped(child.pid), timeout_s=2, what="the process seen as stopped")
    assert alive(child.pid)                  # frozen is hung, not gone
    os.kill(child.pid, signal.SIGCONT)
    wait_until(lambda: not stopped(child.pid), timeout_s=2, what="the process seen as continued")
