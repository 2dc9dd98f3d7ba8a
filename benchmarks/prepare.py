#!/usr/bin/env python
"""Preparation throughput of a Conveyor cluster beside in-process floors measured in the same run.

    python benchmarks/prepare.py [--rows N] [--runs R] [--floor-runs K] [--profile DIR]
                                                  # default 200,000 rows; ~2-3 minutes

A deterministic CSV of N rows (``id``, numeric ``x1`` ``x2`` ``x3`` -- ``x2`` empty in ~1 %
of the rows, so that the impute step has work --, ``color`` with 5 values, ``label`` 0/1;
seeded) is written to a temp dir. A fresh embedded cluster is started with
``python run.py cluster start`` (its own state dir under /tmp, a unique cluster name, no
CONVEYOR_*/RAY_* variables from the caller) and always stopped again with
``python run.py cluster stop``; afterwards no process may still mention its state dir or
Ray's work dir. A failed start (Ray's head has timed out during start-up on this shared,
overloaded machine) is stopped and retried once with another fresh cluster.

The feature spec (:data:`SPEC_TOML`: numeric x3, onehot, impute, scale, clip; key ``id``,
label ``label``) is checked with ``FeatureSpec.from_toml`` and then set with
``python run.py features set``; the file is ingested with
``python run.py ingest DATASET CSV --key id --label label``. Being the dataset's first
batch, it is the training batch: preparation fits the feature set on it and transforms it.

Figure (rows/s): N / (``raw_batches.completed_at`` -> the moment the batch's
``feature_quality`` row is visible, polled every 20 ms), both on PostgreSQL's clock: from
the batch's completion until its N vectors are committed in PostgreSQL, the online copy
in Redis is complete (written inside that transaction) and ``features.generated`` is in
the outbox. The goal is judged on it. Also shown: ``feature_quality.created_at``, which
is ``now()``, the start of the transaction that transforms the batch piece by piece
and stores each piece (so the span up to it holds reading, decoding and the fit only),
the wall time from the exit of ``run.py ingest`` until ``feature_quality`` has the row,
when ``raw.ingested`` and ``features.generated`` were published by the outbox relay, and
the CPU seconds of the ``root.prepare`` actor's process, the size of the batch's quality
report, and every supervision lifecycle signal (``actor.hung``, ``actor.restarted``...)
recorded during the run. A restart of ``root.prepare`` is reported as an error; the
figure is still shown, marked, as it includes preparing the batch again.

Floors, same run, same machine, with the cluster idle, on the same rows: the CSV parsed
with the csv module and every value converted with ``actors.preparation.typed_value``
(timed separately; not part of a floor), then

A. the same :class:`ml.features.FeatureSpec`, ``fit_feature_set`` + ``transform_batch``
   in this process (the same transforms, run with numpy on the same rows). **The goal,
   >= 0.5 x floor, is judged against this floor.**
A'. the same as A with the rows handed over as :class:`ml.columns.Columns` (one list per
   column), as preparation hands a CSV batch to the transforms; shown for reference, so
   that what the pipeline gains from that form is not read as the pipeline being cheap.
B. a pure-numpy version of the same math: columns pulled out of the typed rows into float
   arrays, median impute, standardisation (population std), clip to the 1 % / 99 %
   quantiles, one-hot via ``np.unique(return_inverse=True)``. A second, lower floor
   (higher rows/s), shown for reference.

Each floor is run ``--floor-runs`` times (default 3) and its median taken. The machine is
shared and its load swings within a minute, so with ``--runs R`` the file is ingested R
times into the same cluster, as datasets ``bench-prepare-1..R`` (each batch the training
batch of its dataset: fitted and transformed), and floor A is run once right after each;
the conveyor's figures are then the medians of the R runs, floor A the median of all its
runs, and each run's ratios beside the floor A run right after it are shown too. Checked and
printed: B's X equals A's; the product's fitted feature set (``feature_sets.fitted``; its
id, and its fitted states when they differ) is A's; every vector the product stored
equals A's row (within 1e-9).

With ``--profile DIR`` the ``root.prepare`` actor is sampled with ``py-spy record``
(non-idle threads, 100 Hz) and ``pg_stat_activity`` every 50 ms, from before the ingestion
until the features are visible (collapsed stacks in DIR and the top functions printed; per
statement of the client backends, when it was first and last seen active, from the batch's
completion); sampling perturbs the figure a little.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 0.5
CATEGORIES = ("red", "green", "blue", "cyan", "magenta")
PREPARE_ACTOR = "root.prepare"
CLIP = (0.01, 0.99)

SPEC_TOML = f"""\
label = "label"
key = "id"

[[steps]]
name = "num"
transform = "numeric"
columns = ["x1", "x2", "x3"]

[[steps]]
name = "color"
transform = "onehot"
columns = ["color"]

[[steps]]
name = "num_filled"
transform = "impute"
columns = ["num"]
params = {{ strategy = "median" }}

[[steps]]
name = "num_scaled"
transform = "scale"
columns = ["num"]

[[steps]]
name = "num_clipped"
transform = "clip"
columns = ["num"]
params = {{ lower = {CLIP[0]}, upper = {CLIP[1]} }}
"""
NUMERIC = ("x1", "x2", "x3")


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# --- the data ------------------------------------------------------------------------------

def write_csv(path: Path, n_rows: int, seed: int) -> int:
    """N rows of id, x1..x3 (floats; x2 empty in ~1 %), color (5 values), label (0/1); the
    same bytes for the same (n_rows, seed). Returns the number of empty x2 fields."""
    rng = random.Random(seed)
    n_missing = 0
    with open(path, "w", newline="") as f:
        f.write("id,x1,x2,x3,color,label\n")
        lines = []
        for i in range(1, n_rows + 1):
            x1, x2, x3 = rng.gauss(0.0, 1.0), rng.uniform(0.0, 100.0), rng.expovariate(0.5)
            color = CATEGORIES[rng.randrange(len(CATEGORIES))]
            label = 1 if x1 + x2 / 50.0 + rng.gauss(0.0, 0.5) > 1.0 else 0
            x2_text = f"{x2:.4f}"
            if rng.random() < 0.01:
                x2_text = ""
                n_missing += 1
            lines.append(f"{i},{x1:.6f},{x2_text},{x3:.5f},{color},{label}\n")
            if len(lines) >= 50_000:
                f.write("".join(lines))
                lines = []
        f.write("".join(lines))
    return n_missing


def read_typed_rows(path: Path) -> list[dict]:
    """The CSV as the preparation actor sees it: one dict per row, every value through
    ``typed_value`` (int, finite float, '' -> None, else the string)."""
    from actors.preparation import typed_value

    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return [{k: typed_value(v) for k, v in zip(header, row)} for row in reader]


# --- floor A: ml.features in-process -----------------------------------------------------------

def floor_features(spec, rows) -> dict:
    from ml.features import fit_feature_set

    cpu = time.process_time()
    began = time.perf_counter()
    fitted = fit_feature_set(spec, rows)
    fit_done = time.perf_counter()
    X, y, report = fitted.transform_batch(rows)
    done = time.perf_counter()
    return {"fit_s": fit_done - began, "transform_s": done - fit_done, "wall_s": done - began,
            "cpu_s": time.process_time() - cpu, "rows_per_s": len(rows) / (done - began),
            "X": X, "y": y, "n_kept": len(report.kept), "n_quarantined": len(report.quarantined),
            "feature_set_id": fitted.feature_set_id, "feature_names": list(fitted.feature_names), "fitted": fitted}


# --- floor B: the same math in plain numpy --------------------------------------------------------

def floor_numpy(rows: list[dict]) -> dict:
    import numpy as np

    nan = float("nan")
    cpu = time.process_time()
    began = time.perf_counter()
    n = len(rows)
    cols = [np.fromiter((nan if (v := r[c]) is None else v for r in rows), dtype=np.float64, count=n)
            for c in NUMERIC]
    colors = np.array([r["color"] for r in rows])
    y = np.fromiter((r["label"] for r in rows), dtype=np.int64, count=n)
    keys = [r["id"] for r in rows]
    extracted = time.perf_counter()
    outs = []
    for x in cols:
        x = np.where(np.isnan(x), np.median(x[~np.isnan(x)]), x)            # impute (median)
        std = x.std()
        x = (x - x.mean()) / (std if std > 0 else 1.0)                      # scale
        low, high = np.quantile(x, CLIP)                                      # clip
        outs.append(np.clip(x, low, high))
    categories, codes = np.unique(colors, return_inverse=True)              # one-hot
    onehot = np.eye(len(categories), dtype=np.float64)[codes]
    X = np.column_stack(outs + [onehot])
    done = time.perf_counter()
    del keys
    return {"extract_s": extracted - began, "math_s": done - extracted, "wall_s": done - began,
            "cpu_s": time.process_time() - cpu, "rows_per_s": n / (done - began), "X": X, "y": y,
            "names": [f"num.{c}" for c in NUMERIC] + [f"color.{c}" for c in categories]}


def compare_with_floor(c: dict, fa: dict, rows: list[dict]) -> list[str]:
    """The product's feature set and stored vectors beside floor A's; prints, returns problems."""
    import numpy as np

    from ml.features import FittedFeatureSet

    problems = []
    product = FittedFeatureSet.from_bytes(c["fitted"])
    ours = fa["fitted"]
    diffs = []
    for mine, theirs in zip(product.steps, ours.steps):
        a, b = mine.state, theirs.state
        if a != b:
            for field in a:
                if a[field] != b.get(field):
                    diffs.append(f"{mine.name}.{field}: product {a[field]} / floor {b.get(field)}")
    same_id = product.feature_set_id == ours.feature_set_id
    print(f"  check: the product's fitted feature set (feature_sets.fitted, stored under id {c['row']['feature_set_id']})"
          f" has id {product.feature_set_id}: {'the same as' if same_id else 'NOT'} floor A's {ours.feature_set_id}"
          + ("" if same_id else "; fitted states that differ: " + ("; ".join(diffs) or "none")), flush=True)
    keys_ok = c["keys"] == [str(r["id"]) for r in rows]
    X = np.array(c["vectors"], dtype=np.float64) if c["vectors"] else np.empty((0, fa["X"].shape[1]))
    if not keys_ok or X.shape != fa["X"].shape:
        problems.append(f"the product stored {X.shape} vectors (keys in CSV order: {keys_ok}); floor A has "
                        f"{fa['X'].shape}")
        return problems
    unequal = ~(X == fa["X"]).all(axis=1)
    print(f"  check: stored vectors equal to floor A's rows: {len(X) - int(unequal.sum()):,} of {len(X):,}"
          + ("" if not unequal.any() else f"; max |diff| {np.abs(X - fa['X']).max():.1e}"), flush=True)
    if not same_id:
        problems.append("the product's fitted feature set differs from floor A's"
                        + (" (equal fitted states)" if not diffs else ""))
    if unequal.any() and np.abs(X - fa["X"]).max() > 1e-9:
        problems.append("the product's vectors differ from floor A's beyond rounding")
    return problems


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _fmt_ratio(x: float | None, y: float | None) -> str:
    return "n/a" if x is None or not y else f"{x / y:.2f}"


def _median_of_runs(runs: list[dict]) -> dict:
    """The conveyor's figures over several runs: medians of the times (and the rows/s from
    them), the paired ratios; the rest of the first run."""
    out = {**runs[0], "runs": runs}
    for key, rate in (("db_prepare_s", "rows_per_s"), ("db_visible_s", "rows_per_s_visible")):
        times = [r[key] for r in runs if r.get(key)]
        out[key] = _median(times) if times else None
        out[rate] = (runs[0]["batch"].get("n_rows") or 0) / out[key] if out[key] else None
    out["prep_restarts"] = sum(r.get("prep_restarts") or 0 for r in runs)
    return out


def _median_run(fn, runs: int) -> tuple[dict, list[float]]:
    got = [fn() for _ in range(runs)]
    walls = [g["wall_s"] for g in got]
    best = sorted(got, key=lambda g: g["wall_s"])[len(got) // 2]
    return best, walls


# --- the cluster side --------------------------------------------------------------------------

async def _prepared_row(conn, dataset: str):
    return await conn.fetchrow(
        "SELECT q.feature_set_id, q.batch_id, extract(epoch FROM q.created_at)::float8 AS created,"
        " extract(epoch FROM clock_timestamp())::float8 AS seen FROM feature_quality q"
        " JOIN feature_sets s USING (feature_set_id) WHERE s.dataset = $1", dataset)


async def _wait_prepared(dsn: str, dataset: str, timeout_s: float) -> tuple[dict | None, float]:
    """Poll feature_quality every 20 ms; returns (the row with PostgreSQL's clock at the poll
    that saw it, this process's monotonic time of that moment)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            row = await _prepared_row(conn, dataset)
            if row is not None:
                return dict(row), time.monotonic()
            if time.monotonic() > deadline:
                return None, time.monotonic()
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def _timeline(dsn: str, dataset: str, feature_set_id: str | None) -> dict:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        batch = await conn.fetchrow(
            "SELECT batch_id, state, n_rows, n_rejected, extract(epoch FROM created_at)::float8 AS created,"
            " extract(epoch FROM completed_at)::float8 AS completed FROM raw_batches WHERE dataset = $1"
            " ORDER BY created_at DESC LIMIT 1", dataset)
        published = {r["topic"]: r for r in await conn.fetch(
            "SELECT topic, extract(epoch FROM created_at)::float8 AS created,"
            " extract(epoch FROM published_at)::float8 AS published FROM outbox"
            " WHERE topic IN ('raw.ingested', 'features.generated') AND msg_key = $1", dataset.encode())}
        signals = []
        if batch:
            from messages.codec import decode

            for r in await conn.fetch("SELECT extract(epoch FROM created_at)::float8 AS at, payload FROM outbox"
                                      " WHERE topic = 'lifecycle' AND created_at >= to_timestamp($1) ORDER BY id",
                                      batch["created"]):
                try:
                    signals.append((r["at"], decode(bytes(r["payload"]))))
                except Exception as exc:
                    signals.append((r["at"], f"undecodable lifecycle signal: {exc}"))
        out: dict = {"batch": dict(batch) if batch else None, "signals": signals,
                     "raw_ingested": dict(published["raw.ingested"]) if "raw.ingested" in published else None,
                     "features_generated": (dict(published["features.generated"])
                                            if "features.generated" in published else None)}
        if feature_set_id:
            out["n_features_rows"] = await conn.fetchval(
                "SELECT count(*) FROM features WHERE feature_set_id = $1", feature_set_id)
            out["n_quarantined"] = await conn.fetchval(
                "SELECT count(*) FROM feature_quarantine WHERE feature_set_id = $1", feature_set_id)
            out["report_bytes"] = await conn.fetchval(
                "SELECT octet_length(report::text) FROM feature_quality WHERE feature_set_id = $1", feature_set_id)
            out["fitted"] = bytes(await conn.fetchval("SELECT fitted FROM feature_sets WHERE feature_set_id = $1",
                                                      feature_set_id))
            rows = await conn.fetch("SELECT entity_key, vector FROM features WHERE feature_set_id = $1"
                                    " ORDER BY line_no", feature_set_id)
            out["keys"] = [r["entity_key"] for r in rows]
            out["vectors"] = [r["vector"] for r in rows]
        return out
    finally:
        await conn.close()


class SpyRecord:
    """``py-spy record`` (non-blocking; every thread that is not idle, GIL or not, so numpy
    work in the worker thread counts) of some processes, stopped with SIGINT."""

    def __init__(self, out_dir: Path, pids: dict[str, int]) -> None:
        self.procs, self.files = {}, {}
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            path = out_dir / f"{name}-{pid}.txt"
            self.files[name] = path
            self.procs[name] = subprocess.Popen(
                ["py-spy", "record", "--pid", str(pid), "--nonblocking", "--threads", "--rate", "100",
                 "--format", "raw", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> dict[str, Path]:
        import signal

        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return {n: p for n, p in self.files.items() if p.exists()}


class PgTimeline:
    """Samples ``pg_stat_activity`` every ``interval_s`` (PostgreSQL's clock): per statement
    of the other client backends, when it was first and last seen active, in how many
    samples, and what it waited on."""

    QUERY = ("SELECT extract(epoch FROM clock_timestamp())::float8 AS now, pid,"
             " coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait,"
             " regexp_replace(left(query, 200), '\\s+', ' ', 'g') AS query FROM pg_stat_activity"
             " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'"
             " AND backend_type = 'client backend'")

    def __init__(self, dsn: str, interval_s: float = 0.05) -> None:
        self.dsn, self.interval_s = dsn, interval_s
        self.seen: dict[str, dict] = {}
        self.n_samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    async def _run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.is_set():
                for row in await conn.fetch(self.QUERY):
                    entry = self.seen.setdefault(row["query"][:100], {"first": row["now"], "waits": {}, "n": 0})
                    entry["last"] = row["now"]
                    entry["n"] += 1
                    entry["waits"][row["wait"]] = entry["waits"].get(row["wait"], 0) + 1
                self.n_samples += 1
                await asyncio.sleep(self.interval_s)
        finally:
            await conn.close()

    def stop(self) -> tuple[int, dict[str, dict]]:
        self._stop.set()
        self._thread.join(10)
        return self.n_samples, self.seen


def code_version() -> str:
    """The checkout's commit, and whether the tree has changes (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{head or 'unknown'}" + (" with uncommitted changes" if dirty else "")


def start_cluster(attempts: int = 2):
    """A fresh cluster (benchmarks.ingest.Cluster), started; a failed start (on this shared
    machine Ray's head has timed out during start-up under load) is stopped, its leftovers
    checked, and tried once more with another fresh cluster. Returns (cluster, notes)."""
    from benchmarks.ingest import Cluster

    notes: list[str] = []
    for attempt in range(1, attempts + 1):
        cluster = Cluster()
        print(f"starting cluster {cluster.name} in {cluster.state} ...", flush=True)
        try:
            print(f"  healthy in {cluster.start():.1f} s", flush=True)
            return cluster, notes
        except Exception as exc:
            last = (str(exc).strip().splitlines() or [""])[-1]
            problems = cluster.stop()
            note = f"cluster start attempt {attempt} failed ({last[:200]}); stopped" + (
                ": " + "; ".join(problems) if problems else ", no process left")
            notes.append(note)
            print(f"  {note}", flush=True)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def measure_conveyor(cluster, csv_path: Path, n_rows: int, dataset: str, spec_path: Path,
                     timeout_s: float, profile_dir: Path | None) -> dict:
    from benchmarks.ingest import OutputWatch, actors_of, pids_cpu_s

    problems: list[str] = []
    done = cluster.cli("features", "set", dataset, str(spec_path), timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"run.py features set exited {done.returncode}: {done.stdout[-500:]} {done.stderr[-1500:]}")
    before = actors_of(cluster.status())
    bad = [a for a, v in before.items() if v.get("state") != "running"]
    if bad:
        raise RuntimeError(f"cluster not healthy before the ingestion: {bad}")
    prep = before[PREPARE_ACTOR]
    prep_pid = prep["pid"]
    profiler = SpyRecord(profile_dir / dataset, {"prepare": prep_pid}) if profile_dir else None
    sampler = PgTimeline(cluster.dsn) if profile_dir else None
    cpu_before = pids_cpu_s({"prepare": prep_pid})["prepare"]

    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "ingest", dataset, str(csv_path),
                             "--key", "id", "--label", "label", "--timeout", str(int(timeout_s))],
                            cwd=ROOT, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watch = OutputWatch(proc.stdout, began)
    err: list[bytes] = []
    err_thread = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    err_thread.start()
    try:
        code = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    exited = time.monotonic()
    watch.join()
    err_thread.join(10)
    stderr = b"".join(err).decode("utf-8", "replace")
    if code != 0:
        problems.append(f"run.py ingest exited {code}: {stderr.strip()[-800:]}")
        row, seen = None, exited
    else:
        row, seen = asyncio.run(_wait_prepared(cluster.dsn, dataset, timeout_s))
        if row is None:
            problems.append(f"feature_quality had no row for {dataset!r} {timeout_s:.0f} s after the ingestion")
    cpu_after = pids_cpu_s({"prepare": prep_pid})["prepare"]
    profiles = profiler.stop() if profiler else {}
    pg_samples = sampler.stop() if sampler else None
    after = actors_of(cluster.status()).get(PREPARE_ACTOR, {})

    facts = asyncio.run(_timeline(cluster.dsn, dataset, row and row["feature_set_id"]))
    batch = facts["batch"] or {}
    out = {"ingest_wall_s": exited - began, "exit": code, "stdout": watch.text, "stderr": stderr,
           "batch": batch, "raw_ingested": facts["raw_ingested"], "features_generated": facts["features_generated"],
           "row": row, "visible_after_exit_s": (seen - exited) if row else None, "prep_pid": prep_pid,
           "prep_cpu_s": cpu_after - cpu_before, "prep_restarts": (after.get("n_restarts") or 0)
           - (prep.get("n_restarts") or 0), "prep_pid_after": after.get("pid"), "profiles": profiles,
           "pg_samples": pg_samples, "signals": facts["signals"], "report_bytes": facts.get("report_bytes"),
           "n_features_rows": facts.get("n_features_rows"), "n_quarantined": facts.get("n_quarantined"),
           "fitted": facts.get("fitted"), "keys": facts.get("keys"), "vectors": facts.get("vectors")}
    if batch.get("state") != "complete" or batch.get("n_rows") != n_rows or batch.get("n_rejected"):
        problems.append(f"batch {batch.get('batch_id')}: state {batch.get('state')!r}, {batch.get('n_rows')} rows, "
                        f"{batch.get('n_rejected')} rejected; expected complete, {n_rows}, 0")
    if row is not None:
        if row["batch_id"] != batch.get("batch_id"):
            problems.append(f"feature_quality is of batch {row['batch_id']}, not {batch.get('batch_id')}")
        if out["n_features_rows"] != n_rows:
            problems.append(f"{out['n_features_rows']} feature rows stored, {out['n_quarantined']} quarantined; "
                            f"expected {n_rows}, 0")
        completed = batch.get("completed")
        if completed is not None:
            out["db_prepare_s"] = row["created"] - completed
            out["db_visible_s"] = row["seen"] - completed
            out["rows_per_s"] = n_rows / out["db_prepare_s"] if out["db_prepare_s"] > 0 else None
            out["rows_per_s_visible"] = n_rows / out["db_visible_s"] if out["db_visible_s"] > 0 else None
    if out["prep_restarts"]:
        problems.append(f"{PREPARE_ACTOR} restarted {out['prep_restarts']}x during the run "
                        f"(pid {prep_pid} -> {out['prep_pid_after']})")
    out["problems"] = problems
    if any(not p.startswith(PREPARE_ACTOR) for p in problems):   # a restart still gives a (slower) figure
        out["rows_per_s"] = out["rows_per_s_visible"] = None
    return out


# --- the report ----------------------------------------------------------------------------

def _fmt(value, digits: int = 0, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _rel(t: float | None, origin: float | None) -> str:
    return "n/a" if t is None or origin is None else f"{t - origin:+.2f} s"


def show_conveyor(c: dict, n_rows: int) -> None:
    b = c["batch"]
    completed = b.get("completed")
    print(f"  run.py ingest: exit {c['exit']} after {_fmt(c['ingest_wall_s'], 2)} s; batch {b.get('batch_id')}: "
          f"{_fmt(b.get('n_rows'))} rows, {_fmt(b.get('n_rejected'))} rejected", flush=True)
    print("  timeline on PostgreSQL's clock, from the batch's completion (raw_batches.completed_at):", flush=True)
    ri, fg, row = c.get("raw_ingested") or {}, c.get("features_generated") or {}, c.get("row") or {}
    print(f"    raw.ingested written to the outbox {_rel(ri.get('created'), completed)}, "
          f"published {_rel(ri.get('published'), completed)}", flush=True)
    print(f"    feature_quality.created_at (= start of the transaction transforming and storing the pieces) "
          f"{_rel(row.get('created'), completed)}", flush=True)
    print(f"    feature_quality row first seen by the 20 ms poll {_rel(row.get('seen'), completed)}", flush=True)
    print(f"    features.generated published by the relay {_rel(fg.get('published'), completed)}", flush=True)
    print(f"  wall time from run.py ingest's exit until feature_quality had the row: "
          f"{_fmt(c.get('visible_after_exit_s'), 2)} s", flush=True)
    print(f"  {PREPARE_ACTOR} (pid {c['prep_pid']}): {_fmt(c['prep_cpu_s'], 1)} CPU s from the ingestion's start "
          f"until the row was seen; stored {_fmt(c.get('n_features_rows'))} vectors, "
          f"{_fmt(c.get('n_quarantined'))} quarantined", flush=True)
    if c.get("report_bytes"):
        print(f"  the batch's quality report (feature_quality.report) is {c['report_bytes'] / 2**20:.1f} MiB of JSON",
              flush=True)
    for at, signal in c.get("signals") or []:
        print(f"  lifecycle signal at {_rel(at, completed)} from completed_at: {signal!r}"[:400], flush=True)
    for p in c["problems"]:
        print(f"  PROBLEM: {p}", flush=True)


def show_profiles(c: dict) -> None:
    from benchmarks.ingest import top_functions

    completed = (c.get("batch") or {}).get("completed")
    if c.get("pg_samples") and completed is not None:
        n, seen = c["pg_samples"]
        print(f"  pg_stat_activity, {n} samples every 50 ms: statements of the client backends seen active at or "
              f"after the batch's completion (first .. last seen, PostgreSQL's clock, from completed_at)")
        for query, e in sorted(seen.items(), key=lambda item: item[1]["first"]):
            if e["last"] < completed - 0.5:
                continue
            waits = ", ".join(f"{w} {k}" for w, k in sorted(e["waits"].items(), key=lambda x: -x[1]))
            print(f"    {e['first'] - completed:+7.2f} .. {e['last'] - completed:+7.2f} s  {e['n']:4d} samples "
                  f"[{waits}]  {query[:90]}")
    for name, path in sorted(c.get("profiles", {}).items()):
        total, own, incl = top_functions(path, 15)
        if not total:
            continue
        print(f"  py-spy {name} ({total} samples of non-idle threads at 100 Hz, {path}):")
        print("    self:")
        for frame, k in own:
            print(f"      {100 * k / total:5.1f}%  {frame}")
        print("    inclusive:")
        for frame, k in incl:
            print(f"      {100 * k / total:5.1f}%  {frame}")


def report(n_rows: int, c: dict, fa: dict | None, fb: dict | None, parse_s: float | None,
           floor_runs: int, errors: list[str]) -> bool:
    mine, mine_visible = c.get("rows_per_s"), c.get("rows_per_s_visible")
    a = fa and fa.get("rows_per_s")
    b = fb and fb.get("rows_per_s")

    def ratio(x, y):
        return None if x is None or not y else x / y

    print()
    print(f"preparation, {n_rows:,} rows (fit + transform of the training batch)")
    print(f"{'figure':<58} {'rows/s':>10} {'seconds':>8}   {'vs A':>6}   {'vs B':>6}")
    lines = [
        ("conveyor: completed_at -> features visible (the figure)" + (" *" if c.get("prep_restarts") else ""),
         mine_visible, c.get("db_visible_s")),
        ("conveyor: completed_at -> write transaction start (read+fit)", mine, c.get("db_prepare_s")),
        ("floor A: fit_feature_set + transform_batch, in-process", a, fa and fa.get("wall_s")),
        ("floor A': the same on the rows as ml.columns.Columns", fa and fa.get("columns", {}).get("rows_per_s"),
         fa and fa.get("columns", {}).get("wall_s")),
        ("floor B: pure numpy (same math)", b, fb and fb.get("wall_s")),
    ]
    for label, rate, secs in lines:
        ra, rb = ratio(rate, a), ratio(rate, b)
        print(f"{label:<58} {_fmt(rate):>10} {_fmt(secs, 2):>8}   "
              f"{'n/a' if ra is None else f'{ra:.2f}':>6}   {'n/a' if rb is None else f'{rb:.2f}':>6}")
    if c.get("prep_restarts"):
        print(f"* includes {c['prep_restarts']} restart(s) of {PREPARE_ACTOR} during the preparation (the batch "
              f"was prepared again from the start)")
    if len(c.get("runs") or []) > 1:
        pairs = [(r.get("rows_per_s"), r.get("rows_per_s_visible"), r.get("paired_floor")) for r in c["runs"]]
        to_report = [x / f for x, _, f in pairs if x and f]
        to_visible = [v / f for _, v, f in pairs if v and f]
        print(f"{len(pairs)} runs: conveyor figures are medians (runs, to the visible row: "
              f"{', '.join(_fmt(r.get('rows_per_s_visible')) for r in c['runs'])} rows/s); floor A is the median of every "
              f"floor A run. Each run beside the floor A run right after it: ratios to the visible row "
              f"{', '.join(f'{x:.2f}' for x in to_visible)} (median {_median(to_visible) if to_visible else 0:.2f}); "
              f"to the transaction start {', '.join(f'{x:.2f}' for x in to_report)} "
              f"(median {_median(to_report) if to_report else 0:.2f})")
    ra = ratio(mine_visible, a)
    met = None if ra is None else ra >= GOAL_RATIO
    print(f"goal: conveyor (completed -> features visible) >= {GOAL_RATIO} x floor A (\"the same transforms run "
          f"in-process with numpy on the same rows\"): ratio {'n/a' if ra is None else f'{ra:.2f}'} -> "
          f"{'n/a' if met is None else 'met' if met else 'NOT MET'}")
    a_cols = fa and fa.get("columns", {}).get("rows_per_s")
    if a_cols:
        print(f"beside floor A' (the same transforms handed the rows as columns, as preparation hands them a CSV "
              f"batch): ratio {ratio(mine_visible, a_cols):.2f}")
    print(f"(floors: medians of {floor_runs} run(s) in this process with the cluster idle; not in any floor: csv "
          f"parse + typed_value of the rows, {_fmt(parse_s, 2)} s. Machine: {os.cpu_count()} cores, shared; "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    from benchmarks.report import print_errors

    print_errors(errors)
    return bool(met)


# --- main ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/prepare.py",
        description="Preparation rows/s of a fresh cluster (batch completion -> features generated, PostgreSQL's "
                    "clock) beside in-process floors on the same rows: ml.features fit + transform (A, the goal's "
                    "floor) and plain numpy (B). Goal: at least 0.5 x floor A.")
    parser.add_argument("--rows", type=int, default=200_000, help="rows in the generated CSV (default 200,000)")
    parser.add_argument("--seed", type=int, default=20240611, help="seed of the generated data")
    parser.add_argument("--floor-runs", type=int, default=3, help="runs of each floor, median taken (default 3)")
    parser.add_argument("--runs", type=int, default=1,
                        help="ingestions of the file as new datasets in the same cluster, each followed by a run of "
                             "floor A; medians and paired ratios shown (default 1)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds the ingestion, and then the preparation, may each take "
                             "(default max(180, rows / 1000))")
    parser.add_argument("--profile", metavar="DIR", help="sample root.prepare with py-spy during the run and "
                                                         "print its top functions (perturbs the figure a little)")
    args = parser.parse_args(argv)
    if args.rows < 10:
        parser.error("--rows must be at least 10")
    if args.floor_runs < 1:
        parser.error("--floor-runs must be at least 1")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.profile and not shutil.which("py-spy"):
        parser.error("--profile needs py-spy on PATH")
    timeout_s = args.timeout or max(180.0, args.rows / 1000)
    _project_on_path()
    for key in [k for k in os.environ if k.startswith(("CONVEYOR_", "RAY_"))]:
        del os.environ[key]

    from ml.features import FeatureSpec

    spec = FeatureSpec.from_toml(SPEC_TOML)   # refuses a bad spec before anything starts
    began = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="cv-bench-data-"))
    csv_path, spec_path = data_dir / "prepare.csv", data_dir / "spec.toml"
    spec_path.write_text(SPEC_TOML)
    errors: list[str] = []
    cluster = None
    c: dict = {"problems": [], "batch": {}}
    runs: list[dict] = []
    floor_walls: list[float] = []
    fa = fb = None
    parse_s = None
    dataset = "bench-prepare"
    try:
        t = time.monotonic()
        n_missing = write_csv(csv_path, args.rows, args.seed)
        print(f"data: {args.rows:,} rows ({n_missing:,} with x2 empty), {csv_path.stat().st_size / 2**20:.1f} MiB "
              f"in {csv_path} ({time.monotonic() - t:.1f} s); spec checked: {len(spec.steps)} steps", flush=True)
        print(f"code: {code_version()}", flush=True)
        t = time.perf_counter()
        rows = read_typed_rows(csv_path)
        parse_s = time.perf_counter() - t
        print(f"csv parse + typed_value for the floors: {parse_s:.2f} s (not part of a floor)", flush=True)
        cluster, _ = start_cluster()
        for k in range(1, args.runs + 1):
            name = dataset if args.runs == 1 else f"{dataset}-{k}"
            print(f"conveyor{'' if args.runs == 1 else f' run {k}'}: features set + ingest of dataset {name!r} "
                  f"(load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}) ...", flush=True)
            try:
                run = measure_conveyor(cluster, csv_path, args.rows, name, spec_path, timeout_s,
                                       Path(args.profile) if args.profile else None)
                show_conveyor(run, args.rows)
                show_profiles(run)
                errors.extend(f"conveyor{'' if args.runs == 1 else f' run {k}'}: {p}" for p in run["problems"])
            except Exception as exc:
                errors.append(f"conveyor: {type(exc).__name__}: {exc}")
                print(f"  conveyor: failed ({type(exc).__name__}: {exc})", flush=True)
                break
            runs.append(run)
            if args.runs > 1:   # floor A right after, under about the same load
                paired = floor_features(spec, rows)
                floor_walls.append(paired["wall_s"])
                run["paired_floor"] = paired["rows_per_s"]
                print(f"  floor A right after: {paired['rows_per_s']:,.0f} rows/s ({paired['wall_s']:.2f} s); "
                      f"ratios to the visible row {_fmt_ratio(run.get('rows_per_s_visible'), paired['rows_per_s'])}, "
                      f"to the transaction start {_fmt_ratio(run.get('rows_per_s'), paired['rows_per_s'])}", flush=True)
        c = runs[0] if len(runs) == 1 else (_median_of_runs(runs) if runs else c)

        print(f"floors ({args.floor_runs} run(s) each; load average "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}) ...", flush=True)
        fa, walls_a = _median_run(lambda: floor_features(spec, rows), args.floor_runs)
        if floor_walls:   # the paired runs count too
            walls_a = floor_walls + walls_a
            fa = {**fa, "wall_s": _median(walls_a), "rows_per_s": args.rows / _median(walls_a)}
        print(f"  floor A (ml.features): fit {fa['fit_s']:.2f} s + transform {fa['transform_s']:.2f} s = "
              f"{fa['wall_s']:.2f} s, {fa['rows_per_s']:,.0f} rows/s (runs: "
              f"{', '.join(f'{w:.2f}' for w in walls_a)} s); {fa['n_kept']:,} kept, {fa['n_quarantined']} "
              f"quarantined; feature set {fa['feature_set_id']}", flush=True)
        from ml.columns import Columns

        as_columns = Columns.from_rows(rows)
        fa_cols, walls_ac = _median_run(lambda: floor_features(spec, as_columns), args.floor_runs)
        print(f"  floor A' (ml.features on the rows as Columns): fit {fa_cols['fit_s']:.2f} s + transform "
              f"{fa_cols['transform_s']:.2f} s = {fa_cols['wall_s']:.2f} s, {fa_cols['rows_per_s']:,.0f} rows/s (runs: "
              f"{', '.join(f'{w:.2f}' for w in walls_ac)} s)", flush=True)
        if fa_cols["feature_set_id"] != fa["feature_set_id"]:
            errors.append("floor A' (the rows as Columns) fitted another feature set than floor A")
        fa["columns"] = fa_cols
        fb, walls_b = _median_run(lambda: floor_numpy(rows), args.floor_runs)
        print(f"  floor B (numpy): rows -> arrays {fb['extract_s']:.2f} s + math {fb['math_s']:.3f} s = "
              f"{fb['wall_s']:.2f} s, {fb['rows_per_s']:,.0f} rows/s (runs: "
              f"{', '.join(f'{w:.2f}' for w in walls_b)} s)", flush=True)

        import numpy as np

        if fb["names"] != fa["feature_names"]:
            errors.append(f"floor B's columns {fb['names']} differ from floor A's {fa['feature_names']}")
        elif fb["X"].shape != fa["X"].shape or not np.allclose(fb["X"], fa["X"], rtol=1e-12, atol=1e-12):
            errors.append("floor B's X differs from floor A's X")
        else:
            print(f"  check: floor B's X equals floor A's (max |diff| {np.abs(fb['X'] - fa['X']).max():.1e}); "
                  f"columns {', '.join(fa['feature_names'])}", flush=True)
        first = runs[0] if runs else c
        if first.get("row") is not None and first.get("vectors") is not None:
            errors.extend(compare_with_floor(first, fa, rows))
    except KeyboardInterrupt:
        print("interrupted; stopping what was started", flush=True)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if cluster is not None:
            print(f"stopping cluster {cluster.name} ...", flush=True)
            problems = cluster.stop()
            errors.extend(problems)
            print("  stopped; " + ("no process left" if not problems else "; ".join(problems)), flush=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    met = report(args.rows, c, fa, fb, parse_s, args.floor_runs, errors)
    print(f"\ntotal {time.monotonic() - began:.0f} s")
    return 0 if met and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
