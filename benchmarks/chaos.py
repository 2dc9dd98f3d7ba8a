#!/usr/bin/env python
"""Chaos: seeded kills and freezes of actors while events stream, a learner learns them
and two callers score; what was lost, duplicated, answered, and how fast actors came back.

    python benchmarks/chaos.py [--events N] [--rate R] [--faults K] [--seed S] [--freeze-s F]
                               [--write RELIABILITY.md]
                               # default 100,000 events at 1,000/s, 20 faults, seed 7, freezes of 10 s

A fresh embedded cluster (``python run.py cluster start``; always stopped again) gets a
logistic regression trained on 2,000 seeded rows and deployed with 2 replicas, and a
River learner (StandardScaler | LogisticRegression, labels in the events). Then N events
of River's seeded Agrawal stream (1,000 entities) are submitted at R per second while

- K faults (a quarter of them freezes: SIGSTOP for F seconds, then SIGCONT, long enough for
  the supervisor to find the actor hung and replace it; the rest SIGKILL)
  hit targets drawn with the seed from the stream ingestion workers, the learner
  partitions, the outbox relay, the score recorder, the monitor and the 2 replicas;
- one caller scores the deployed model (``client.score``, deadline 100 ms) and one the
  live learner (``client.score_online``, deadline 100 ms), each one request at a time, in
  a process of their own (``benchmarks/chaos_callers.py``), as a scoring service is;
- each embedded service named by ``--restart-services`` (default PostgreSQL and Redis) is
  killed once, at a seeded time, left down ``--down-s`` seconds, and the cluster repaired
  with ``python run.py cluster start`` (what a user does); the time from the kill until
  the tree is healthy again is reported. The broker is not in the default: its memory
  engine comes back empty, so events it held but had not delivered are lost by design.

The faults begin once the cluster's spare processes are ready (``spare_workers``, started
``spare_workers_after_s`` after the tree: a cluster that has run a while has them), as
the first restarts of a cluster up for a while find them.

Figures: events stored (raw store) and learned (every partition's report) vs. sent: lost
and duplicated; whether every partition's progressive accuracy equals River alone on the
same partition's events (exactly what an uninterrupted run gives); requests answered in
the deadline (a fallback's or baseline's answer counts), late, failed; recovery of each
faulted actor (from the SIGKILL, or the start of a freeze, to running again in a new
process) beside the floor: Ray restarting a killed bare actor (``max_restarts``) until it
answers, measured in the same run; for an actor of the tree, also its supervisor's own part
(``restart_s`` of its status: from seeing the failure until the new process ran), the rest
being the failure's detection and this process seeing the new one run. How late the
callers' event loop woke is printed: a caller waits that long for any answer, whatever
the cluster does. The callers run apart from this process, which submits the events and
injects the faults, as a scoring service runs apart from the producers; on a busy machine
a process of their own still wakes late now and then (up to 45 ms in a run).

Goals (issue 8): zero lost and zero duplicated effects; scoring availability 100%;
recovery of any killed actor <= 2 s. ``--write FILE`` replaces its section of RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_MS = 100.0


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


async def deploy_model(conveyor, state: Path) -> tuple[str, list[dict]]:
    """A logistic regression trained on 2,000 seeded rows, deployed with 2 replicas; its name
    and 500 of its rows as scoring requests."""
    import csv

    from benchmarks.train import prepare_dataset, train_toml, write_csv

    csv_path = state / "chaos-model.csv"
    write_csv(csv_path, 2000, seed=3)
    dataset, model = f"chaos-{uuid.uuid4().hex[:6]}", f"chaos-{uuid.uuid4().hex[:6]}"
    await prepare_dataset(conveyor, dataset, csv_path)
    lr = {"lr": ("sklearn.logistic_regression", {"max_iter": 1000})}
    await conveyor.wait_trained(await conveyor.train(train_toml(model, dataset, lr)), timeout_s=600)
    await conveyor.deploy(model, 1, replicas=2)
    with open(csv_path) as f:
        rows = [row for _, row in zip(range(500), csv.DictReader(f))]
    return model, [{k: float(v) for k, v in row.items() if k not in ("id", "label")} for row in rows]


async def ray_restart_floor(n: int = 5) -> list[float]:
    """Seconds from SIGKILL of a bare Ray actor (max_restarts=-1) until it answers again."""
    import ray

    @ray.remote(num_cpus=0, max_restarts=-1)
    class Bare:
        def pid(self) -> int:
            return os.getpid()

    actor = Bare.remote()
    times = []
    for _ in range(n):
        pid = await actor.pid.remote()
        began = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while True:
            try:
                if await asyncio.wait_for(actor.pid.remote(), 2.0) != pid:
                    break
            except Exception:
                await asyncio.sleep(0.02)
        times.append(time.monotonic() - began)
    ray.kill(actor, no_restart=True)
    return times


async def start_callers(cluster, plan: dict):
    """benchmarks/chaos_callers.py scoring on this cluster, once it says it is ready."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "benchmarks" / "chaos_callers.py"), str(cluster.state), cluster.name,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT, limit=2**28)
    child.stdin.write(json.dumps(plan).encode() + b"\n")
    await child.stdin.drain()
    line = await asyncio.wait_for(child.stdout.readline(), 300)
    if line.strip() != b"ready":
        child.kill()
        raise RuntimeError(f"the callers' process did not start: {line[-500:]!r} (exit {await child.wait()})")
    return child


async def stop_callers(child) -> dict:
    """Stop the callers' process; its tallies (``ScoringTally`` per caller) and loop wakes."""
    from tests.chaos.harness import ScoringTally

    child.stdin.close()
    out, _ = await asyncio.wait_for(child.communicate(), 120)
    if await child.wait() != 0:
        raise RuntimeError(f"the callers' process exited {child.returncode}")
    got = json.loads(out.decode().strip().splitlines()[-1])
    return {k: (ScoringTally(**v) if k != "loop_late_ms" else v) for k, v in got.items()}


async def run(settings, cluster, args) -> dict:
    from actors.remote import RayRuntime
    from client.connection import Conveyor
    from tests.chaos.harness import (
        STREAM_TARGETS, agrawal_events, inject, plan_faults, recovery_summary, reference_scores, replica_pid,
        restart_service, send_at_rate, spares_ready, tree_pid, tree_restart_s,
    )

    async with Conveyor.connect(settings) as conveyor:
        print("  training and deploying a model ...", flush=True)
        model, model_rows = await deploy_model(conveyor, cluster.state)
        name, stream = f"chaos-{uuid.uuid4().hex[:6]}", f"chaosstream-{uuid.uuid4().hex[:6]}"
        await conveyor.create_learner(f'name = "{name}"\nstream = "{stream}"\nlabel = "label"\n'
                                      '[model]\nalgorithm = "river.logistic_regression"\n', timeout_s=120)
        n_partitions = await conveyor.learner_partitions()
        events = agrawal_events(stream, args.events, n_entities=1000)
        features = [{k: v for k, v in e.values.items() if k != "label"} for e in events]
        # The load built here (~190,000 objects) is out of the collector's way: each full
        # collection went over all of it (~150 ms on a quiet machine, up to ~320 ms in a run),
        # holding up the submitter and the fault injector.
        gc.freeze()
        runtime = RayRuntime(settings.cluster_name)
        replicas = [f"serve.{model}.v1.r{r}" for r in range(2)]
        present = {a.id for a in (await conveyor.status()).actors()}
        targets = sorted({t.format(p=p) for t in STREAM_TARGETS for p in range(n_partitions)} & present) + replicas
        duration = args.events / args.rate
        faults = plan_faults(args.seed, args.faults, duration * 0.9, targets, freeze_s=args.freeze_s)

        async def pid_of(target: str):
            return await (replica_pid(runtime, target) if target.startswith("serve.") else tree_pid(conveyor, target))

        async def restart_s_of(target: str):     # a replica is restarted by the deployment manager: not known
            return None if target.startswith("serve.") else await tree_restart_s(conveyor, target)

        first = max(1, min(2000, args.events // 10))
        await conveyor.submit_many(events[:first])          # the learner's baseline comes with a checkpoint
        await conveyor.wait_learned(name, first, timeout_s=300)
        print(f"  waiting for the cluster's {settings.spare_workers} spare processes ...", flush=True)
        await spares_ready(conveyor, settings.spare_workers)
        callers = await start_callers(cluster, {"deadline_ms": DEADLINE_MS, "model": model, "model_rows": model_rows,
                                                "learner": name, "learner_rows": features[:500]})
        print(f"  streaming {args.events:,} events at {args.rate:,.0f}/s with {len(faults)} faults ...", flush=True)
        started = time.monotonic()
        sender = asyncio.ensure_future(send_at_rate(conveyor.submit_many, events[first:], args.rate))
        import random

        rng = random.Random(args.seed)
        services = [s for s in args.restart_services.split(",") if s]
        times = [round(duration * 0.9 * (i + 0.5 + 0.4 * (rng.random() - 0.5)) / len(services), 2)
                 for i in range(len(services))]

        async def one_after_another():       # a repair is never started while another runs
            return [await restart_service(cluster.cli, cluster.record_file, name, at_s, args.down_s, started)
                    for name, at_s in zip(services, times)]

        restarts = [asyncio.ensure_future(one_after_another())]
        results = []
        try:
            for fault in faults:
                results.append(await inject(fault, pid_of, started, restart_s_of=restart_s_of))
                r = results[-1]
                print(f"    {fault.at_s:7.1f} s {fault.action:6s} {fault.target:32s} "
                      f"{'back in %.2f s' % r.recovered_s if r.recovered_s is not None else r.error}"
                      f"{' (its supervisor: %.2f s)' % r.restart_s if r.restart_s is not None else ''}", flush=True)
            [service_results] = await asyncio.gather(*restarts)
            for r in service_results:
                print(f"    {r.at_s:7.1f} s restart {r.service:26s} "
                      f"{'healthy again in %.2f s' % r.repaired_s if r.repaired_s is not None else r.said}", flush=True)
            await sender
            reports = await conveyor.wait_learned(name, args.events, timeout_s=1800)
        finally:
            tallies = await stop_callers(callers)
            sender.cancel()
            for task in restarts:
                task.cancel()
        db = await conveyor._db()

        async def raw_store_settled():     # the ingestion workers may still catch up after a restart
            counts = [None]
            for _ in range(600):
                counts.append(await db.fetchval("SELECT count(*) FROM raw_events WHERE stream = $1", stream))
                if counts[-1] >= args.events or (len(counts) > 20 and counts[-1] == counts[-20]):
                    return
                await asyncio.sleep(0.5)

        await raw_store_settled()
        stored = await db.fetchrow("SELECT count(*) AS n, count(DISTINCT msg_id) AS ids,"
                                   " count(DISTINCT (partition, source_offset)) AS offsets"
                                   " FROM raw_events WHERE stream = $1", stream)
        reference = reference_scores(events, n_partitions)
        same = all(reports[p]["scores"] == ref["scores"] and reports[p]["n_learned"] == ref["n"]
                   for p, ref in reference.items())
        floor = await ray_restart_floor()
    return {"events": args.events, "stored": dict(stored), "learned": sum(r["n_learned"] for r in reports.values()),
            "predicted": sum(r["n_predicted"] for r in reports.values()), "same_as_river": same,
            "faults": results, "recovery": recovery_summary(results), "floor": floor,
            "model": tallies["model"], "learner": tallies["learner"], "seed": args.seed, "rate": args.rate,
            "freeze_s": args.freeze_s, "services": service_results, "loop_late_ms": tallies["loop_late_ms"]}


def table(r: dict) -> str:
    n, stored = r["events"], r["stored"]
    lines = [f"Seed {r['seed']}: {n:,} events at {r['rate']:,.0f}/s, {len(r['faults'])} faults "
             f"({sum(f.fault.action == 'kill' for f in r['faults'])} kills, "
             f"{sum(f.fault.action == 'freeze' for f in r['faults'])} freezes of {r['freeze_s']:g} s).", "",
             "| effect | sent | got | lost | duplicated |", "|---|---|---|---|---|",
             f"| events stored (raw store) | {n:,} | {stored['n']:,} | {n - stored['ids']:,} | {stored['n'] - stored['ids']:,} |",
             f"| events learned (learner partitions) | {n:,} | {r['learned']:,} | {max(0, n - r['learned']):,} | "
             f"{max(0, r['learned'] - n):,} |",
             "", f"Every partition's progressive accuracy equals River alone on its events: "
             f"{'yes' if r['same_as_river'] else 'NO'}.", "",
             f"| scoring (deadline {DEADLINE_MS:.0f} ms) | requests | in deadline | late | failed | availability | answered by |",
             "|---|---|---|---|---|---|---|"]
    for label, t in (("deployed model (2 replicas)", r["model"]), ("live learner", r["learner"])):
        late = len(t.latencies_ms) - t.in_deadline
        lines.append(f"| {label} | {t.n:,} | {t.in_deadline:,} | {late:,} | {len(t.failed):,} | "
                     f"{t.availability():.4f} | {', '.join(f'{k} {v:,}' for k, v in sorted(t.by.items()))} |")
    for label, t in (("deployed model", r["model"]), ("live learner", r["learner"])):
        if t.late_by or t.failed:
            late = sorted(ms for ms in t.latencies_ms if ms > t.deadline_ms) or [float("nan")]
            lines.append(f"\n{label}: late by {', '.join(f'{k} {v:,}' for k, v in sorted(t.late_by.items())) or '-'} "
                         f"(p50 {statistics.median(late):.0f} ms, max {late[-1]:.0f} ms); "
                         f"failed: {'; '.join(f'{v:,}x {k}' for k, v in sorted(t.failures().items())) or '-'}")
    wakes = sorted(r["loop_late_ms"]) or [0.0]
    p99 = wakes[int(0.99 * (len(wakes) - 1))]
    lines.append(f"\nThe callers' event loop (their own process, benchmarks/chaos_callers.py) "
                 f"woke late by p50 {statistics.median(wakes):.1f} ms, p99 {p99:.1f} ms, max {wakes[-1]:.0f} ms; "
                 f"{sum(w > DEADLINE_MS for w in wakes):,} wakes later than the deadline.")
    floor = r["floor"]
    lines += ["", "| recovery | faults | back | p50 s | max s |", "|---|---|---|---|---|"]
    for action, s in r["recovery"].items():
        p50 = f"{s['p50_s']:.2f}" if s["p50_s"] is not None else "-"
        most = f"{s['max_s']:.2f}" if s["max_s"] is not None else "-"
        lines.append(f"| {action} (from the fault to running again) | {s['n']} | {s['recovered']} | {p50} | {most} |")
        own = s["restart"]
        if own["n"]:
            lines.append(f"| {action}: of which its supervisor's restart (from seeing the failure to running; "
                         f"actors of the tree) | {own['n']} | {own['n']} | {own['p50_s']:.2f} | {own['max_s']:.2f} |")
    lines.append(f"| floor: Ray restarts a killed bare actor | {len(floor)} | {len(floor)} | "
                 f"{statistics.median(floor):.2f} | {max(floor):.2f} |")
    kills = [f.recovered_s for f in r["faults"] if f.fault.action == "kill" and f.recovered_s is not None]
    kill_p50 = statistics.median(kills) if kills else float("nan")
    for sr in r["services"]:
        lines.append(f"| restart of the embedded {sr.service} at {sr.at_s:.1f} s, down {sr.down_s:g} s "
                     f"(from the kill until `cluster start` had the tree healthy) | 1 | "
                     f"{int(sr.repaired_s is not None)} | "
                     f"{'%.2f' % sr.repaired_s if sr.repaired_s is not None else '-'} | - |")
    lines += ["", "Per fault: " + "; ".join(
        f"{f.fault.action} {f.fault.target} at {f.fault.at_s:.1f} s: "
        + (f"back in {f.recovered_s:.2f} s{'' if f.restarted else ' (the same process, thawed)'}"
           + (f" (its supervisor's restart {f.restart_s:.2f} s)" if f.restart_s is not None else "")
           if f.recovered_s is not None else f.error) for f in r["faults"]), "",
        f"Kill recovery p50 {kill_p50:.2f} s vs floor {statistics.median(floor):.2f} s = "
        f"{kill_p50 / statistics.median(floor):.1f}x."]
    lost = n - stored["ids"] + max(0, n - r["learned"])
    dup = stored["n"] - stored["ids"] + max(0, r["learned"] - n)
    goals = [("zero lost and zero duplicated effects", lost == 0 and dup == 0 and r["same_as_river"]),
             ("scoring availability 100%", all(t.availability() == 1.0 for t in (r["model"], r["learner"]))),
             ("recovery of any killed actor <= 2 s", bool(kills) and max(kills) <= 2.0
              and all(f.recovered_s is not None for f in r["faults"]))]
    lines += ["", "Goals: " + "; ".join(f"{g}: {'met' if ok else 'NOT MET'}" for g, ok in goals) + "."]
    return "\n".join(lines)


CHAOS_SECTION = "Chaos while streaming, learning and scoring"


def write_reliability(path: Path, text: str) -> None:
    """Replace this run's section of ``path`` (RELIABILITY.md); the others stay."""
    from benchmarks.report import replace_section

    load = os.getloadavg()
    replace_section(path, CHAOS_SECTION,
                    f"`python benchmarks/chaos.py`, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on "
                    f"{os.cpu_count()} cores, load average {load[0]:.1f} at the end (the machine is shared).\n\n"
                    + text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--freeze-s", type=float, default=10.0, help="how long a freeze lasts (default 10 s)")
    parser.add_argument("--restart-services", default="postgres,redis",
                        help="embedded services killed once each and repaired by `cluster start` "
                             "(comma-separated from postgres, redis, kafka; '' for none)")
    parser.add_argument("--down-s", type=float, default=2.0, help="how long a killed service stays down (default 2 s)")
    parser.add_argument("--write", type=Path, help="write the table into this file (RELIABILITY.md)")
    args = parser.parse_args(argv)
    if args.events < 100 or args.rate <= 0 or args.faults < 0 or not 0 < args.freeze_s <= 60:
        parser.error("--events at least 100, --rate above 0, --faults 0 or more, --freeze-s in (0, 60]")
    if not set(filter(None, args.restart_services.split(","))) <= {"postgres", "redis", "kafka"} \
            or not 0 <= args.down_s <= 60:
        parser.error("--restart-services from postgres, redis, kafka; --down-s in [0, 60]")
    _project_on_path()
    from benchmarks.ingest import on_fresh_cluster
    from benchmarks.report import print_errors

    errors: list[str] = []
    result = on_fresh_cluster(lambda cluster, settings: run(settings, cluster, args), errors)
    if result:
        text = table(result)
        print("\n" + text)
        if args.write:
            write_reliability(args.write, text)
            print(f"\nwritten to {args.write}")
    print_errors(errors)
    return 0 if result and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
