"""Which children a failure restarts: pure functions of the strategy and the order.

>>> order = ["a", "b", "c"]
>>> to_restart(Strategy.ONE_FOR_ONE, order, "b")
['b']
>>> to_restart(Strategy.REST_FOR_ONE, order, "b")
['b', 'c']
>>> to_restart(Strategy.ONE_FOR_ALL, order, "b")
['a', 'b', 'c']
>>> should_restart(Restart.TRANSIENT, abnormal=False)
False
"""

from __future__ import annotations

from typing import Sequence

from supervisors.spec import Restart, Strategy


def to_restart(strategy: Strategy, order: Sequence[str], failed: str) -> list[str]:
    """The children to stop and start again, in start order, after ``failed`` fails."""
    if failed not in order:
        raise KeyError(failed)
    if strategy == Strategy.ONE_FOR_ONE:
        return [failed]
    if strategy == Strategy.ONE_FOR_ALL:
        return list(order)
    return list(order[order.index(failed):])


def should_restart(restart: Restart, abnormal: bool) -> bool:
    """Whether a child with this restart type comes back after an exit."""
    if restart == Restart.PERMANENT:
        return True
    if restart == Restart.TRANSIENT:
        return abnormal
    return False
