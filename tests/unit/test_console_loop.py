"""The console's loop with a fake feed: keys in a pseudo-terminal select, zoom and quit,
the terminal is restored; without a terminal it prints frames until cancelled."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import termios

from rich.console import Console

from client.console import live_loop
from client.console_keys import KeyReader
from tests.unit.test_console_view import snapshot


class FakeFeed:
    def __init__(self) -> None:
        self.n_snapshots = 0

    async def snapshot(self):
        self.n_snapshots += 1
        return snapshot()

    async def close(self) -> None:
        pass


class Tty:
    """The slave side of a pseudo-terminal, as stdin."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


async def until(check, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def test_keys_zoom_a_panel_then_q_quits_and_the_terminal_is_restored():
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, height=40, color_system=None)
    feed = FakeFeed()
    try:
        loop = asyncio.ensure_future(live_loop(feed, console, 0.1, KeyReader(Tty(slave))))
        await until(lambda: "root.learn.learner-0" in out.getvalue())
        assert termios.tcgetattr(slave)[3] & termios.ECHO == 0           # cbreak while it runs
        mark = len(out.getvalue())
        os.write(master, b"5z")
        await until(lambda: "[5] recent alerts" in out.getvalue()[mark:]
                    and "supervision tree" not in out.getvalue()[mark:])
        os.write(master, b"q")
        assert await asyncio.wait_for(loop, 5) == 0
        assert termios.tcgetattr(slave) == before
        assert feed.n_snapshots >= 1
    finally:
        os.close(master)
        os.close(slave)


async def test_cancelled_while_running_it_restores_the_terminal():
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, height=40)
    try:
        loop = asyncio.ensure_future(live_loop(FakeFeed(), console, 0.1, KeyReader(Tty(slave))))
        await until(lambda: "root.monitor" in out.getvalue())
        loop.cancel()                                      # what Ctrl-C does to asyncio.run's task
        await asyncio.gather(loop, return_exceptions=True)
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


async def test_without_a_terminal_it_prints_a_frame_per_refresh_until_cancelled():
    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None)
    loop = asyncio.ensure_future(live_loop(FakeFeed(), console, 0.05, KeyReader(io.StringIO())))
    await until(lambda: out.getvalue().count("[1] supervision tree") >= 3)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    assert "\x1b[" not in out.getvalue()
