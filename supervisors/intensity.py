"""The restart-intensity window and the restart backoff: pure functions.

OTP semantics: a supervisor that sees more than ``intensity`` restarts within
``period_s`` seconds gives up and escalates to its parent.

>>> times = []
>>> for t in (0.0, 1.0, 2.0):
...     times, exceeded = record_restart(times, now=t, intensity=2, period_s=10)
>>> exceeded
True
>>> record_restart([0.0, 1.0], now=20.5, intensity=2, period_s=10)
([20.5], False)
>>> [round(backoff_delay(n, base_s=0.1, max_s=1.0, jitter=0.0), 2) for n in range(6)]
[0.0, 0.1, 0.2, 0.4, 0.8, 1.0]
"""

from __future__ import annotations

import random
from typing import Sequence


def record_restart(times: Sequence[float], now: float, intensity: int, period_s: float) -> tuple[list[float], bool]:
    """The restart times still inside the window after one more restart at ``now``,
    and whether they now exceed ``intensity``."""
    window = [t for t in times if now - t <= period_s] + [now]   # OTP keeps R >= Now - Period
    return window, len(window) > intensity


def backoff_delay(attempt: int, base_s: float, max_s: float, jitter: float = 0.2,
                  rng: random.Random | None = None) -> float:
    """Delay before restart number ``attempt`` inside the window (0 = first restart:
    immediate), doubling from ``base_s``, capped at ``max_s``, spread by ``±jitter``."""
    if attempt <= 0:
        return 0.0
    exponent = attempt - 1
    delay = max_s if exponent > 1000 else min(max_s, base_s * 2.0 ** exponent)
    spread = (rng or random).uniform(-jitter, jitter) if jitter else 0.0
    return max(0.0, min(max_s, delay * (1 + spread)))
