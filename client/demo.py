"""``python run.py demo``: the whole pipeline end to end on bundled real data, against a
running cluster. Each stage (client/demo_stages.py) prints what happened and where to look,
and checks its own results; :func:`run` returns the checks, a failed one names what failed.

The cluster's life (started for the demo, or one already running) is the CLI's business:
client/cli_demo.py.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

#: What the quick variant (the test's) and the full one do differently.
QUICK = {"n_candidates": 3, "n_online": 30, "learn_events": 1250, "learn_rate": 0}
FULL = {"n_candidates": 5, "n_online": 200, "learn_events": 1250, "learn_rate": 250}


@dataclass(frozen=True)
class Check:
    stage: str
    what: str
    passed: bool
    detail: str = ""


@dataclass
class Demo:
    """What the stages share: the client, where files go, the names of this run's datasets and
    models (a short tag keeps runs on one cluster apart), what earlier stages found, the checks."""

    conveyor: object
    settings: object
    quick: bool
    say: object = print
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    found: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    stage: str = ""

    @property
    def sizes(self) -> dict:
        return QUICK if self.quick else FULL

    @property
    def folder(self) -> Path:
        return self.settings.state_path / "demo" / self.tag

    def name(self, kind: str) -> str:
        return f"{kind}-{self.tag}"

    def check(self, what: str, passed: bool, detail: str = "") -> bool:
        self.checks.append(Check(self.stage, what, bool(passed), detail))
        self.say(f"  [{'ok' if passed else 'FAILED'}] {what}" + (f" ({detail})" if detail else ""))
        return bool(passed)


async def until(check, timeout_s: float, what: str, interval_s: float = 0.25):
    """Await ``check()`` until it returns something truthy (returned); TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(interval_s)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest rank below.

    >>> percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5), percentile([1.0], 0.99)
    (3.0, 1.0)
    """
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


async def run(settings, *, quick: bool = False, say=print) -> list[Check]:
    """Run every stage against the cluster of ``settings``; the checks (a stage that raises is
    one failed check, and the stages after it, which build on it, do not run)."""
    from client.connection import Conveyor
    from client.demo_stages import stages

    began = time.monotonic()
    async with Conveyor.connect(settings) as conveyor:
        demo = Demo(conveyor, settings, quick, say)
        plan = stages()
        for i, (title, stage) in enumerate(plan, 1):
            demo.stage = title
            say(f"\n== {i}/{len(plan)} {title} ==")
            started = time.monotonic()
            try:
                await stage(demo)
            except Exception as exc:  # noqa: BLE001 (reported as a failed check)
                demo.check("the stage ran to its end", False, f"{type(exc).__name__}: {exc}")
                break
            say(f"  ({time.monotonic() - started:.1f} s)")
    say(f"\nDemo done in {time.monotonic() - began:.0f} s.")
    return demo.checks


def summary(checks: list[Check]) -> tuple[bool, str]:
    """(all passed, the lines that say so or name what failed).

    >>> summary([Check("a", "x", True), Check("b", "y", False, "z")])[1]
    '1 of 2 checks passed; failed:\\n  b: y (z)'
    """
    failed = [c for c in checks if not c.passed]
    if not checks:
        return False, "no check ran"
    if not failed:
        return True, f"All {len(checks)} checks passed."
    return False, (f"{len(checks) - len(failed)} of {len(checks)} checks passed; failed:\n"
                   + "\n".join(f"  {c.stage}: {c.what}" + (f" ({c.detail})" if c.detail else "") for c in failed))
