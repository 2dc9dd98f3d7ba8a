"""Rendering the supervision tree: plain text for `cluster status`, and a live console."""

from __future__ import annotations

import asyncio
import contextlib
import time

from rich.text import Text

from client.status import ActorStatus, ClusterStatus


def _line(node: ActorStatus, depth: int) -> str:
    parts = [f"{'  ' * depth}{node.id:<{40 - 2 * depth}} {node.kind:<10} {node.state:<10} restarts={node.n_restarts}"]
    if node.pid:
        parts.append(f"pid={node.pid}")
    if node.last_checkpoint_offset is not None:
        parts.append(f"checkpoint@{node.last_checkpoint_offset} ({node.last_checkpoint_age_s:.1f} s ago)")
    if node.n_processed is not None:
        parts.append(f"processed={node.n_processed}")
    if node.intensity:
        parts.append(f"{node.strategy} window {node.intensity}")
    if node.activity:
        parts.append(f"[{node.activity[:120]}]")
    if node.error:
        parts.append(f"error={node.error[:120]}")
    return " ".join(parts)


def render_text(status: ClusterStatus) -> str:
    lines = [f"cluster {status.cluster_name!r}: {status.state} (state in {status.state_dir})"]
    for service in status.services:
        lines.append(f"  {service.name:<9} {'embedded' if service.embedded else 'external':<9} "
                     f"{'up' if service.alive else 'DOWN':<5} {service.address}")
    if status.tree is not None:
        def visit(node: ActorStatus, depth: int) -> None:
            lines.append("  " + _line(node, depth))
            for child in node.children:
                visit(child, depth + 1)
        visit(status.tree, 0)
    if status.spares:
        lines.append("  spares (started ahead of a restart): " + ", ".join(
            f"{spare.name} {spare.state}" + (f" pid={spare.pid}" if spare.pid else "") for spare in status.spares))
    return "\n".join(lines)


def run_console(settings, refresh_s: float = 1.0, once: bool = False, width: int | None = None) -> int:
    """The live console against the cluster of ``settings`` (started by any process): redraws
    every ``refresh_s`` seconds; keys move between and scroll panels, ``q`` quits (Ctrl-C too).
    ``once`` prints one frame and returns 0 when the cluster is healthy, else 1."""
    import sys

    from rich.console import Console

    from client.connection import Conveyor
    from client.errors import ClusterNotRunning

    try:
        client = Conveyor.connect(settings)
    except ClusterNotRunning as exc:
        print(exc, file=sys.stderr)
        return 1
    console = Console(width=width or (None if sys.stdout.isatty() else 160))
    try:
        return asyncio.run(_show_once(client, console) if once else _show_live(client, console, refresh_s))
    except KeyboardInterrupt:
        return 0


async def _show_once(client, console) -> int:
    from client.console_feed import Feed
    from client.console_view import render

    feed = Feed(client)
    try:
        snapshot = await feed.snapshot()
    finally:
        await feed.close()
        await client.close()
    console.print(render(snapshot))
    return 0 if snapshot.status is not None and snapshot.status.healthy else 1


async def _show_live(client, console, refresh_s: float) -> int:
    from client.console_feed import Feed
    from client.console_keys import KeyReader

    feed = Feed(client)
    try:
        return await live_loop(feed, console, refresh_s, KeyReader())
    finally:
        await feed.close()
        await client.close()


async def live_loop(feed, console, refresh_s: float, key_reader) -> int:
    """Gathers ``feed.snapshot()`` in the background while it reads keys every 50 ms; draws a
    frame when either changes; 0 on ``q``. Without a terminal on stdin (``key_reader`` is
    not interactive) there are no keys: it refreshes until cancelled, and without one on
    ``console`` it prints each frame below the last. The terminal is restored on every exit."""
    from rich.live import Live

    from client.console_panels import PANELS, panel_rows
    from client.console_view import ViewState, apply_key, render, scroll_limits

    view, snapshot, pending, next_at = ViewState(), None, None, 0.0
    try:
        with key_reader as keys, (Live(Text("connecting ..."), console=console, auto_refresh=False,
                                       screen=keys.interactive, redirect_stdout=False, redirect_stderr=False)
                                  if console.is_terminal else contextlib.nullcontext()) as live:
            while True:
                changed = False
                if pending is None and time.monotonic() >= next_at:
                    pending, next_at = asyncio.ensure_future(feed.snapshot()), time.monotonic() + refresh_s
                if pending is not None and pending.done():
                    snapshot, pending, changed = pending.result(), None, True
                height = console.size.height if console.is_terminal else None
                for key in keys.read():
                    n_rows = tuple(len(panel_rows(name, snapshot)[1]) for name in PANELS) if snapshot else (0,) * 5
                    view = apply_key(view, key, scroll_limits(n_rows, height, view))
                    if view is None:
                        return 0
                    changed = True
                if changed and snapshot is not None:
                    frame = render(snapshot, view, height=height)
                    if console.is_terminal:
                        live.update(frame, refresh=True)
                    else:
                        console.print(frame)
                await asyncio.sleep(0.05)
    finally:
        if pending is not None:
            pending.cancel()
