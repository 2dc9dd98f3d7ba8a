"""Hostile conditions on the session cluster: tampered or foreign checkpoints are never
restored, a driver without the cluster's token is refused by Ray, and no secret reaches a
log file or the status output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from storage.base import BatchEffects
from storage.postgres import PostgresLedger

pytestmark = pytest.mark.integration


async def _two_checkpoints(db, key: bytes) -> tuple[PostgresLedger, str]:
    ledger = PostgresLedger(db, key)
    claim = await ledger.claim(f"sec-{uuid.uuid4().hex[:8]}", "events", 0)
    for offset, state in ((10, b"older state"), (20, b"newer state")):
        await ledger.commit(claim, offset, BatchEffects(checkpoint_state=state))
    return ledger, f"{claim.consumer}/{claim.topic}/{claim.partition}"


async def test_a_tampered_checkpoint_is_skipped_for_the_newest_one_that_verifies(db, settings):
    ledger, owner = await _two_checkpoints(db, settings.signing_key.encode())
    assert (await ledger.latest_checkpoint(owner)).state == b"newer state"
    await db.execute("UPDATE checkpoints SET state = $2 WHERE owner = $1 AND source_offset = 20", owner,
                     b"import os; os.system('id')")
    restored = await ledger.latest_checkpoint(owner)
    assert (restored.state, restored.source_offset) == (b"older state", 10)
    await db.execute("UPDATE checkpoints SET signature = $2 WHERE owner = $1 AND source_offset = 10", owner,
                     b"\x00" * 32)
    assert await ledger.latest_checkpoint(owner) is None           # nothing verifies: start clean


async def test_a_checkpoint_signed_with_another_key_is_never_restored(db, settings):
    foreign, owner = await _two_checkpoints(db, b"someone else's key")
    assert (await foreign.latest_checkpoint(owner)).state == b"newer state"
    assert await PostgresLedger(db, settings.signing_key.encode()).latest_checkpoint(owner) is None


def test_ray_refuses_a_driver_without_the_clusters_token(settings):
    """Ray's GCS answers a driver without the token "Unauthenticated" (it would go on retrying
    for 20 s before giving up: the first refusal is enough)."""
    code = ("import ray\n"
            f"ray.init(address={settings.ray_address!r}, namespace='intruder', logging_level='ERROR')\n"
            "print('CONNECTED', flush=True)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "Unauthenticated" in line or "CONNECTED" in line:
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    out = "".join(seen)
    assert "CONNECTED" not in out and "InvalidAuthToken" in out, out[-2000:]


def test_no_secret_reaches_a_log_file_or_the_status(cluster, settings):
    """The signing key and Ray's token are read from their own files (mode 600) and appear in
    no other file of the cluster (logs of Ray, the actors, PostgreSQL, Redis, the broker)."""
    state = cluster.state_dir
    secret_files = {state / "signing_key", state / "ray_token"}
    secrets = [f.read_text().strip() for f in secret_files]
    assert all(len(s) >= 32 for s in secrets) and all(f.stat().st_mode & 0o077 == 0 for f in secret_files)
    record = json.loads((state / "cluster.json").read_text())
    roots = [state, Path(record["services"]["ray"]["work_dir"])]
    leaked, scanned = [], 0
    for root in roots:
        for path in root.rglob("*"):
            data_file = "postgres" in path.relative_to(root).parts[:1] and "log" not in path.parts
            if path in secret_files or data_file or not path.is_file() or path.stat().st_size > 50 * 2**20:
                continue
            try:
                text = path.read_bytes().decode(errors="replace")
            except OSError:
                continue
            scanned += 1
            leaked += [str(path) for secret in secrets if secret in text]
    assert scanned > 20 and leaked == []
    status = cluster.run("cluster", "status", "--json")
    assert not any(secret in status.stdout + status.stderr for secret in secrets)
