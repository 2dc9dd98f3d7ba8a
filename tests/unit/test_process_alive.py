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


def test_a_killed_embedded_service_is_dead_and_only_its_kind_can_start_again_in_place(child, tmp_path):
    from storage import embedded

    live = embedded.ServiceRecord("redis", "unix:///x.sock", True, [child.pid])
    gone = embedded.ServiceRecord("postgres", "postgresql://x", True, [2 ** 22 + 12345])
    external = embedded.ServiceRecord("kafka", "(external)", False)
    record = embedded.ClusterRecord("c", str(tmp_path), 0.0, {"redis": live, "postgres": gone, "kafka": external})
    assert embedded.dead_services(record) == ["postgres"]
    ray = embedded.ClusterRecord("c", str(tmp_path), 0.0, {"ray": embedded.ServiceRecord("ray", "a", True, [1])})
    with pytest.raises(embedded.EmbeddedError, match="ray: cannot be started again under a running cluster"):
        embedded.restart_in_place(None, ray, ["ray"])


def test_a_postmaster_pid_naming_a_dead_server_is_cleared_with_its_socket_lock(child, tmp_path):
    from storage.embedded import clear_stale_postmaster_pid

    child.kill()
    child.wait()
    (tmp_path / "postmaster.pid").write_text(f"{child.pid}\n{tmp_path}\n")
    (tmp_path / ".s.PGSQL.5432.lock").write_text(f"{child.pid}\n")
    (tmp_path / ".s.PGSQL.5432").write_text("")
    (tmp_path / ".s.PGSQL.5433.lock").write_text("1\n")           # another server's: kept
    assert clear_stale_postmaster_pid(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.PGSQL.5433.lock"]


def test_a_postmaster_pid_naming_a_live_process_that_is_not_postgres_is_cleared(child, tmp_path):
    from storage.embedded import clear_stale_postmaster_pid

    (tmp_path / "postmaster.pid").write_text(f"{child.pid}\n")      # pid reused by another program
    assert clear_stale_postmaster_pid(tmp_path) and not (tmp_path / "postmaster.pid").exists()
