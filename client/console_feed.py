"""Gathering console snapshots from a running cluster: the tree's status (one call to the
root supervisor), monitoring figures, alerts, learners and live versions (PostgreSQL),
and the end offsets of the partitions the tree reads (one ListOffsets request to the
broker from a consumer kept open here, never from the actors). Each source is read in
its own try: one that fails is named in the snapshot and the others still show.
"""

from __future__ import annotations

import asyncio
import time

from client.console_snapshot import LiveVersion, Snapshot, Throughput, partitions_read


class EndOffsets:
    """End offsets of topic partitions from one group-less consumer, opened on first use."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._consumer = None

    async def read(self, partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if not partitions:
            return {}
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                        request_timeout_ms=5_000)
            await consumer.start()
            self._consumer = consumer
        ends = await self._consumer.end_offsets([TopicPartition(t, p) for t, p in sorted(partitions)])
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


class Feed:
    """``await feed.snapshot()`` for each frame; ``await feed.close()`` at the end."""

    def __init__(self, conveyor, timeout_s: float = 5.0, n_alerts: int = 20) -> None:
        self.conveyor = conveyor
        self.timeout_s = timeout_s
        self.n_alerts = n_alerts
        self.offsets = EndOffsets(conveyor.settings.kafka_bootstrap)
        self.throughput = Throughput()

    async def snapshot(self) -> Snapshot:
        errors: dict[str, str] = {}

        async def attempt(source: str, call, default):
            try:
                return await asyncio.wait_for(call(), self.timeout_s)
            except Exception as exc:
                errors[source] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                return default

        status = await attempt("status", lambda: self.conveyor.status(timeout_s=self.timeout_s), None)
        taken_at = time.time()
        rates = self.throughput.update(status, time.monotonic())
        ends, live, versions, alerts, learners = await asyncio.gather(
            attempt("offsets", lambda: self.offsets.read(partitions_read(status)), {}),
            attempt("models", self._live, ()),
            attempt("monitoring", self.conveyor.monitoring, []),
            attempt("alerts", lambda: self.conveyor.alerts(limit=self.n_alerts), []),
            attempt("learners", self.conveyor.learners, []))
        return Snapshot(taken_at=taken_at, status=status, live=live, versions=tuple(versions), alerts=tuple(alerts),
                        learners=tuple(learners), end_offsets=ends, rates=rates, errors=errors,
                        drift_psi_alert=self.conveyor.settings.drift_psi_alert)

    async def _live(self) -> tuple[LiveVersion, ...]:
        return tuple(LiveVersion(d["model"], d["version"], tuple(d["aliases"] or ()), d["replicas"],
                                 d["canary_weight"]) for d in await self.conveyor.deployments() if d["state"] == "live")

    async def close(self) -> None:
        await self.offsets.close()
