#!/usr/bin/env python
"""Monitoring's cost on the online scoring path: p50/p99 with monitoring on and off, same run.

    python benchmarks/monitor.py [--requests N] [--block B]     # default 3,000 requests per mode, blocks of 250

A fresh embedded cluster gets the seeded two-class dataset of benchmarks/score.py (20
numeric features), a logistic regression deployed with 2 replicas, and sequential
``client.score(model, features, deadline_ms=1000)`` requests in alternating blocks:
- on: score records carry the request's features and the monitor (``root.monitor``)
  reads them as they come (drift, latency figures, metrics, alerts);
- off (the floor): records without features and the monitor paused (its input waits in
  the broker); the score recorder runs in both.
The blocks alternate (on/off, then off/on, ...) with an untimed second between them so
the monitor catches up outside the timed requests of the other mode. Goal: p50 and p99
on <= 1.10 x off.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


async def measure(cluster, n_requests: int, block: int) -> dict:
    from actors.remote import RayRuntime
    from benchmarks.score import percentile
    from benchmarks.train import prepare_dataset, train_toml, write_csv
    from client.connection import Conveyor
    from storage.settings import load_settings

    settings = load_settings(None, {"CONVEYOR_STATE_DIR": str(cluster.state), "CONVEYOR_CLUSTER_NAME": cluster.name})
    csv_path = cluster.state / "monitor-bench.csv"
    write_csv(csv_path, 20_000, seed=1)
    async with Conveyor.connect(settings) as conveyor:
        dataset, model = f"mb-{uuid.uuid4().hex[:6]}", f"mb-{uuid.uuid4().hex[:6]}"
        await prepare_dataset(conveyor, dataset, csv_path)
        lr = {"lr": ("sklearn.logistic_regression", {"max_iter": 1000})}
        await conveyor.wait_trained(await conveyor.train(train_toml(model, dataset, lr)), timeout_s=600)
        await conveyor.deploy(model, 1, replicas=2)
        print("  model deployed", flush=True)
        import csv as _csv

        with open(csv_path) as f:
            rows = [r for _, r in zip(range(2000), _csv.DictReader(f))]
        requests = [{k: float(v) for k, v in r.items() if k not in ("id", "label")} for r in rows]
        monitor = RayRuntime(settings.cluster_name).lookup("root.monitor")
        if monitor is None:
            raise RuntimeError("root.monitor is not running")
        router = await conveyor._router()
        latencies: dict[str, list[float]] = {"on": [], "off": []}

        async def run_block(mode: str, start: int) -> None:
            router.record_features = mode == "on"
            await monitor.request.remote("pause", 600.0 if mode == "off" else 0.0)
            for i in range(start, start + block):
                t = time.perf_counter()
                result = await conveyor.score(model, requests[i % len(requests)], deadline_ms=1000)
                latencies[mode].append((time.perf_counter() - t) * 1000)
                if result.answered_by != "primary":
                    raise RuntimeError(f"answered by {result.answered_by}: {result.reason}")
            await router.flush()
            await monitor.request.remote("pause", 0.0)
            await asyncio.sleep(1.0)                   # untimed: the monitor catches up

        for i in range(0, 200, 50):                    # warm both paths
            await run_block("on" if i % 100 else "off", i)
        latencies = {"on": [], "off": []}
        n_blocks = max(1, n_requests // block)
        for b in range(n_blocks):
            order = ("on", "off") if b % 2 == 0 else ("off", "on")
            for mode in order:
                await run_block(mode, b * block)
        served = await _served(conveyor, model)
    out = {}
    for mode, values in latencies.items():
        values.sort()
        out[mode] = {"p50": percentile(values, 50), "p99": percentile(values, 99), "n": len(values)}
    out["monitored"] = served
    return out


async def _served(conveyor, model: str) -> int:
    from tests.support.waiting import eventually

    async def count():
        rows = await conveyor.monitoring(model) if await (await conveyor._db()).fetchval(
            "SELECT count(*) FROM monitor_versions WHERE model = $1", model) else []
        return rows[0].n_served if rows else 0

    try:
        return await eventually(count, timeout_s=30, interval_s=0.5, what="monitored answers")
    except AssertionError:
        return 0


def report(r: dict) -> bool:
    on, off = r["on"], r["off"]
    print(f"\nOnline scoring with monitoring on and off, {on['n']:,} + {off['n']:,} sequential requests "
          "(alternating blocks, same cluster):")
    print("| monitoring | p50 ms | p99 ms |\n|---|---|---|")
    print(f"| on (features in records, monitor reading) | {on['p50']:.3f} | {on['p99']:.3f} |")
    print(f"| off: floor (no features, monitor paused) | {off['p50']:.3f} | {off['p99']:.3f} |")
    p50, p99 = on["p50"] / off["p50"], on["p99"] / off["p99"]
    ok = p50 <= 1.10 and p99 <= 1.10
    print(f"\np50 on / off = {p50:.3f}, p99 on / off = {p99:.3f} (goal <= 1.10: {'met' if ok else 'NOT MET'}); "
          f"the monitor counted {r['monitored']:,} answers of the model")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per mode (default 3,000)")
    parser.add_argument("--block", type=int, default=250, help="requests per block (default 250)")
    args = parser.parse_args(argv)
    _project_on_path()
    from benchmarks.ingest import on_fresh_cluster
    from benchmarks.report import print_errors

    errors: list[str] = []
    result = on_fresh_cluster(lambda cluster, settings: measure(cluster, args.requests, args.block), errors)
    if result:
        report(result)
    print_errors(errors)
    return 0 if result and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
