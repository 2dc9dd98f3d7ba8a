"""What the raylet pushes to every driver goes to stderr, never into a command's stdout
(where `cluster status --json` writes its JSON), and the notice a tree of many light actors
causes by design is left out. Checked in a child process: importing Ray here would fix its
settings before the session cluster's tests set them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WARNING = "WARNING: the object store is full"
MANY_WORKERS = "WARNING: 18 PYTHON worker processes have been started on node: abc"

CHILD = f"""
import ray._private.worker as ray_worker
from actors.remote import raylet_messages_to_stderr
raylet_messages_to_stderr()
raylet_messages_to_stderr()       # a second connect does not wrap it twice
ray_worker.print_to_stdstream({{"lines": [{MANY_WORKERS!r}], "pid": "raylet", "is_err": False}}, ignore_prefix=False)
ray_worker.print_to_stdstream({{"lines": [{MANY_WORKERS!r}, {WARNING!r}], "pid": "raylet", "is_err": False}},
                              ignore_prefix=False)
print("done")
"""


def test_a_raylet_message_reaches_stderr_and_not_stdout_and_the_many_workers_notice_is_left_out():
    child = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout == "done\n"
    assert child.stderr.count(WARNING) == 1
    assert "PYTHON worker processes" not in child.stderr
