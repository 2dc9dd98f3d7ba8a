#!/usr/bin/env python
"""Online learning end to end, beside River alone on the same events in the same run.

    python benchmarks/stream.py [--events N] [--partitions 1,2] [--runs K]
                                  # default 100,000 events; 1 and 2 partitions; 3 runs each

For each partition count a fresh embedded cluster (``python run.py cluster start`` with
``CONVEYOR_TOPIC_PARTITIONS``; always stopped again) runs K rounds. Each round creates a
learner of its own (River's StandardScaler | LogisticRegression, labels in the events,
on a stream of its own) and publishes N events of River's seeded Agrawal stream (9
numeric fields, entity keys spread over 1,000 entities) with ``client.submit_many``.
The first round starts once the cluster's own start-up is over: its warm training
actors started (20 s after the tree) and the machine settled (``benchmarks.quiet``);
their imports took ~8 of the ~55 CPU s of a run otherwise. A round's figure is events
per second from the first submit to the last event learned (predicted, judged,
learned; the partitions' reports). Then the latency of one awaited ``client.submit``
(p50, p99 of 300) beside aiokafka's ``send_and_wait`` of the same bytes.

Floor: ``river.evaluate.progressive_val_score`` of the same model over the same events
with the same metrics (Accuracy and ROC AUC), in this process, right after each round
(each side once the machine has settled, beside the idle cluster): the learner's own
work with nothing around it. The figure is the median of the rounds'
ratios (each round beside its own floor: this machine's load swings by a third from one
minute to the next). Goal: >= 0.5 of the floor with one partition.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def agrawal(n: int) -> list[tuple[dict, bool]]:
    from river.datasets import synth

    return [(x, bool(y)) for x, y in synth.Agrawal(classification_function=2, seed=7).take(n)]


def floor(rows: list[tuple[dict, bool]]) -> tuple[float, float]:
    """(events per second, accuracy) of River alone doing the learner's work."""
    from river import evaluate, linear_model, metrics, preprocessing

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    began = time.perf_counter()
    scores = evaluate.progressive_val_score(rows, model, metrics.Accuracy() + metrics.ROCAUC())
    elapsed = time.perf_counter() - began
    return len(rows) / elapsed, scores[0].get()


async def through_conveyor(settings, rows: list[tuple[dict, bool]], runs: int) -> dict:
    """``runs`` rounds on one cluster, each a learner and a stream of its own, each followed
    by the floor over the same rows."""
    from benchmarks.quiet import settle, warm_pool_started
    from client.connection import Conveyor

    rounds = []
    async with Conveyor.connect(settings) as conveyor:
        await warm_pool_started(settings.cluster_name, settings.training_warm_actors)   # not the stream's work
        for k in range(runs):
            await settle()         # each side beside the idle cluster: stream ingestion may still be catching up
            rounds.append(await one_round(conveyor, rows, f"bench{k}"))
            await settle()
            rounds[-1]["floor_rate"], rounds[-1]["floor_accuracy"] = floor(rows)
        latency = await submit_latency(conveyor)
    return {"rounds": rounds, "submit_ms": latency}


async def one_round(conveyor, rows: list[tuple[dict, bool]], name: str) -> dict:
    from messages.stream import StreamEvent

    await conveyor.create_learner(f'name = "{name}"\nstream = "{name}"\nlabel = "label"\n'
                                  '[model]\nalgorithm = "river.logistic_regression"\n')
    events = [StreamEvent(stream=name, entity_key=f"e{i % 1000}", values={**x, "label": y})
              for i, (x, y) in enumerate(rows)]
    began = time.perf_counter()
    for at in range(0, len(events), 2000):
        await conveyor.submit_many(events[at:at + 2000])
    submitted = time.perf_counter() - began
    reports = await conveyor.wait_learned(name, len(events), timeout_s=900)
    learned = time.perf_counter() - began
    n_learned = sum(r["n_learned"] for r in reports.values())
    accuracy = sum(r["scores"]["accuracy"] * r["n_learned"] for r in reports.values()) / n_learned
    return {"rate": len(rows) / learned, "submit_rate": len(rows) / submitted, "accuracy": accuracy,
            "n_learned": n_learned, "per_partition": {p: r["n_learned"] for p, r in reports.items()}}


async def submit_latency(conveyor, n: int = 300) -> dict:
    """Milliseconds (p50, p99) of an awaited ``client.submit`` of one event, beside the floor:
    aiokafka's own ``send_and_wait`` of the same bytes to the same broker (acks=all, its
    defaults otherwise), in turn, in the same run. A stream of its own: the learner skips it."""
    from aiokafka import AIOKafkaProducer

    from messages.codec import encode
    from messages.stream import StreamEvent

    events = [StreamEvent(stream="latency", entity_key=f"e{i % 50}", values={"i": float(i)}) for i in range(n)]
    bare = AIOKafkaProducer(bootstrap_servers=conveyor.settings.kafka_bootstrap, acks="all")
    await bare.start()
    ours: list[float] = []
    floor_ms: list[float] = []
    try:
        await conveyor.submit(events[0])
        await bare.send_and_wait("events", encode(events[0]), key=b"e0")
        for event in events:
            began = time.perf_counter()
            await conveyor.submit(event)
            ours.append((time.perf_counter() - began) * 1000)
            payload, key = encode(event), event.entity_key.encode()
            began = time.perf_counter()
            await bare.send_and_wait("events", payload, key=key)
            floor_ms.append((time.perf_counter() - began) * 1000)
    finally:
        await bare.stop()
    ours.sort()
    floor_ms.sort()
    return {"p50": ours[n // 2], "p99": ours[int(0.99 * (n - 1))],
            "floor_p50": floor_ms[n // 2], "floor_p99": floor_ms[int(0.99 * (n - 1))]}


def run_one(partitions: int, rows, runs: int, errors: list[str]) -> dict | None:
    from benchmarks.ingest import on_fresh_cluster

    print(f"{partitions} partition(s):", flush=True)
    return on_fresh_cluster(lambda cluster, settings: through_conveyor(settings, rows, runs), errors,
                            CONVEYOR_TOPIC_PARTITIONS=str(partitions))


def child(partitions: int, n_events: int, runs: int) -> int:
    """One partition count in this process (a process joins one embedded cluster only): a JSON line."""
    import json

    rows = agrawal(n_events)
    errors: list[str] = []
    result = run_one(partitions, rows, runs, errors)
    print(json.dumps({"result": result, "errors": errors}))
    return 0


def main(argv: list[str] | None = None) -> int:
    import json
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", default="1,2")
    parser.add_argument("--runs", type=int, default=3, help="rounds per partition count (default 3)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _project_on_path()
    if args.child:
        return child(args.child, args.events, args.runs)
    from benchmarks.report import print_errors

    errors: list[str] = []
    results = {}
    for partitions in [int(p) for p in args.partitions.split(",")]:
        print(f"{partitions} partition(s): a fresh cluster, {args.runs} round(s) of {args.events:,} events ...",
              flush=True)
        done = subprocess.run([sys.executable, __file__, "--events", str(args.events), "--runs", str(args.runs),
                               "--child", str(partitions)], capture_output=True, text=True, cwd=ROOT)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            errors.append(f"{partitions} partition(s): exited {done.returncode}\n{done.stderr[-2000:]}")
            continue
        out = json.loads(lines[-1])
        errors.extend(out["errors"])
        if out["result"]:
            results[partitions] = out["result"]
    print(f"\nonline learning, {args.events:,} events a round (submitted -> learned), River alone as the floor:")
    print(f"{'partitions':>10} {'round':>5} {'conveyor ev/s':>14} {'floor ev/s':>11} {'ratio':>6} {'submit ev/s':>12}"
          f" {'accuracy':>9} {'floor acc':>9}  learned per partition")
    for partitions, result in results.items():
        for k, r in enumerate(result["rounds"], 1):
            print(f"{partitions:>10} {k:>5} {r['rate']:>14,.0f} {r['floor_rate']:>11,.0f}"
                  f" {r['rate'] / r['floor_rate']:>6.2f} {r['submit_rate']:>12,.0f} {r['accuracy']:>9.4f}"
                  f" {r['floor_accuracy']:>9.4f}  {r['per_partition']}")
    medians = {p: statistics.median(r["rate"] / r["floor_rate"] for r in result["rounds"])
               for p, result in results.items()}
    for partitions, result in results.items():
        ms = result["submit_ms"]
        print(f"{partitions} partition(s): median of the rounds' ratios {medians[partitions]:.2f};"
              f" one awaited client.submit p50 {ms['p50']:.2f} ms, p99 {ms['p99']:.2f} ms;"
              f" aiokafka send_and_wait alone p50 {ms['floor_p50']:.2f} ms, p99 {ms['floor_p99']:.2f} ms"
              f" (p50 ratio {ms['p50'] / ms['floor_p50']:.2f})")
    if 1 in medians:
        ratio = medians[1]
        print(f"goal: one partition >= 0.5 of the floor: {ratio:.2f} ({'met' if ratio >= 0.5 else 'NOT MET'};"
              " the median of the rounds' ratios)")
    print_errors(errors)
    return 0 if results and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
