"""Finding a named actor from a caller's event loop without holding the loop up, and
passing over one that was late.

Looking an actor up by name is a blocking call to Ray's GCS: quick on a quiet cluster,
but slow while the cluster is busy or restarting the actor. Made on the event loop, it
held up every other request of the process as well; here it runs in a thread, each
caller waits for it only as long as its own deadline allows, and a name found not running
is not asked for again for a short while."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from typing import Any, Callable

from client.deadlines import within

#: An actor found not running is not looked up again for this long: requests meanwhile skip
#: it (its version's other replicas, or the fallback, answer) without asking Ray's GCS.
MISSING_RECHECK_S = 0.25
#: An actor that let a request time out is asked after the others for this long
#: (``punctual_first``): Ray reports a killed replica dead only ~1.3 s later and a
#: frozen one never, and until then every request sent to it waits out its time before the
#: fallback is asked.
PASS_OVER_S = 1.0


class ActorFinder:
    """Handles of named actors, looked up by ``lookup(name) -> handle | None`` (blocking).

    >>> import asyncio
    >>> finder = ActorFinder(lambda name: f"<{name}>" if name == "a" else None)
    >>> asyncio.run(finder.find("a", 1.0)), asyncio.run(finder.find("b", 1.0))
    ('<a>', None)
    >>> finder.cached("a")
    '<a>'
    """

    def __init__(self, lookup: Callable[[str], Any], missing_recheck_s: float = MISSING_RECHECK_S,
                 pass_over_s: float = PASS_OVER_S) -> None:
        self._lookup, self.missing_recheck_s, self.pass_over_s = lookup, missing_recheck_s, pass_over_s
        self._handles: dict[str, Any] = {}
        self._late: dict[str, float] = {}               # name -> when it last let a request time out
        self._missing: dict[str, float] = {}            # name -> when a lookup found it not running
        self._lookups: dict[str, asyncio.Future] = {}   # name -> its lookup under way

    def cached(self, name: str) -> Any:
        return self._handles.get(name)

    def lookup_now(self, name: str) -> Any:
        """The handle, looked up here and now (blocking): for set-up, never a request's path."""
        handle = self._handles.get(name)
        if handle is None:
            handle = self._lookup(name)
            if handle is not None:
                self._handles[name] = handle
        return handle

    async def find(self, name: str, within_s: float) -> Any:
        """The handle: cached, else looked up in a thread, waiting at most ``within_s``; None
        when the actor is not running, was found not running less than ``missing_recheck_s``
        ago, or was not found in time (the lookup goes on, for the next caller)."""
        handle = self._handles.get(name)
        if handle is not None:
            return handle
        if time.monotonic() - self._missing.get(name, -math.inf) < self.missing_recheck_s:
            return None
        lookup = self._lookups.get(name)
        if lookup is None:      # one lookup per name at a time; other callers wait for the same one
            lookup = self._lookups[name] = asyncio.ensure_future(asyncio.to_thread(self._lookup, name))
            lookup.add_done_callback(functools.partial(self._looked_up, name))
        try:
            return await within(asyncio.shield(lookup), within_s)
        except asyncio.TimeoutError:
            return None
        except Exception:       # the lookup failed (Ray's GCS not answering): not running, for all we know
            return None

    def _looked_up(self, name: str, lookup: asyncio.Future) -> None:
        self._lookups.pop(name, None)
        handle = None if lookup.cancelled() or lookup.exception() is not None else lookup.result()
        if handle is None:
            self._missing[name] = time.monotonic()
        else:
            self._missing.pop(name, None)
            self._handles[name] = handle

    def was_late(self, name: str) -> None:
        """``name`` let a request time out: ask it after the others for a while (:meth:`punctual_first`)."""
        self._late[name] = time.monotonic()

    def punctual_first(self, names: list[str]) -> list[str]:
        """``names`` in their order, those late in the last ``pass_over_s`` moved last (a
        version with nothing else to ask still asks them).

        >>> finder = ActorFinder(lambda name: None)
        >>> finder.was_late("r0")
        >>> finder.punctual_first(["r0", "r1", "r2"]), finder.punctual_first(["r0"])
        (['r1', 'r2', 'r0'], ['r0'])
        """
        now = time.monotonic()
        late = {n for n in names if now - self._late.get(n, -math.inf) < self.pass_over_s}
        return [n for n in names if n not in late] + [n for n in names if n in late]

    def forget(self, name: str) -> None:
        """Drop the handle of ``name`` (its actor failed or restarted): the next caller looks it up."""
        self._handles.pop(name, None)

    def forget_below(self, prefix: str) -> None:
        for name in [n for n in self._handles if n.startswith(prefix)]:
            del self._handles[name]
