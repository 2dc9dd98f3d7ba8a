"""A doorbell beside the broker: whoever publishes records rings the topic's bell (Redis
pub/sub, pushed to the listeners: nothing is polled), and a reader pausing on an idle
partition wakes at once instead of at the end of its pause.

Why: the embedded broker answers a waiting fetch only when ``fetch_max_wait_ms`` expires
(DESIGN §9), so an idle reader cannot long-poll; it pauses between short fetches, and the
first record after a quiet spell used to wait out the pause (up to
``consumer_idle_backoff_max_s``) at every hop: a training command, a batch-scoring job
and its partition tasks each paid it. A ring is only a hint: a lost one (Redis away, a
reader not yet listening) costs that latency again, never a record.

>>> channel("c1", "score.tasks")
'conveyor:c1:doorbell:score.tasks'
>>> parse_ring(b"0,3")
[0, 3]
>>> parse_ring(b"junk")
[]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import redis.asyncio as aioredis


def channel(cluster: str, topic: str) -> str:
    return f"conveyor:{cluster}:doorbell:{topic}"


#: A ring names at most this many partitions, each below this number (a topic has far fewer):
#: a hostile ring cannot make a listener count without bound.
MAX_RING_PARTITIONS = 1024


def parse_ring(payload: bytes) -> list[int]:
    """The partitions a ring names; nothing for a payload that is not a short list of them.

    >>> parse_ring(b"1," + b"5" * 9), parse_ring(b",".join(b"1" for _ in range(2000)))
    ([], [])
    """
    if len(payload) > 8 * MAX_RING_PARTITIONS:
        return []
    try:
        partitions = [int(p) for p in payload.decode().split(",") if p]
    except (UnicodeDecodeError, ValueError):
        return []
    if len(partitions) > MAX_RING_PARTITIONS or any(not 0 <= p < MAX_RING_PARTITIONS for p in partitions):
        return []
    return partitions


class DoorbellRinger:
    """Rings after records were acknowledged by the broker (so that a woken reader's fetch
    finds them). Failures are swallowed: the publish itself succeeded."""

    def __init__(self, client: aioredis.Redis, cluster: str) -> None:
        self._client, self._cluster = client, cluster

    async def ring(self, topic: str, partitions: Iterable[int]) -> None:
        names = sorted({int(p) for p in partitions if p is not None and p >= 0})
        if not names:
            return
        with contextlib.suppress(Exception):
            await self._client.publish(channel(self._cluster, topic), ",".join(map(str, names)))


class Doorbell:
    """Listens for the rings of the topics a process reads; one per process, shared by its
    readers. ``rings`` counts the rings of a partition; ``wait`` returns as soon as the
    count passes what a reader saw before its last fetch, or when the pause is over."""

    def __init__(self, url: str, cluster: str) -> None:
        # no socket timeout: a quiet bell is not a dead connection
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=5)
        self._cluster = cluster
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._topics: dict[str, str] = {}            # channel -> topic
        self._counts: dict[tuple[str, int], int] = {}
        self._changed = asyncio.Event()
        self._listener: asyncio.Task | None = None

    async def listen(self, topic: str) -> None:
        """Hear the rings of ``topic`` from now on (starts listening on first use)."""
        name = channel(self._cluster, topic)
        if name in self._topics:
            return
        self._topics[name] = topic
        with contextlib.suppress(Exception):       # without the bell, readers just pause
            await self._pubsub.subscribe(name)
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    def rings(self, topic: str, partition: int) -> int:
        return self._counts.get((topic, partition), 0)

    async def wait(self, topic: str, partition: int, seen: int, timeout_s: float,
                   also: Iterable[tuple[str, int, int]] = ()) -> bool:
        """Whether the partition rang (after ``seen`` rings) within ``timeout_s``. The wait
        also ends when one of ``also``, (topic, partition, seen) each, rings: a worker reading
        two partitions in turn wakes for either (False then, unless its own rang too)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        watched = [((topic, partition), seen), *(((t, p), s) for t, p, s in also)]
        while all(self._counts.get(key, 0) == count for key, count in watched):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.rings(topic, partition) != seen

    async def _listen(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception:            # Redis away: try again; readers pause meanwhile
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    if self._topics:
                        await self._pubsub.subscribe(*self._topics)
                continue
            if message is None or message.get("type") != "message":
                continue
            name = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            topic = self._topics.get(name)
            if topic is None:
                continue
            for partition in parse_ring(message["data"]):
                self._counts[(topic, partition)] = self._counts.get((topic, partition), 0) + 1
            self._changed.set()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._client.aclose()
