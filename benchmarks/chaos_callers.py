#!/usr/bin/env python
"""The chaos benchmark's two callers, in a process of their own, as a scoring service is.

    python benchmarks/chaos_callers.py STATE_DIR CLUSTER_NAME < plan.json > tallies.json

Started by ``benchmarks/chaos.py``: it reads the plan (the model and its requests, the live
learner and its requests, the deadline) as one JSON line on stdin, joins the cluster,
opens its connections with one request to each (a service warms up before it takes
traffic; these are not counted), prints ``ready`` and then scores, one request at a time
per caller, until stdin closes. Then it prints every outcome as one JSON line: per caller
the latencies, answerers and failures (:class:`tests.chaos.harness.ScoringTally`), and
how late this process's event loop woke.

The event load and the fault injection stay in the driver: a caller sharing its loop with
1,000 submitted events a second and a fault injector was kept from its answers by that
loop (woke up to ~30 ms late), which no cluster can answer for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def _stdin_closed() -> None:
    await asyncio.to_thread(sys.stdin.read)


async def serve(state_dir: str, cluster_name: str) -> dict:
    from benchmarks.ingest import join_ray
    from client.connection import Conveyor
    from tests.chaos.harness import ScoringTally, keep_scoring, loop_stalls

    plan = json.loads(await asyncio.to_thread(sys.stdin.readline))
    settings = join_ray(state_dir, cluster_name)
    from actors.remote import disconnect

    try:
        async with Conveyor.connect(settings) as conveyor:
            deadline, model, learner = plan["deadline_ms"], plan["model"], plan["learner"]
            model_rows, learner_rows = plan["model_rows"], plan["learner_rows"]
            await conveyor.connect_learners()
            await conveyor.score(model, model_rows[0], deadline_ms=1000)
            await conveyor.score_online(learner, learner_rows[0], deadline_ms=1000)
            tallies = {"model": ScoringTally(deadline), "learner": ScoringTally(deadline)}
            stop = asyncio.Event()
            callers = [
                asyncio.ensure_future(keep_scoring(
                    lambda i: conveyor.score(model, model_rows[i % len(model_rows)], deadline_ms=deadline),
                    tallies["model"], stop)),
                asyncio.ensure_future(keep_scoring(
                    lambda i: conveyor.score_online(learner, learner_rows[i % len(learner_rows)],
                                                    deadline_ms=deadline),
                    tallies["learner"], stop))]
            stalls = asyncio.ensure_future(loop_stalls(stop))
            print("ready", flush=True)
            await _stdin_closed()
            stop.set()
            await asyncio.gather(*callers)
            return {**{k: dataclasses.asdict(t) for k, t in tallies.items()}, "loop_late_ms": await stalls}
    finally:
        disconnect()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    print(json.dumps(asyncio.run(serve(*args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
