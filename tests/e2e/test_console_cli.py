"""The status console against the session cluster, started by another process: one frame
printed with `--once`, the live console without a terminal and in a pseudo-terminal
(keys, quit, the terminal restored), and snapshots gathered in-process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import termios
import threading
import time

import pytest
from rich.console import Console

from tests.support.cluster import ROOT

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")


def actors(node):
    yield node
    for child in node["children"]:
        yield from actors(child)


def row(text: str, actor_id: str) -> list[str]:
    """The words of the tree row of ``actor_id`` (without the panel's border)."""
    line = next(line for line in text.splitlines() if f" {actor_id} " in line)
    return [word for word in line.split() if word != "│"]


def test_once_prints_the_tree_of_the_running_cluster_with_states_and_lag(cluster):
    status = json.loads(cluster.run("cluster", "status", "--json").stdout)
    done = cluster.run("console", "--once", "--width", "200", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    print(text)            # the captured screen, shown with -rP
    for name in ("supervision tree", "live models", "drift", "online learners", "recent alerts"):
        assert name in text
    for node in actors(status["tree"]):
        assert row(text, node["id"])[1] == "running", node["id"]
    for actor_id in ("root.learn.learner-0", "root.learn.learner-1", "root.monitor", "root.ingest.events-0"):
        words = row(text, actor_id)
        assert words[1] == "running"
        topic = next(n for n in actors(status["tree"]) if n["id"] == actor_id)["topic"]
        assert words[3].startswith(f"{topic}/") and words[4].replace(",", "").isdigit(), words   # partition, lag
    assert "unavailable" not in text


def test_without_a_terminal_it_refreshes_until_interrupted(cluster):
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "console", "--refresh", "0.3"], cwd=ROOT,
                            env=cluster.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90     # it joins Ray, then prints a frame every 0.3 s
        while sum("[1] supervision tree" in line for line in list(lines)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert proc.returncode == 0, proc.stderr.read()
    assert out.count("[1] supervision tree") >= 2 and " root.learn.learner-0 " in out
    assert "\x1b[" not in out                           # plain text, no cursor movement


def last_frame(screen: str) -> str:
    """What the console drew since its last header."""
    return screen.rsplit("Conveyor cluster", 1)[-1] if "Conveyor cluster" in screen else ""


class Terminal:
    """The console in a pseudo-terminal 50 rows by 160 columns; its output read by a thread."""

    def __init__(self, cluster) -> None:
        import fcntl
        import pty
        import struct

        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.before = termios.tcgetattr(self.slave)
        env = {**cluster.env, "TERM": "xterm-256color"}
        env.pop("COLUMNS", None), env.pop("LINES", None)
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "console", "--refresh", "0.5"],
                                     cwd=ROOT, env=env, stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                     start_new_session=True)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def text_since(self, mark: int) -> str:
        return ANSI.sub("", bytes(self.output[mark:]).decode("utf-8", "replace"))

    def wait_for(self, check, timeout_s: float = 60.0, since: int = 0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check(self.text_since(since)):
                return self.text_since(since)
            time.sleep(0.1)
        raise AssertionError(f"not on the screen after {timeout_s} s:\n{self.text_since(since)[-3000:]}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.slave)
        os.close(self.master)


def test_in_a_terminal_keys_select_and_zoom_a_panel_and_q_quits_restoring_the_terminal(cluster):
    term = Terminal(cluster)
    try:
        term.wait_for(lambda s: "root.learn.learner-0" in s and "[5] recent alerts" in s)
        assert termios.tcgetattr(term.slave)[3] & termios.ECHO == 0     # cbreak: keys unechoed, one by one
        mark = len(term.output)
        os.write(term.master, b"5z")
        term.wait_for(lambda s: "[5] recent alerts" in last_frame(s) and "supervision tree" not in last_frame(s),
                      since=mark)
        os.write(term.master, b"q")
        assert term.proc.wait(timeout=30) == 0
        assert termios.tcgetattr(term.slave) == term.before
        assert b"\x1b[?1049l" in term.output          # left the alternate screen
    finally:
        term.close()


def test_in_a_terminal_ctrl_c_quits_restoring_the_terminal(cluster):
    term = Terminal(cluster)
    try:
        term.wait_for(lambda s: "root.monitor" in s)
        term.proc.send_signal(signal.SIGINT)
        assert term.proc.wait(timeout=30) == 0
        assert termios.tcgetattr(term.slave) == term.before
    finally:
        term.close()


async def test_snapshots_of_the_running_cluster_have_lag_and_throughput(conveyor):
    from client.console_feed import Feed
    from client.console_snapshot import lag
    from client.console_view import render

    feed = Feed(conveyor)
    try:
        first = await feed.snapshot()
        second = await feed.snapshot()
    finally:
        await feed.close()
    assert first.errors == {} and second.errors == {}
    readers = [a for a in second.status.actors() if a.topic is not None]
    assert {a.id for a in readers} >= {"root.monitor", "root.learn.learner-0", "root.ingest.events-1"}
    assert all(lag(a, second.end_offsets) is not None for a in readers)
    assert set(second.rates) >= {a.id for a in readers}
    console = Console(record=True, width=200, color_system=None)
    console.print(render(second))
    text = console.export_text()
    for actor in second.status.actors():
        assert row(text, actor.id)[1] == actor.state
