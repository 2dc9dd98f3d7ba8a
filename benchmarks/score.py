#!/usr/bin/env python
"""Online and batch scoring through the pipeline, beside floors measured in the same run.

    python benchmarks/score.py [--requests N] [--rows N]     # default 3,000 requests, 100,000 rows

A fresh embedded cluster (``python run.py cluster start``, always stopped again) gets a
seeded two-class dataset (20 numeric features; ``sklearn.datasets.make_classification``),
a logistic regression trained on it and deployed with 2 replicas.

Online (sequential requests of raw features, each a dict of 20 values; each request goes
through the three paths in turn, so the machine's drifting load falls on all alike):
- conveyor: ``client.score(model, features, deadline_ms=1000)``: the caller's router,
  one Ray call to a replica (feature set transform + predict_proba), the score record
  published off the latency path;
- floor (a): the same transform + predict_proba called in this process;
- floor (b): a bare Ray actor (sync) holding the same model doing the same work, called
  with ``await actor.score.remote(features)``.
Goals: p50 <= 1.5 x floor (b); p99 <= 5 ms.

Stalled primary: a version whose predict sleeps 1 s is deployed over the first one (the
model's serving configuration turns automatic rollback off, so it stays in production);
``client.score(..., deadline_ms=50)``: every answer comes from the fallback. Goal: p99
<= 55 ms.

Batch: ``client.batch_score`` of every row (submit -> scores.ready) beside the floor:
the same model's predict_proba over the same rows in this process plus one asyncpg COPY
of the results into a scratch table of the same server made like ``batch_scores`` (the
same primary key, logged). Three jobs, each beside its own floor once the machine has
settled (``benchmarks.quiet``); the median ratio. Goal >= 0.5 of the floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = "tests.support.plugin_algorithms"      # registers test.slow_classifier, the stalled version


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(latencies_ms: list[float], elapsed_s: float) -> dict:
    return {"p50": statistics.median(latencies_ms), "p99": percentile(latencies_ms, 99),
            "per_s": len(latencies_ms) / elapsed_s}


async def interleaved(calls: dict, requests: list[dict]) -> dict:
    """Each request through every path in turn (the order rotating), so that the machine's
    noise, which drifts over seconds here, falls on every path alike; the summary of each
    path (requests/s over the time spent in it)."""
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for i, features in enumerate(requests):
        turn = names[i % len(names):] + names[:i % len(names)]
        for name in turn:
            t = time.perf_counter()
            await calls[name](features)
            latencies[name].append((time.perf_counter() - t) * 1000)
    return {name: summary(spent, sum(spent) / 1000) for name, spent in latencies.items()}


class BareScorer:
    """What floor (b) hosts in a plain Ray actor: the same model and transform."""

    def __init__(self, model_bytes: bytes, fitted_bytes: bytes) -> None:
        import pickle

        from ml.features import FittedFeatureSet

        self.model = pickle.loads(model_bytes)
        self.fitted = FittedFeatureSet.from_bytes(fitted_bytes)

    def score(self, features: dict) -> float:
        vector = self.fitted.transform_one({**features, "id": "request"}).reshape(1, -1)
        return float(self.model.predict_proba(vector)[0, 1])


async def measure(cluster, n_requests: int, n_rows: int, errors: list[str], batch_runs: int = 3) -> dict:

    from benchmarks.quiet import settle
    from benchmarks.train import prepare_dataset, train_toml, write_csv
    from client.connection import Conveyor
    from storage.settings import load_settings

    settings = load_settings(None, {"CONVEYOR_STATE_DIR": str(cluster.state), "CONVEYOR_CLUSTER_NAME": cluster.name,
                                    "CONVEYOR_PLUGINS": PLUGINS})
    csv_path = cluster.state / "score-bench.csv"
    write_csv(csv_path, n_rows, seed=1)
    out: dict = {}
    async with Conveyor.connect(settings) as conveyor:
        dataset, model = f"sb-{uuid.uuid4().hex[:6]}", f"sb-{uuid.uuid4().hex[:6]}"
        fsid = await prepare_dataset(conveyor, dataset, csv_path)
        lr = {"lr": ("sklearn.logistic_regression", {"max_iter": 1000})}
        await conveyor.wait_trained(await conveyor.train(train_toml(model, dataset, lr)), timeout_s=600)
        # The stalled version below must stay in production for its measurement: the monitor
        # would otherwise roll it back as soon as its fallbacks cross the alert rate.
        await conveyor.set_serving_config(model, "auto_rollback = false\n")
        await conveyor.deploy(model, 1, replicas=2)
        print("  model deployed", flush=True)

        import csv as _csv

        with open(csv_path) as f:
            reader = _csv.DictReader(f)
            rows = [next(reader) for _ in range(min(n_requests, n_rows))]
        requests = [{k: float(v) for k, v in r.items() if k not in ("id", "label")} for r in rows]
        requests = (requests * (n_requests // len(requests) + 1))[:n_requests]

        candidate = await conveyor.candidate(model, 1)
        store = await conveyor._models()
        model_bytes = await store.artifact_bytes(candidate["candidate_id"])
        fitted_bytes = bytes(await (await conveyor._db()).fetchval(
            "SELECT fitted FROM feature_sets WHERE feature_set_id = $1", fsid))
        local = BareScorer(model_bytes, fitted_bytes)

        async def in_process(features):
            local.score(features)

        async def through_conveyor(features):
            result = await conveyor.score(model, features, deadline_ms=1000)
            if result.answered_by != "primary":
                raise RuntimeError(f"answered by {result.answered_by}: {result.reason}")

        import ray

        bare = ray.remote(num_cpus=0)(BareScorer).remote(model_bytes, fitted_bytes)
        await bare.score.remote(requests[0])

        async def bare_ray(features):
            await bare.score.remote(features)

        paths = {"conveyor": through_conveyor, "bare_ray": bare_ray, "in_process": in_process}
        await interleaved(paths, requests[:100])       # warm every path
        out.update(await interleaved(paths, requests))
        ray.kill(bare)
        print("  online measured", flush=True)

        slow = {"slow": ("test.slow_classifier", {"delay_s": 1.0})}
        await conveyor.wait_trained(await conveyor.train(train_toml(model, dataset, slow)), timeout_s=600)
        await conveyor.deploy(model, 2, replicas=1)
        latencies, answered = [], set()
        for features in requests[:200]:
            t = time.perf_counter()
            result = await conveyor.score(model, features, deadline_ms=50)
            latencies.append((time.perf_counter() - t) * 1000)
            answered.add(result.answered_by)
        out["stalled"] = {**summary(latencies, sum(latencies) / 1000), "answered_by": sorted(answered)}
        await conveyor.rollback(model)
        print("  stalled primary measured", flush=True)

        out["batch"] = []
        for _ in range(batch_runs):       # each job beside its own floor: the machine's load swings
            await settle()
            began = time.perf_counter()
            job = await conveyor.batch_score(model, 1)
            done = await conveyor.wait_batch_scored(job, timeout_s=1800)
            elapsed = time.perf_counter() - began
            await settle()
            out["batch"].append((done["n_rows"], elapsed, await batch_floor(conveyor, fsid, local.model)))
    return out


async def batch_floor(conveyor, fsid: str, model) -> float:
    """predict_proba over the same rows here + one COPY of the results into a scratch table
    made like ``batch_scores`` (its primary key, and logged like it)."""
    import numpy as np

    db = await conveyor._db()
    rows = await db.fetch("SELECT batch_id, line_no, entity_key, vector FROM features WHERE feature_set_id = $1"
                          " ORDER BY batch_id, line_no", fsid)
    X = np.asarray([r["vector"] for r in rows], dtype=float)
    async with db.acquire() as conn:
        await conn.execute("CREATE TABLE bench_scores (LIKE batch_scores INCLUDING ALL)")   # same keys, logged
        began = time.perf_counter()
        proba = model.predict_proba(X)
        labels = model.classes_[proba.argmax(axis=1)]
        await conn.copy_records_to_table("bench_scores", records=[
            ("floor", r["batch_id"], r["line_no"], r["entity_key"], float(p), str(lab))
            for r, p, lab in zip(rows, proba[:, 1], labels)])
        elapsed = time.perf_counter() - began
        await conn.execute("DROP TABLE bench_scores")
    return elapsed


def report(r: dict, n_requests: int) -> None:
    c, b, i = r["conveyor"], r["bare_ray"], r["in_process"]
    print(f"\nOnline scoring, {n_requests:,} sequential requests (20 raw features each):")
    print("| path | p50 ms | p99 ms | requests/s |\n|---|---|---|---|")
    for name, s in (("conveyor: client -> router -> replica", c), ("floor (b): bare Ray actor call", b),
                    ("floor (a): in process", i)):
        print(f"| {name} | {s['p50']:.3f} | {s['p99']:.3f} | {s['per_s']:,.0f} |")
    ratio = c["p50"] / b["p50"]
    print(f"\np50 conveyor / bare Ray = {ratio:.2f} (goal <= 1.5: {'met' if ratio <= 1.5 else 'NOT MET'}); "
          f"p99 {c['p99']:.2f} ms (goal <= 5 ms: {'met' if c['p99'] <= 5 else 'NOT MET'}; the bare Ray call's "
          f"own p99 {b['p99']:.2f} ms)")
    s = r["stalled"]
    print(f"stalled primary, deadline 50 ms: p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms, answered by "
          f"{', '.join(s['answered_by'])} (goal p99 <= 55 ms: {'met' if s['p99'] <= 55 else 'NOT MET'})")
    runs = r["batch"]
    ratios = [floor_s / elapsed for _, elapsed, floor_s in runs]
    rows = runs[0][0]
    conveyor_rate = statistics.median(n / elapsed for n, elapsed, _ in runs)
    floor_rate = statistics.median(n / floor_s for n, _, floor_s in runs)
    ratio = statistics.median(ratios)
    print(f"batch scoring {rows:,} rows, median of {len(runs)} jobs: {conveyor_rate:,.0f} rows/s (submit -> done) vs"
          f" floor {floor_rate:,.0f} rows/s (predict + COPY in process): {ratio:.3f} (each job beside its floor:"
          f" {', '.join(f'{x:.3f}' for x in ratios)}; goal >= 0.5: {'met' if ratio >= 0.5 else 'NOT MET'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    _project_on_path()
    from benchmarks.ingest import on_fresh_cluster
    from benchmarks.report import print_errors

    errors: list[str] = []
    result = on_fresh_cluster(lambda cluster, settings: measure(cluster, args.requests, args.rows, errors), errors,
                              CONVEYOR_PLUGINS=PLUGINS)
    if result:
        report(result, args.requests)
    print_errors(errors)
    return 0 if result and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
