"""Rendering the supervision tree: plain text for `cluster status`, and a live console."""

from __future__ import annotations

import asyncio
import time

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
    return "\n".join(lines)


def run_console(settings, refresh_s: float = 1.0) -> int:
    """Redraw the status every ``refresh_s`` seconds until Ctrl-C."""
    from rich.live import Live
    from rich.text import Text

    from client.connection import Conveyor

    client = Conveyor.connect(settings)

    async def loop() -> None:
        with Live(Text("connecting ..."), refresh_per_second=4, screen=False) as live:
            while True:
                try:
                    status = await client.status()
                    text = render_text(status)
                except Exception as exc:
                    text = f"status unavailable: {exc}"
                live.update(Text(f"{time.strftime('%H:%M:%S')}  (Ctrl-C quits)\n{text}"))
                await asyncio.sleep(refresh_s)

    try:
        asyncio.run(loop())
    except KeyboardInterrupt:
        pass
    return 0
