"""How a model's routes change when production moves: pure functions over
:class:`storage.serving_store.Routes`, shared by the deployment manager, the monitor and
the fallback.

Production moves forward by a deployment (or an operator's restore) and back by a
rollback. Every version that was production is remembered in ``history``; a rollback
moves production to the newest of them that was not itself rolled back from, so
rolling back again keeps going back along the chain, never forward to a version
production just left.

>>> r = Routes(model="m", task="classification")
>>> for v in (1, 2, 3):
...     r = promoted(r, v)
>>> (r.production, r.previous, r.history)
(3, 2, [1, 2])
>>> r = rolled_back(r, rollback_target(r))
>>> (r.production, r.previous, r.history, r.demoted)
(2, 3, [1], [3])
>>> r = rolled_back(r, rollback_target(r))
>>> (r.production, r.previous, r.history, r.demoted)
(1, 2, [], [2, 3])
>>> rollback_target(r) is None
True
"""

from __future__ import annotations

import msgspec

from storage.serving_store import Routes

#: Earlier production versions a model's routes remember.
HISTORY_LIMIT = 16


def rollback_target(routes: Routes) -> int | None:
    """The version a rollback moves production to: the newest earlier production version
    that was not rolled back from; None when there is none. Routes stored before the
    history was kept fall back on ``previous``."""
    for version in reversed(routes.history):
        if version != routes.production and version not in routes.demoted:
            return version
    if not routes.history and routes.previous not in (None, routes.production) \
            and routes.previous not in routes.demoted:
        return routes.previous
    return None


def promoted(routes: Routes, version: int) -> Routes:
    """``version`` in production (a deployment, or an operator's restore): the version it
    replaces becomes ``previous`` and joins the history; ``version`` is no longer demoted."""
    old = routes.production
    history = [v for v in routes.history if v not in (old, version)]
    if old is not None and old != version:
        history.append(old)
    return msgspec.structs.replace(routes, production=version, previous=old if old != version else routes.previous,
                                   history=history[-HISTORY_LIMIT:],
                                   demoted=[v for v in routes.demoted if v != version])


def rolled_back(routes: Routes, target: int) -> Routes:
    """Production back to ``target`` (from :func:`rollback_target`): the version it leaves is
    demoted and stays ``previous`` (live, so an operator can restore it); the history
    keeps what is older than ``target``."""
    current = routes.production
    history = routes.history[:routes.history.index(target)] if target in routes.history else list(routes.history)
    demoted = sorted({v for v in routes.demoted if v != target} | ({current} if current is not None else set()))
    return msgspec.structs.replace(routes, production=target, previous=current, history=history, demoted=demoted)


def fallback_versions(routes: Routes) -> list[int]:
    """The versions the fallback may answer with, in order: the previous one, then
    production (when the previous one is the one that failed); never one rolled back from.

    >>> fallback_versions(Routes(model="m", task="regression", production=2, previous=1))
    [1, 2]
    >>> fallback_versions(Routes(model="m", task="regression", production=1, previous=2, demoted=[2]))
    [1]
    """
    return [v for v in (routes.previous, routes.production) if v is not None and v not in routes.demoted]
