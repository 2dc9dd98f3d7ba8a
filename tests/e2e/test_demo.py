"""`python run.py demo --quick` as a user runs it: it starts a cluster of its own, runs every
stage on the bundled data with its own checks and where to look, and stops that cluster,
leaving no process; Ctrl-C midway stops the demo and its cluster the same way. (The stages
are the same with ``--use-running``, which only skips the start and the stop.)"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cluster import ROOT, CliCluster

pytestmark = pytest.mark.integration

STAGES = ["Two sources ingested and joined", "Candidates trained and evaluated", "The best deployed",
          "Online scoring", "Batch scoring", "Streaming online learning",
          "A slow version: fallback, then automatic rollback", "Monitoring summary", "Lineage of the deployed model",
          "Where to look"]


def leftovers(cli: CliCluster) -> list[str]:
    """Processes of the demo's cluster: they mention its state dir or its Ray temp dir."""
    import psutil

    from storage.processes import short_dir

    marks = (str(cli.state_dir), str(short_dir(cli.state_dir / "ray", "ray", longest_entry=80)))
    return [f"{p.pid}: {' '.join(p.info['cmdline'] or [])[:160]}" for p in psutil.process_iter(["cmdline"])
            if any(m in " ".join(p.info["cmdline"] or []) for m in marks)]


@pytest.fixture
def fresh():
    cli = CliCluster.small()
    yield cli
    cli.discard()


def test_the_quick_demo_runs_every_stage_checks_itself_and_stops_its_cluster(fresh):
    began = time.monotonic()
    done = fresh.run("demo", "--quick", timeout=900)
    elapsed = time.monotonic() - began
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode} after {elapsed:.0f} s:\n{out[-6000:]}\n{done.stderr[-3000:]}"
    assert [title for title in STAGES if f" {title} ==" not in out] == []
    assert "[FAILED]" not in out and re.search(r"All \d+ checks passed\.", out)
    for check in ("every row stored", "one row per patient with both sources' features", "best deployable",
                  "online accuracy of the model's answers at least", "batch accuracy at least", "progressive accuracy at least",
                  "the fallback answered while", "the monitor rolled production back to", "an alert says why",
                  "deploys and the rollback recorded", "online answers and the batch job recorded"):
        assert re.search(rf"\[ok\] [^\n]*{re.escape(check)}", out), check
    images = re.findall(r"curves: (\S+\.png)\s+(\S+\.png)", out)
    assert len(images) == 3 and all(Path(p).stat().st_size > 1000 for pair in images for p in pair)
    assert all(Path(p).is_relative_to(fresh.state_dir) for pair in images for p in pair)
    assert re.search(r"fallback answers\)", out) and "lineage of cancer-" in out
    assert "python run.py lineage cancer-" in out and "Stopping the demo's cluster" in out
    assert leftovers(fresh) == [] and not (fresh.state_dir / "cluster.json").exists()
    print(f"quick demo: {elapsed:.0f} s")


def test_ctrl_c_midway_stops_the_demo_and_its_cluster(fresh):
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "demo", "--quick"], cwd=ROOT, env=fresh.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if " Two sources ingested and joined ==" in line:   # the first stage has begun: interrupt it
                time.sleep(1.0)
                proc.send_signal(signal.SIGINT)
                break
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(seen) + out
    assert proc.returncode == 130, text[-4000:]
    assert "Interrupted." in text and "no process left" in text
    assert leftovers(fresh) == [] and not (fresh.state_dir / "cluster.json").exists()
