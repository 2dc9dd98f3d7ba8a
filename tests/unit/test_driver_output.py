"""What the raylet pushes to every driver goes to stderr, never into a command's stdout
(where `cluster status --json` writes its JSON). Checked in a child process: importing Ray
here would fix its settings before the session cluster's tests set them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WARNING = "WARNING: 18 PYTHON worker processes have been started on node: abc"

CHILD = f"""
import ray._private.worker as ray_worker
from actors.remote import raylet_messages_to_stderr
raylet_messages_to_stderr()
raylet_messages_to_stderr()       # a second connect does not wrap it twice
ray_worker.print_to_stdstream({{"lines": [{WARNING!r}], "pid": "raylet", "is_err": False}}, ignore_prefix=False)
print("done")
"""


def test_a_raylet_message_reaches_stderr_and_not_stdout():
    child = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout == "done\n"
    assert child.stderr.count(WARNING) == 1
