"""Drawing the status console: a pure function from a :class:`Snapshot` and a
:class:`ViewState` (which panel has the focus, how far each is scrolled) to a rich
renderable, and the pure key handling that moves that state. No I/O, no clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from client.console_panels import PANELS, STATE_STYLE, panel_rows

#: Lines a panel takes besides its rows: the border above and below, the column header.
PANEL_CHROME = 3
#: Lines of the header above the panels.
HEADER_LINES = 2
#: Rows a panel other than the tree gets at most while the tree has the rest.
SIDE_ROWS = {"models": 6, "drift": 5, "learners": 4, "alerts": 5}

KEYS_HELP = "tab/←→ panel · 1-5 select · ↑↓ PgUp/PgDn scroll · z zoom · q quit"


@dataclass(frozen=True)
class ViewState:
    focus: int = 0                                    # index into PANELS
    scroll: tuple[int, ...] = (0,) * len(PANELS)      # first row shown, per panel
    zoom: bool = False                                # only the focused panel, full height


def apply_key(view: ViewState, key: str, limits: tuple[int, ...] | None = None) -> ViewState | None:
    """The view after ``key``; None for quit. ``limits`` is the largest scroll of each panel.

    >>> apply_key(ViewState(), "tab").focus
    1
    >>> apply_key(ViewState(), "3").focus
    2
    >>> apply_key(ViewState(), "down", limits=(5, 0, 0, 0, 0)).scroll[0]
    1
    >>> apply_key(ViewState(), "q") is None
    True
    """
    n = len(PANELS)
    if key in ("q", "Q", "ctrl-c"):
        return None
    if key in ("tab", "right", "l"):
        return replace(view, focus=(view.focus + 1) % n)
    if key in ("shift-tab", "left", "h"):
        return replace(view, focus=(view.focus - 1) % n)
    if key.isdigit() and 1 <= int(key) <= n:
        return replace(view, focus=int(key) - 1)
    if key in ("z", "enter"):
        return replace(view, zoom=not view.zoom)
    step = {"up": -1, "k": -1, "down": 1, "j": 1, "pgup": -10, "pgdn": 10, "home": -10**9, "end": 10**9}.get(key)
    if step is None:
        return view
    limit = limits[view.focus] if limits is not None else 10**9
    scroll = list(view.scroll)
    scroll[view.focus] = min(max(scroll[view.focus] + step, 0), max(limit, 0))
    return replace(view, scroll=tuple(scroll))


def budgets(n_rows: tuple[int, ...], height: int | None, view: ViewState) -> tuple[int | None, ...]:
    """Rows each panel shows (0: hidden; None: all) on a screen ``height`` lines high.

    >>> budgets((30, 2, 0, 1, 3), 40, ViewState())
    (16, 2, 1, 1, 3)
    >>> budgets((30, 2, 0, 1, 3), 40, ViewState(focus=1, zoom=True))
    (0, 35, 0, 0, 0)
    """
    if height is None:
        return (None,) * len(PANELS)
    room = height - HEADER_LINES
    if view.zoom or room - PANEL_CHROME * len(PANELS) < 8:      # too small for all: the focused one
        return tuple(max(room - PANEL_CHROME, 1) if i == view.focus else 0 for i in range(len(PANELS)))
    rows = room - PANEL_CHROME * len(PANELS)
    side = [min(max(n, 1), SIDE_ROWS[name]) for name, n in zip(PANELS[1:], n_rows[1:])]
    while sum(side) > rows - 3 and max(side) > 1:              # leave the tree at least 3 rows
        side[side.index(max(side))] -= 1
    return (max(rows - sum(side), 1), *side)


def scroll_limits(n_rows: tuple[int, ...], height: int | None, view: ViewState) -> tuple[int, ...]:
    """The largest useful scroll of each panel: its rows less those it shows."""
    return tuple(max(n - (b if b is not None else n), 0) for n, b in zip(n_rows, budgets(n_rows, height, view)))


def render(snapshot, view: ViewState = ViewState(), height: int | None = None):
    """The whole frame: a header, then the panels (supervision tree, live models, drift,
    online learners, alerts). ``height`` None draws every row (``--once``, tests)."""
    tables = [panel_rows(name, snapshot) for name in PANELS]
    sizes = budgets(tuple(len(rows) for _, rows in tables), height, view)
    parts = [_header(snapshot)]
    for i, (name, (columns, rows), size) in enumerate(zip(PANELS, tables, sizes)):
        if size == 0:
            continue
        parts.append(_panel(i, name, columns, rows, view.scroll[i], size, focused=i == view.focus))
    return Group(*parts)


TITLES = {"tree": "supervision tree", "models": "live models", "drift": "drift",
          "learners": "online learners", "alerts": "recent alerts"}


def _panel(index: int, name: str, columns, rows, scroll: int, size: int | None, focused: bool) -> Panel:
    table = Table(box=None, pad_edge=False, expand=True, header_style="bold", show_edge=False)
    for column in columns:
        least = column.min_width if column.ratio else max(len(column.title), column.min_width or 0)
        table.add_column(column.title, justify=column.justify, no_wrap=True, overflow="ellipsis",
                         ratio=column.ratio, min_width=least)
    first = 0 if size is None else min(scroll, max(len(rows) - size, 0))
    shown = rows if size is None else rows[first:first + size]
    for row in shown:
        table.add_row(*row)
    if not rows:
        table.add_row(Text("none", style="dim"), *[""] * (len(columns) - 1))
    subtitle = None
    if size is not None and len(rows) > size:
        subtitle = f"rows {first + 1}-{first + len(shown)} of {len(rows)}  ↑↓"
    return Panel(table, title=f"[{index + 1}] {TITLES[name]}", title_align="left", subtitle=subtitle,
                 subtitle_align="right", border_style="bright_cyan" if focused else "grey50")


def _header(snapshot) -> Text:
    status = snapshot.status
    line = Text("Conveyor ", style="bold")
    if status is not None:
        line.append(f"cluster {status.cluster_name!r} ")
        line.append(status.state, style=STATE_STYLE.get(status.state, "bold red"))
        n = len(status.actors()) if status.tree is not None else 0
        running = sum(1 for a in status.actors() if a.state == "running") if status.tree is not None else 0
        line.append(f"  {running}/{n} actors running  ")
        for service in status.services:
            line.append(f"{service.name} ")
            line.append("up " if service.alive else "DOWN ", style="green" if service.alive else "bold red")
    line.append(time.strftime("  %H:%M:%S", time.localtime(snapshot.taken_at)), style="dim")
    second = Text(KEYS_HELP, style="dim")
    for source, error in sorted(snapshot.errors.items()):
        second.append(f"   {source} unavailable: {error[:100]}", style="red")
    return Text("\n").join([line, second])
