"""Starting and stopping real clusters through the CLI, as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
SMALL_TREE = {"CONVEYOR_TOPIC_PARTITIONS": "1", "CONVEYOR_INGEST_WORKERS": "1", "CONVEYOR_BATCH_SCORE_WORKERS": "1",
              "CONVEYOR_TRAINING_WARM_ACTORS": "0", "CONVEYOR_SPARE_WORKERS": "0"}


@dataclass
class CliCluster:
    state_dir: Path
    name: str
    extra_env: dict[str, str | None] = field(default_factory=dict)   # None removes a variable

    @classmethod
    def fresh(cls, **extra_env: str | None) -> "CliCluster":
        state = Path(tempfile.mkdtemp(prefix="cv-"))
        return cls(state, f"t-{uuid.uuid4().hex[:8]}", dict(extra_env))

    @classmethod
    def small(cls, **extra_env: str | None) -> "CliCluster":
        """A fresh cluster with one partition per stage, no warm training actors and no spare
        processes (17 actor processes instead of 25): for tests of the cluster's life, where the
        tree's width does not matter (and a restart starts a new process)."""
        return cls.fresh(**{**SMALL_TREE, **extra_env})

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "RAY_"))}
        env.update(CONVEYOR_STATE_DIR=str(self.state_dir), CONVEYOR_CLUSTER_NAME=self.name)
        env.update(self.extra_env)
        return {k: v for k, v in env.items() if v is not None}

    def run(self, *args: str, timeout: float = 180, check: bool = False) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"run.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self) -> None:
        self.run("cluster", "start", check=True)

    def stop(self) -> subprocess.CompletedProcess:
        return self.run("cluster", "stop", timeout=120)

    def discard(self) -> None:
        """Stop the cluster if one is recorded and remove its state directory (``cluster
        stop`` finds nothing to stop without a record: not run then, a process saved)."""
        import shutil

        if (self.state_dir / "cluster.json").exists():
            self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def processes(self) -> list[str]:
        """Processes that belong to this cluster (mention its state dir or its Ray temp dir
        on their command line, or were started with its state dir in their environment)."""
        marks = [str(self.state_dir)]
        record = self.state_dir / "cluster.json"
        if record.exists():
            import json

            ray = json.loads(record.read_text())["services"].get("ray")
            if ray and ray.get("work_dir"):
                marks.append(ray["work_dir"])
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
            cmd = " ".join(proc.info.get("cmdline") or [])
            ours = (proc.info.get("environ") or {}).get("CONVEYOR_STATE_DIR") == str(self.state_dir)
            if (ours or any(m in cmd for m in marks)) and proc.info["pid"] != os.getpid():
                found.append(f"{proc.info['pid']}: {cmd[:160]}")
        return found
