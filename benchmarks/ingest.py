#!/usr/bin/env python
"""Offline ingestion throughput of a Conveyor cluster beside a floor measured in the same run.

    python benchmarks/ingest.py [--rows N] [--runs K] [--profile DIR]
                                                 # default 1,000,000 rows, 1 run

A deterministic CSV of N rows (``id``, four numeric columns, one categorical column,
``label``; seeded) is written to a temp dir. A fresh embedded cluster is started with
``python run.py cluster start`` (its own state dir under /tmp, a unique cluster name,
no CONVEYOR_*/RAY_* variables from the caller), used for every run, and always stopped
again with ``python run.py cluster stop``; afterwards no process may still mention its
state dir or Ray's work dir.

Figure: ingestion rows/s through the pipeline = N / wall time of
``python run.py ingest DATASET CSV --key id --label label``, from its start to its exit
with the batch complete (exit 0, N rows stored, none rejected). Each run uses its own
dataset name, so the same file is not recognised as a duplicate. Also shown: the time
to the CLI's "Submitted" line, to its first progress line and to its first line with
rows stored; per loader (partition) the rows it stored, when its task was done and the
CPU seconds its process used; CPU seconds of PostgreSQL and of the CLI.

Floor, same run, same PostgreSQL server: the same CSV parsed with Python's csv module
into tuples ``(batch_id, dataset, line_no, partition, values as JSON text)`` (the
partition is the product's: CRC-32 of the key modulo ``ingest_workers``; JSON by
msgspec, the product's encoder), then one asyncpg ``copy_records_to_table`` into a
fresh ``bench_raw_records (LIKE raw_records INCLUDING ALL)`` (primary key, defaults,
NOT NULL; LIKE copies neither triggers nor the foreign key, and any trigger found is
dropped). Floor rows/s = N / (parse + copy time). The table is dropped afterwards.

The table shows rows/s (the goal: conveyor >= 0.5 x floor) and, for information, the
CPU seconds each side used (conveyor: loaders + PostgreSQL + the CLI; floor: this
process + PostgreSQL), which vary less than wall times on a shared machine.

Before each side a CHECKPOINT is issued so that neither inherits the other's dirty
pages; with several runs the order alternates. With ``--profile DIR`` every loader is
sampled with ``py-spy record --nonblocking`` during the ingestion (collapsed stacks in
DIR, top functions printed; only samples holding the GIL, i.e. Python at work); sampling
perturbs that run's figure a little. ``pg_stat_activity`` is sampled too (every 50 ms) for
what the server's backends are busy with.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import csv
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 0.5
CATEGORIES = ("red", "green", "blue", "cyan", "magenta", "yellow", "black", "white")
LOADER_PREFIX = "root.batch.loader-"
FLOOR_TABLE = "bench_raw_records"


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# --- the data ------------------------------------------------------------------------------

def write_csv(path: Path, n_rows: int, seed: int) -> None:
    """N rows of id, x1..x4 (floats), color (categorical), label (0/1); the same bytes
    for the same (n_rows, seed)."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        f.write("id,x1,x2,x3,x4,color,label\n")
        lines = []
        for i in range(1, n_rows + 1):
            x1, x2 = rng.gauss(0.0, 1.0), rng.uniform(0.0, 100.0)
            x3, x4 = rng.expovariate(0.5), rng.randint(0, 10_000)
            color = CATEGORIES[rng.randrange(len(CATEGORIES))]
            label = 1 if x1 + x2 / 50.0 + rng.gauss(0.0, 0.5) > 1.0 else 0
            lines.append(f"{i},{x1:.6f},{x2:.4f},{x3:.5f},{x4},{color},{label}\n")
            if len(lines) >= 50_000:
                f.write("".join(lines))
                lines = []
        f.write("".join(lines))


# --- CPU accounting --------------------------------------------------------------------------

def _cpu_of(proc) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def postgres_cpu_s(postmaster_pid: int) -> float:
    """CPU seconds of the PostgreSQL server so far: every live process of its tree plus
    what its reaped children (ended backends) used."""
    import psutil

    try:
        master = psutil.Process(postmaster_pid)
        t = master.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in master.children(recursive=True):
            try:
                total += _cpu_of(child)
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return float("nan")


def pids_cpu_s(pids: dict[str, int]) -> dict[str, float]:
    import psutil

    out = {}
    for name, pid in pids.items():
        try:
            out[name] = _cpu_of(psutil.Process(pid))
        except psutil.Error:
            out[name] = float("nan")
    return out


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- the cluster ---------------------------------------------------------------------------

class Cluster:
    """A cluster of our own, driven through the CLI exactly like benchmarks/startup.py."""

    def __init__(self) -> None:
        from benchmarks.startup import _clean_env

        self.state = Path(tempfile.mkdtemp(prefix="cv-bench-"))
        self.name = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = _clean_env(CONVEYOR_STATE_DIR=str(self.state), CONVEYOR_CLUSTER_NAME=self.name)
        self.record_file = self.state / "cluster.json"
        self.work_dir = ""
        self.services: dict = {}

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> float:
        began = time.monotonic()
        done = self.cli("cluster", "start")
        elapsed = time.monotonic() - began
        if self.record_file.exists():
            self._read_record()
        if done.returncode != 0:
            raise RuntimeError(f"cluster start exited {done.returncode}:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}")
        return elapsed

    @contextlib.contextmanager
    def joined(self, errors: list[str], **settings_env: str):
        """Start the cluster and join its Ray as a driver; yield its settings. Ray is always
        left and the cluster always stopped (what went wrong stopping it goes to ``errors``)."""
        try:
            self.start()
            settings = join_ray(self.state, self.name, **settings_env)
            from actors.remote import disconnect

            try:
                yield settings
            finally:
                disconnect()
        finally:
            errors.extend(self.stop())

    def _read_record(self) -> None:
        self.services = json.loads(self.record_file.read_text())["services"]
        self.work_dir = (self.services.get("ray") or {}).get("work_dir", "")

    @property
    def dsn(self) -> str:
        return self.services["postgres"]["address"]

    @property
    def postmaster_pid(self) -> int:
        return self.services["postgres"]["pids"][0]

    def status(self) -> dict:
        """``cluster status --json`` as a dict (raises when it cannot be read)."""
        done = self.cli("cluster", "status", "--json", timeout=60)
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise RuntimeError(f"cluster status exited {done.returncode}: {done.stdout[-500:]} {done.stderr[-1500:]}")

    def stop(self) -> list[str]:
        """Stop the cluster (if one was recorded), then look for leftovers; returns problems."""
        from benchmarks.startup import _leftovers, _processes_marked, _remove_dirs

        problems: list[str] = []
        if self.record_file.exists():
            if not self.work_dir:
                try:
                    self._read_record()
                except Exception:
                    pass
            try:
                stopped = self.cli("cluster", "stop", timeout=150)
                if stopped.returncode != 0:
                    problems.append(f"cluster stop exited {stopped.returncode}: {stopped.stdout.strip()[-500:]}"
                                    f" {stopped.stderr.strip()[-500:]}")
            except subprocess.TimeoutExpired:
                problems.append("cluster stop timed out")
        marks = [str(self.state), self.work_dir]
        left = _processes_marked(marks)
        if left:
            problems.append(f"{len(left)} process(es) still mentioned the cluster's dirs after stop: "
                            f"{[p.pid for p in left]} (now terminated)")
            _leftovers(marks, f"cluster {self.name}")
        _remove_dirs(self.state, self.work_dir)
        return problems


def join_ray(state: Path | str, name: str, **settings_env: str):
    """Join the Ray of the running cluster recorded in ``state`` as a driver; its settings.
    The caller leaves with ``actors.remote.disconnect()``."""
    from storage import embedded
    from storage.settings import load_settings

    settings = load_settings(None, {"CONVEYOR_STATE_DIR": str(state), "CONVEYOR_CLUSTER_NAME": name, **settings_env})
    record = embedded.read_record(settings)
    embedded.prepare_ray_environment(record.ray_token_path)   # before Ray is imported
    from actors.remote import connect

    connect(embedded.resolve(settings, record).ray_address, name)
    return settings


def on_fresh_cluster(work, errors: list[str], **env: str):
    """``asyncio.run(work(cluster, settings))`` on a fresh cluster of our own (``env`` added to
    its environment and to the settings this process uses); None when anything failed (the
    error, with its traceback, in ``errors``). The cluster is always stopped."""
    import traceback

    cluster = Cluster()
    cluster.env.update(env)
    print(f"starting a cluster in {cluster.state} ...", flush=True)
    try:
        with cluster.joined(errors, **env) as settings:
            return asyncio.run(work(cluster, settings))
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        return None


def actors_of(status: dict) -> dict[str, dict]:
    out, stack = {}, [status.get("tree")] if status.get("tree") else []
    while stack:
        node = stack.pop()
        out[node["id"]] = node
        stack.extend(node.get("children") or [])
    return out


# --- the figure: run.py ingest ------------------------------------------------------------------

_PROGRESS = re.compile(r": (\w+), ([\d,]+) rows stored")


class OutputWatch:
    """Reads a child's stdout as it comes and timestamps what matters."""

    def __init__(self, stream, began: float) -> None:
        self.began = began
        self.text = ""
        self.submitted_s: float | None = None
        self.first_progress_s: float | None = None
        self.first_rows_s: float | None = None
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        fd = stream.fileno()
        while chunk := os.read(fd, 65536):
            now = time.monotonic() - self.began
            self.text += chunk.decode("utf-8", "replace")
            if self.submitted_s is None and "Submitted " in self.text:
                self.submitted_s = now
            found = _PROGRESS.findall(self.text[-4096:])
            if found and self.first_progress_s is None:
                self.first_progress_s = now
            if self.first_rows_s is None and any(int(n.replace(",", "")) > 0 for _, n in found):
                self.first_rows_s = now

    def join(self, timeout: float = 10) -> None:
        self._thread.join(timeout)


class Profiler:
    """py-spy record (non-blocking, GIL holders only) of some processes, stopped with SIGINT."""

    def __init__(self, out_dir: Path, pids: dict[str, int]) -> None:
        self.out_dir, self.procs, self.files = out_dir, {}, {}
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            path = out_dir / f"{name}-{pid}.txt"
            self.files[name] = path
            self.procs[name] = subprocess.Popen(
                ["py-spy", "record", "--pid", str(pid), "--nonblocking", "--gil", "--rate", "100",
                 "--format", "raw",
                 "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> dict[str, Path]:
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


class PgSampler:
    """Samples ``pg_stat_activity`` (every ``interval_s``) for what the database's other
    backends are doing: a poor man's profile of the server side."""

    QUERY = ("SELECT state, coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait,"
             " regexp_replace(left(query, 200), '\\s+', ' ', 'g') AS query FROM pg_stat_activity"
             " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'")

    def __init__(self, dsn: str, interval_s: float = 0.05) -> None:
        self.dsn, self.interval_s = dsn, interval_s
        self.counts: collections.Counter = collections.Counter()
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
                    self.counts[(row["query"][:90], row["wait"])] += 1
                self.n_samples += 1
                await asyncio.sleep(self.interval_s)
        finally:
            await conn.close()

    def stop(self) -> tuple[int, list[tuple[tuple[str, str], int]]]:
        self._stop.set()
        self._thread.join(10)
        return self.n_samples, self.counts.most_common(12)


def top_functions(path: Path, n: int = 12) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top self, top inclusive) functions of a py-spy raw (collapsed) file."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    return total, own.most_common(n), incl.most_common(n + 8)


def measure_conveyor(cluster: Cluster, csv_path: Path, n_rows: int, dataset: str, timeout_s: float,
                     profile_dir: Path | None) -> dict:
    import asyncpg  # noqa: F401  (fail early if missing)

    before = actors_of(cluster.status())
    loaders = {a: v for a, v in before.items() if a.startswith(LOADER_PREFIX)}
    bad = [a for a, v in before.items() if v.get("state") != "running"]
    if bad:
        raise RuntimeError(f"cluster not healthy before the ingestion: {bad}")
    loader_pids = {a.rsplit(".", 1)[-1]: v["pid"] for a, v in sorted(loaders.items())}
    asyncio.run(_checkpoint(cluster.dsn))

    profiler = Profiler(profile_dir / dataset, loader_pids) if profile_dir else None
    sampler = PgSampler(cluster.dsn) if profile_dir else None
    cpu_loaders = pids_cpu_s(loader_pids)
    cpu_pg = postgres_cpu_s(cluster.postmaster_pid)
    cpu_children = children_cpu_s()
    began_wall, began = time.time(), time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "ingest", dataset, str(csv_path),
                             "--key", "id", "--label", "label", "--timeout", str(int(timeout_s))],
                            cwd=ROOT, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watch = OutputWatch(proc.stdout, began)
    err_chunks: list[bytes] = []
    err_thread = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    err_thread.start()
    try:
        code = proc.wait(timeout_s + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    elapsed = time.monotonic() - began
    cpu_children = children_cpu_s() - cpu_children
    cpu_pg = postgres_cpu_s(cluster.postmaster_pid) - cpu_pg
    cpu_after = pids_cpu_s(loader_pids)
    watch.join()
    err_thread.join(10)
    profiles = profiler.stop() if profiler else {}
    pg_samples = sampler.stop() if sampler else None

    out: dict = {"wall_s": elapsed, "exit": code, "submitted_s": watch.submitted_s,
                 "first_progress_s": watch.first_progress_s, "first_rows_s": watch.first_rows_s,
                 "cli_cpu_s": cpu_children, "postgres_cpu_s": cpu_pg, "profiles": profiles,
                 "pg_samples": pg_samples,
                 "stdout": watch.text, "stderr": b"".join(err_chunks).decode("utf-8", "replace")}
    db = asyncio.run(_batch_facts(cluster.dsn, dataset))
    out.update(db)
    after = actors_of(cluster.status())
    out["loaders"] = []
    for name, pid in loader_pids.items():
        actor = after.get(LOADER_PREFIX + name[len("loader-"):]) or {}
        partition = int(name.rsplit("-", 1)[-1])
        task = db.get("tasks", {}).get(partition, {})
        out["loaders"].append({
            "name": name, "pid": pid, "pid_after": actor.get("pid"),
            "restarts": (actor.get("n_restarts") or 0) - (loaders[LOADER_PREFIX + str(partition)].get("n_restarts")
                                                          or 0),
            "cpu_s": cpu_after[name] - cpu_loaders[name], "rows": task.get("n_rows"),
            "done_s": None if task.get("done_at") is None else task["done_at"] - began_wall,
        })
    if db.get("created_at") is not None:
        out["batch_created_s"] = db["created_at"] - began_wall
    if db.get("completed_at") is not None:
        out["batch_completed_s"] = db["completed_at"] - began_wall
    problems = []
    if code != 0:
        problems.append(f"run.py ingest exited {code}: {out['stderr'].strip()[-800:]}")
    if db.get("state") != "complete":
        problems.append(f"batch state {db.get('state')!r}, request {db.get('request_state')!r}")
    if db.get("n_rows") != n_rows or db.get("n_rejected"):
        problems.append(f"stored {db.get('n_rows')} rows, {db.get('n_rejected')} rejected; expected {n_rows}, 0")
    out["problems"] = problems
    out["rows_per_s"] = n_rows / elapsed if not problems else None
    return out


async def _checkpoint(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.PostgresError:
        pass  # not allowed for this role: go on without
    finally:
        await conn.close()


async def _batch_facts(dsn: str, dataset: str) -> dict:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        request = await conn.fetchrow("SELECT request_id, state, batch_id, error FROM ingest_requests"
                                      " WHERE dataset = $1 ORDER BY created_at DESC LIMIT 1", dataset)
        if request is None or request["batch_id"] is None:
            return {"request_state": None if request is None else request["state"],
                    "error": None if request is None else request["error"]}
        batch = await conn.fetchrow(
            "SELECT state, n_rows, n_rejected, extract(epoch FROM created_at)::float8 AS created,"
            " extract(epoch FROM completed_at)::float8 AS completed FROM raw_batches WHERE batch_id = $1",
            request["batch_id"])
        tasks = await conn.fetch("SELECT partition, n_rows, extract(epoch FROM done_at)::float8 AS done"
                                 " FROM raw_batch_tasks WHERE batch_id = $1", request["batch_id"])
        return {"request_state": request["state"], "error": request["error"], "batch_id": request["batch_id"],
                "state": batch["state"], "n_rows": batch["n_rows"], "n_rejected": batch["n_rejected"],
                "created_at": batch["created"], "completed_at": batch["completed"],
                "tasks": {t["partition"]: {"n_rows": t["n_rows"], "done_at": t["done"]} for t in tasks}}
    finally:
        await conn.close()


# --- the floor: csv module + one COPY ------------------------------------------------------------

async def measure_floor(dsn: str, postmaster_pid: int, csv_path: Path, n_rows: int, dataset: str,
                        n_partitions: int) -> dict:
    import asyncpg
    import msgspec

    encode = msgspec.json.Encoder().encode
    conn = await asyncpg.connect(dsn)
    try:
        try:
            await conn.execute("CHECKPOINT")
        except asyncpg.PostgresError:
            pass
        await conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        await conn.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE raw_records INCLUDING ALL)")
        triggers = await conn.fetch("SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal",
                                    FLOOR_TABLE)
        for t in triggers:  # LIKE copies none; should a future version do, the floor has none
            await conn.execute(f'DROP TRIGGER "{t["tgname"]}" ON {FLOOR_TABLE}')
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        batch_id = uuid.uuid4().hex
        cpu_pg = postgres_cpu_s(postmaster_pid)
        cpu_me = time.process_time()

        began = time.monotonic()
        with open(csv_path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            key = header.index("id")
            records = [(batch_id, dataset, line_no, zlib.crc32(row[key].encode()) % n_partitions,
                        encode(dict(zip(header, row))).decode())
                       for line_no, row in enumerate(reader, start=2)]
        parsed = time.monotonic()
        cpu_parse = time.process_time() - cpu_me
        await conn.copy_records_to_table(FLOOR_TABLE, records=records,
                                         columns=("batch_id", "dataset", "line_no", "partition", "values"))
        done = time.monotonic()
        cpu_pg = postgres_cpu_s(postmaster_pid) - cpu_pg
        cpu_copy = time.process_time() - cpu_me - cpu_parse
        del records
        stored = await conn.fetchval(f"SELECT count(*) FROM {FLOOR_TABLE}")
        out = {"parse_s": parsed - began, "copy_s": done - parsed, "wall_s": done - began,
               "parse_cpu_s": cpu_parse, "copy_client_cpu_s": cpu_copy, "postgres_cpu_s": cpu_pg,
               "stored": stored, "backend_pid": backend, "triggers_dropped": [t["tgname"] for t in triggers]}
        out["problems"] = [] if stored == n_rows else [f"floor stored {stored} rows, expected {n_rows}"]
        out["rows_per_s"] = n_rows / out["wall_s"] if not out["problems"] else None
        return out
    finally:
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        finally:
            await conn.close()


# --- the report ----------------------------------------------------------------------------

def _fmt(value, digits: int = 0, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def show_conveyor(c: dict, n_rows: int) -> None:
    print(f"  conveyor: {_fmt(c.get('rows_per_s'))} rows/s; run.py ingest {_fmt(c['wall_s'], 2)} s"
          f" (exit {c['exit']}); stored {_fmt(c.get('n_rows'))} rows, {_fmt(c.get('n_rejected'))} rejected",
          flush=True)
    print(f"    CLI: 'Submitted' at {_fmt(c['submitted_s'], 2)} s, first progress line at "
          f"{_fmt(c['first_progress_s'], 2)} s, first line with rows stored at {_fmt(c['first_rows_s'], 2)} s;"
          f" batch opened at {_fmt(c.get('batch_created_s'), 2)} s, complete at "
          f"{_fmt(c.get('batch_completed_s'), 2)} s", flush=True)
    for loader in c["loaders"]:
        restarted = (f", RESTARTED {loader['restarts']}x (pid {loader['pid']} -> {loader['pid_after']})"
                     if loader["restarts"] else "")
        print(f"    {loader['name']} (pid {loader['pid']}): {_fmt(loader['rows'])} rows, task done at "
              f"{_fmt(loader['done_s'], 2)} s, {_fmt(loader['cpu_s'], 1)} CPU s{restarted}", flush=True)
    print(f"    CPU s during the ingestion: loaders {_fmt(sum(l['cpu_s'] for l in c['loaders']), 1)}, "
          f"PostgreSQL {_fmt(c['postgres_cpu_s'], 1)}, the CLI {_fmt(c['cli_cpu_s'], 1)} "
          f"(wall {_fmt(c['wall_s'], 1)} s on {os.cpu_count()} cores)", flush=True)
    for p in c["problems"]:
        print(f"    PROBLEM: {p}", flush=True)


def show_floor(f: dict) -> None:
    print(f"  floor: {_fmt(f.get('rows_per_s'))} rows/s; parse {_fmt(f['parse_s'], 2)} s "
          f"({_fmt(f['parse_cpu_s'], 1)} CPU s) + COPY {_fmt(f['copy_s'], 2)} s ({_fmt(f['copy_client_cpu_s'], 1)} "
          f"CPU s here) = {_fmt(f['wall_s'], 2)} s; "
          f"PostgreSQL {_fmt(f['postgres_cpu_s'], 1)} CPU s; {_fmt(f['stored'])} rows stored", flush=True)
    for p in f["problems"]:
        print(f"    PROBLEM: {p}", flush=True)


def show_profiles(c: dict) -> None:
    if c.get("pg_samples"):
        n, top = c["pg_samples"]
        print(f"    pg_stat_activity, {n} samples: share of samples in which a backend was active on")
        for (query, wait), k in top:
            print(f"      {100 * k / max(n, 1):5.1f}%  [{wait}] {query}")
    for name, path in sorted(c.get("profiles", {}).items()):
        total, own, incl = top_functions(path)
        if not total:
            continue
        print(f"    py-spy {name} ({total} samples, {path}):")
        print("      self:")
        for frame, k in own:
            print(f"        {100 * k / total:5.1f}%  {frame}")
        print("      inclusive:")
        for frame, k in incl:
            print(f"        {100 * k / total:5.1f}%  {frame}")


def _conveyor_cpu(c: dict) -> float | None:
    if not c.get("loaders"):
        return None
    return sum(loader["cpu_s"] for loader in c["loaders"]) + c["postgres_cpu_s"] + c["cli_cpu_s"]


def _floor_cpu(f: dict) -> float | None:
    if "parse_cpu_s" not in f:
        return None
    return f["parse_cpu_s"] + f["copy_client_cpu_s"] + f["postgres_cpu_s"]


def report(runs: list[tuple[dict, dict]], n_rows: int, errors: list[str]) -> bool:
    mine = _median([c.get("rows_per_s") for c, _ in runs])
    floor = _median([f.get("rows_per_s") for _, f in runs])
    ratio = mine / floor if mine is not None and floor else None
    met = None if ratio is None else ratio >= GOAL_RATIO
    print()
    if len(runs) > 1:
        print("per run (conveyor / floor, rows/s): " + "   ".join(
            f"{_fmt(c.get('rows_per_s'))} / {_fmt(f.get('rows_per_s'))}" for c, f in runs))
    print(f"{'figure':<34} {'conveyor':>10}   {'floor':>10}   {'ratio':>6}   {'goal':<18} met")
    print(f"{'ingestion, ' + format(n_rows, ',') + ' rows (rows/s)':<34} {_fmt(mine):>10}   {_fmt(floor):>10}   "
          f"{'n/a' if ratio is None else f'{ratio:.2f}':>6}   {'>= 0.5 x floor':<18} "
          f"{'n/a' if met is None else 'yes' if met else 'NO'}")
    cpu_mine = _median([_conveyor_cpu(c) for c, _ in runs])
    cpu_floor = _median([_floor_cpu(f) for _, f in runs])
    cpu_ratio = f"{cpu_mine / cpu_floor:.2f}" if cpu_mine is not None and cpu_floor else "n/a"
    print(f"{'CPU s used (see below)':<34} {_fmt(cpu_mine, 1):>10}   {_fmt(cpu_floor, 1):>10}   {cpu_ratio:>6}   "
          f"{'(information)':<18} -")
    print(f"(medians over {len(runs)} run(s); floor = csv module parse + one asyncpg COPY into a fresh "
          f"{FLOOR_TABLE} (LIKE raw_records) on the same PostgreSQL, same run; CPU s = loaders + PostgreSQL + "
          f"the CLI, floor: this process + PostgreSQL; on a shared machine CPU s vary less than rows/s)")
    from benchmarks.report import print_errors

    print_errors(errors)
    return bool(met)


# --- main ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/ingest.py",
        description="Offline ingestion rows/s of `python run.py ingest` on a fresh cluster of its own, beside "
                    "a floor measured in the same run on the same PostgreSQL (csv module + one asyncpg COPY). "
                    "Goal: at least 0.5 x the floor.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated CSV (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=1, help="ingestions (and floors) on the one cluster (default 1)")
    parser.add_argument("--seed", type=int, default=20240611, help="seed of the generated data")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds one ingestion may take (default max(600, rows / 500))")
    parser.add_argument("--profile", metavar="DIR", help="sample each loader with py-spy during the ingestion "
                                                         "and print its top functions (perturbs the figure)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.profile and not shutil.which("py-spy"):
        parser.error("--profile needs py-spy on PATH")
    timeout_s = args.timeout or max(600.0, args.rows / 500)
    _project_on_path()
    for key in [k for k in os.environ if k.startswith(("CONVEYOR_", "RAY_"))]:
        del os.environ[key]

    began = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="cv-bench-data-"))
    csv_path = data_dir / "bench.csv"
    errors: list[str] = []
    runs: list[tuple[dict, dict]] = []
    cluster: Cluster | None = None
    try:
        t = time.monotonic()
        write_csv(csv_path, args.rows, args.seed)
        print(f"data: {args.rows:,} rows, {csv_path.stat().st_size / 2**20:.1f} MiB in {csv_path} "
              f"({time.monotonic() - t:.1f} s)", flush=True)
        cluster = Cluster()
        print(f"starting cluster {cluster.name} in {cluster.state} ...", flush=True)
        print(f"  healthy in {cluster.start():.1f} s", flush=True)
        from storage.settings import load_settings

        n_partitions = load_settings(None, {"CONVEYOR_STATE_DIR": str(cluster.state),
                                            "CONVEYOR_CLUSTER_NAME": cluster.name}).ingest_workers
        for i in range(args.runs):
            dataset = f"bench-{i + 1}"
            print(f"run {i + 1}/{args.runs} (dataset {dataset}; load average "
                  f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}) ...", flush=True)
            order = ("floor", "conveyor") if i % 2 == 0 else ("conveyor", "floor")
            got: dict[str, dict] = {"floor": {}, "conveyor": {}}
            for side in order:
                try:
                    if side == "floor":
                        got[side] = asyncio.run(measure_floor(cluster.dsn, cluster.postmaster_pid, csv_path,
                                                              args.rows, dataset, n_partitions))
                        show_floor(got[side])
                    else:
                        got[side] = measure_conveyor(cluster, csv_path, args.rows, dataset, timeout_s,
                                                     Path(args.profile) if args.profile else None)
                        show_conveyor(got[side], args.rows)
                        show_profiles(got[side])
                    errors.extend(f"run {i + 1} {side}: {p}" for p in got[side].get("problems", []))
                except Exception as exc:
                    errors.append(f"run {i + 1} {side}: {type(exc).__name__}: {exc}")
                    print(f"  {side}: failed ({type(exc).__name__}: {exc})", flush=True)
            runs.append((got["conveyor"], got["floor"]))
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
    if runs:
        report(runs, args.rows, errors)
    if not runs and errors:
        print("\n".join(errors))
    print(f"\ntotal {time.monotonic() - began:.0f} s")
    return 0 if runs and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
