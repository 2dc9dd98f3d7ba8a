"""What the raylet pushes to every driver goes to stderr, never into a command's stdout
(where `cluster status --json` writes its JSON)."""

from __future__ import annotations

import ray._private.worker as ray_worker

from actors.remote import raylet_messages_to_stderr

WARNING = "WARNING: 18 PYTHON worker processes have been started on node: abc"


def test_a_raylet_message_reaches_stderr_and_not_stdout(capsys, monkeypatch):
    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)   # restored afterwards
    raylet_messages_to_stderr()
    raylet_messages_to_stderr()           # a second connect does not wrap it twice
    ray_worker.print_to_stdstream({"lines": [WARNING], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    out, err = capsys.readouterr()
    assert out == "" and WARNING in err and err.count(WARNING) == 1
