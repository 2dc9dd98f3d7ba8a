"""process_exited tells a live process from one that has exited (gone, or a zombie its
parent has not reaped yet), which is how a supervisor sees a killed child at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from actors.remote import process_exited


def test_a_running_process_has_not_exited_and_a_killed_one_has_even_before_it_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not process_exited(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        for _ in range(200):                      # the kernel makes it a zombie: not reaped by us yet
            if process_exited(child.pid):
                break
            time.sleep(0.01)
        assert process_exited(child.pid)
    finally:
        child.kill()
        child.wait()
    assert process_exited(child.pid)              # reaped: no such process


def test_a_stopped_process_has_not_exited():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(child.pid, signal.SIGSTOP)
        time.sleep(0.05)
        assert not process_exited(child.pid)      # frozen is hung, not gone: the heartbeats decide
    finally:
        child.kill()
        child.wait()
