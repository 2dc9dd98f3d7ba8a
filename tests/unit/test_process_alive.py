"""alive tells a live process from one that has exited (gone, or a zombie its parent has
not reaped yet), and stopped a frozen one: how a supervisor sees a killed child at once,
and a frozen one at its first missed heartbeat. Ray-free: this
module must not import Ray (the session cluster sets Ray's token before Ray is imported)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from storage.processes import alive, stopped


def test_a_running_process_has_not_exited_and_a_killed_one_has_even_before_it_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        for _ in range(200):                      # the kernel makes it a zombie: not reaped by us yet
            if not alive(child.pid):
                break
            time.sleep(0.01)
        assert not alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not alive(child.pid)              # reaped: no such process


def test_a_stopped_process_has_not_exited_and_is_stopped_until_continued():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not stopped(child.pid)
        os.kill(child.pid, signal.SIGSTOP)
        for _ in range(200):
            if stopped(child.pid):
                break
            time.sleep(0.01)
        assert stopped(child.pid) and alive(child.pid)     # frozen is hung, not gone
        os.kill(child.pid, signal.SIGCONT)
        for _ in range(200):
            if not stopped(child.pid):
                break
            time.sleep(0.01)
        assert not stopped(child.pid)
    finally:
        child.kill()
        child.wait()
