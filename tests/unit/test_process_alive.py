"""alive tells a live process from one that has exited (gone, or a zombie its parent has
not reaped yet), which is how a supervisor sees a killed child at once. Ray-free: this
module must not import Ray (the session cluster sets Ray's token before Ray is imported)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from storage.processes import alive


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


def test_a_stopped_process_has_not_exited():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(child.pid, signal.SIGSTOP)
        time.sleep(0.05)
        assert alive(child.pid)      # frozen is hung, not gone: the heartbeats decide
    finally:
        child.kill()
        child.wait()
