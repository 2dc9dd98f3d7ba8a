#!/usr/bin/env python
"""Start-up figures of a Conveyor cluster, each beside a floor measured in the same run.

    python benchmarks/startup.py [--runs N]        # default 3 runs; ~2 minutes per run

Every run starts a fresh embedded cluster (its own state dir under /tmp, a unique
cluster name) and a bare Ray head, measures both, and stops both again. Printed,
each as the median over the runs, with the floor, the ratio and the goal:

1. ``cluster start`` to healthy (s): wall time of ``python run.py cluster start``.
   Floor: a bare Ray head started with the same ``ray start --head`` flags
   (``storage.embedded.start_ray``).
2. Idle memory (MiB), after ~5 s idle: the sum of USS (RSS where USS is unreadable)
   of every process of the cluster: the pids recorded in ``<state>/cluster.json`` with
   all their descendants, plus every process whose command line mentions the state dir
   or Ray's work dir. Floor: the same sum for the bare Ray head.
3. Idle CPU (% of one core) over ``IDLE_CPU_S`` seconds once the machine has settled
   (``benchmarks.quiet``, at most 60 s): the CPU time every
   process of the cluster used (as for memory) divided by the wall time. Floor: the bare
   Ray head holding as many idle async actors (``num_cpus=0``, detached) as the tree has
   actor processes (supervisors, workers, hosts): what Ray itself costs per process.
   The cluster also holds the training coordinator's warm candidate actors (not in the
   floor). For information (no goal): what a cluster leaves to the work on 2 cores.
4. Restart of a killed checkpointed worker (ms): ``root.ingest.events-0`` is SIGKILLed
   while a small ``StreamEvent`` is published to partition 0 of ``events`` every ~5 ms;
   the figure is kill -> first ``raw_events`` row (partition 0) of an event published
   after the kill seen in PostgreSQL. Floor: a light Ray actor with ``max_restarts=1``
   SIGKILLed in the bare head (beside the idle actors of 3), kill -> its first
   successful call.

One process can join one Ray cluster only (Ray reads the token at import), so each
restart measurement (and the floor's idle actors) runs in its own subprocess of this
script (internal modes ``--_measure-restart``, ``--_floor-restart`` and ``--_floor-idle``,
each printing one JSON line).
Nothing started here outlives the run: each cluster is stopped with
``python run.py cluster stop`` (the bare head by its recorded processes), and a warning
is printed if any process still mentions a state dir afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = "root.ingest.events-0"
IDLE_S = 5.0
IDLE_CPU_S = 20.0
GOALS = {"start_s": ("<= 15 s", 15.0), "memory_mib": ("<= 3 GiB", 3072.0), "restart_ms": ("<= 2,000 ms", 2000.0),
         "idle_cpu_pct": ("(information)", None)}


# --- helpers shared by the modes ----------------------------------------------------------

def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "RAY_"))}
    env.update(extra)
    return env


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _own_tree() -> set[int]:
    import psutil

    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.children(recursive=True))}


def _processes_marked(marks: list[str]) -> list:
    import psutil

    mine = _own_tree()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.info["pid"] in mine:
            continue
        cmd = " ".join(proc.info.get("cmdline") or [])
        if any(m and m in cmd for m in marks):
            found.append(proc)
    return found


def cluster_processes(services: dict[str, dict], marks: list[str]) -> dict:
    """{pid: psutil.Process} of a cluster: the recorded pids, their descendants and every
    process mentioning one of ``marks`` (not this process or its children)."""
    import psutil

    mine = _own_tree()
    procs: dict[int, psutil.Process] = {}
    roots = []
    for service in services.values():
        for pid in service.get("pids", []):
            try:
                roots.append(psutil.Process(pid))
            except psutil.Error:
                continue
    for proc in [*roots, *_processes_marked(marks)]:
        procs[proc.pid] = proc
        try:
            procs.update((p.pid, p) for p in proc.children(recursive=True))
        except psutil.Error:
            pass
    return {pid: proc for pid, proc in procs.items() if pid not in mine}


def process_mib(proc) -> float:
    """A process's own memory (USS; RSS where USS is not readable) in MiB (raises psutil.Error when gone)."""
    import psutil

    try:
        return proc.memory_full_info().uss / 2**20
    except (psutil.AccessDenied, AttributeError):
        return proc.memory_info().rss / 2**20


def cluster_memory_mib(services: dict[str, dict], marks: list[str]) -> tuple[float, int]:
    """Sum of USS (RSS as fallback) over the cluster's processes; returns (MiB, number of processes)."""
    import psutil

    total, counted = 0.0, 0
    for proc in cluster_processes(services, marks).values():
        try:
            total += process_mib(proc)
            counted += 1
        except psutil.Error:
            continue
    return total, counted


def cluster_cpu_pct(services: dict[str, dict], marks: list[str], seconds: float) -> float:
    """CPU the cluster's processes used over ``seconds``, in % of one core, once the
    machine has settled (at most 60 s); processes that come or go meanwhile count for
    the part they were seen."""
    import psutil

    from benchmarks.quiet import wait_quiet

    def times() -> dict[int, float]:
        out = {}
        for pid, proc in cluster_processes(services, marks).items():
            try:
                t = proc.cpu_times()
                out[pid] = t.user + t.system
            except psutil.Error:
                continue
        return out

    wait_quiet(max_s=60.0)     # what starting left running (imports of warm actors) is not idle cost
    before, began = times(), time.monotonic()
    time.sleep(seconds)
    after, wall = times(), time.monotonic() - began
    used = sum(cpu - before.get(pid, cpu) for pid, cpu in after.items())
    return used / wall * 100


def actor_processes(services: dict[str, dict], marks: list[str]) -> int:
    """How many of the cluster's processes are Ray actors (``ray::Class`` titles)."""
    import psutil

    n = 0
    for proc in cluster_processes(services, marks).values():
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        n += bool(cmdline) and cmdline[0].startswith("ray::")
    return n


def tree_processes() -> int:
    """How many actor processes the default cluster tree has (supervisors, workers, hosts)."""
    from storage.settings import load_settings
    from supervisors.spec import SupervisorSpec
    from supervisors.tree import cluster_tree

    def count(node) -> int:
        return 1 + (sum(count(c) for c in node.children) if isinstance(node, SupervisorSpec) else 0)

    return count(cluster_tree(load_settings(None, {})))


def _json_line(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in the output:\n{stdout[-2000:]}")


def _run_mode(mode: str, *args: str, timeout: float = 120) -> dict:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), mode, *args], cwd=ROOT,
                          env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} exited {done.returncode}:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}")
    return _json_line(done.stdout)


def _leftovers(marks: list[str], what: str) -> None:
    """Warn about (then stop) processes that still mention one of our own, unique dirs."""
    import psutil

    left = _processes_marked(marks)
    if not left:
        return
    for proc in left:
        try:
            cmd = " ".join(proc.cmdline())[:160]
        except psutil.Error:
            cmd = "?"
        print(f"  WARNING: after stopping {what}, process {proc.pid} still mentions its dirs: {cmd}", flush=True)
    from storage.processes import terminate, with_descendants

    terminate(with_descendants(p.pid for p in left), grace_s=3)


def _remove_dirs(*dirs: str | Path) -> None:
    for d in dirs:
        if d and Path(d).is_dir() and str(d).startswith(tempfile.gettempdir()):
            shutil.rmtree(d, ignore_errors=True)


# --- the floor: a bare Ray head -------------------------------------------------------------

def measure_floor(errors: list[str]) -> dict:
    from storage import embedded

    state = Path(tempfile.mkdtemp(prefix="cv-bench-floor-"))
    record = None
    out: dict = {}
    try:
        token = embedded.make_token(state / "ray_token")
        began = time.monotonic()
        record = embedded.start_ray(state, token)
        out["start_s"] = time.monotonic() - began
        time.sleep(IDLE_S)
        services = {"ray": {"pids": record.pids}}
        out["memory_mib"], out["memory_procs"] = cluster_memory_mib(services, [str(state), record.work_dir])
        try:
            out["idle_actors"] = _run_mode("--_floor-idle", str(token), record.address, str(tree_processes()))["n"]
            out["idle_cpu_pct"] = cluster_cpu_pct(services, [str(state), record.work_dir], IDLE_CPU_S)
        except Exception as exc:
            errors.append(f"floor idle CPU: {exc}")
        try:
            got = _run_mode("--_floor-restart", str(token), record.address)
            out["restart_ms"] = got["restart_ms"]
        except Exception as exc:
            errors.append(f"floor restart: {exc}")
    finally:
        if record is not None:
            survivors = embedded.stop_ray(record)
            if survivors:
                print(f"  WARNING: bare Ray processes would not die: {survivors}", flush=True)
        marks = [str(state)] + ([record.work_dir] if record else [])
        _leftovers(marks, "the bare Ray head")
        _remove_dirs(state, record.work_dir if record else "")
    return out


def floor_idle(token_path: str, address: str, n: str) -> None:
    """(subprocess) ``n`` idle async actors, detached (they outlive this process and die
    with the head), each answering one call before this returns."""
    _project_on_path()
    from storage import embedded

    embedded.prepare_ray_environment(token_path)
    import ray

    ray.init(address=address, namespace="bench-floor-idle", logging_level="ERROR", log_to_driver=False,
             _node_ip_address="127.0.0.1")

    @ray.remote(num_cpus=0)
    class Idle:
        async def pid(self) -> int:
            return os.getpid()

    actors = [Idle.options(name=f"idle-{i}", lifetime="detached").remote() for i in range(int(n))]
    pids = ray.get([a.pid.remote() for a in actors], timeout=300)
    ray.shutdown()
    print(json.dumps({"n": len(set(pids))}), flush=True)


def floor_restart(token_path: str, address: str) -> None:
    """(subprocess) A light actor with max_restarts=1: SIGKILL -> first successful call."""
    _project_on_path()
    import signal

    from storage import embedded

    embedded.prepare_ray_environment(token_path)
    import ray
    from ray.exceptions import RayActorError

    ray.init(address=address, namespace=f"bench-floor-{uuid.uuid4().hex[:6]}", logging_level="ERROR",
             log_to_driver=False, _node_ip_address="127.0.0.1")

    @ray.remote(num_cpus=0, max_restarts=1, max_task_retries=0)
    class Light:
        def pid(self) -> int:
            return os.getpid()

    actor = Light.remote()
    pid = ray.get(actor.pid.remote(), timeout=60)
    for _ in range(20):
        ray.get(actor.pid.remote(), timeout=10)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    # A call sent to the dead process may only fail ~1 s later (DESIGN §9), so keep a new
    # call in flight every ~5 ms and take the first one that succeeds.
    deadline = killed + 60
    pending: list = []
    new_pid = None
    while new_pid is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the light actor did not come back within 60 s")
        pending.append(actor.pid.remote())
        ready, pending = ray.wait(pending, num_returns=1, timeout=0.005)
        for ref in ready:
            try:
                got = ray.get(ref)
            except RayActorError:
                continue
            if got != pid:
                new_pid = got
                break
    elapsed_ms = (time.monotonic() - killed) * 1000
    ray.kill(actor)
    ray.shutdown()
    print(json.dumps({"restart_ms": elapsed_ms, "old_pid": pid, "new_pid": new_pid}), flush=True)


# --- Conveyor: the CLI cluster ---------------------------------------------------------------

def measure_cluster(errors: list[str]) -> dict:
    state = Path(tempfile.mkdtemp(prefix="cv-bench-"))
    name = f"bench-{uuid.uuid4().hex[:8]}"
    env = _clean_env(CONVEYOR_STATE_DIR=str(state), CONVEYOR_CLUSTER_NAME=name)
    record_file = state / "cluster.json"
    work_dir = ""
    out: dict = {}

    def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)

    try:
        began = time.monotonic()
        done = cli("cluster", "start")
        elapsed = time.monotonic() - began
        if done.returncode != 0:
            raise RuntimeError(f"cluster start exited {done.returncode}:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}")
        out["start_s"] = elapsed
        services = json.loads(record_file.read_text())["services"]
        work_dir = (services.get("ray") or {}).get("work_dir", "")
        time.sleep(IDLE_S)
        out["memory_mib"], out["memory_procs"] = cluster_memory_mib(services, [str(state), work_dir])
        out["idle_cpu_pct"] = cluster_cpu_pct(services, [str(state), work_dir], IDLE_CPU_S)
        out["actor_procs"] = actor_processes(services, [str(state), work_dir])
        try:
            got = _run_mode("--_measure-restart", str(state), name, timeout=150)
            out.update(restart_ms=got["restart_ms"], restart_db_ms=got.get("db_ms"),
                       restart_detail=got)
        except Exception as exc:
            errors.append(f"conveyor restart: {exc}")
    finally:
        if record_file.exists():
            if not work_dir:
                try:
                    work_dir = (json.loads(record_file.read_text())["services"].get("ray") or {}).get("work_dir", "")
                except Exception:
                    pass
            try:
                stopped = cli("cluster", "stop", timeout=150)
                if stopped.returncode != 0:
                    print(f"  WARNING: cluster stop exited {stopped.returncode}: {stopped.stdout.strip()[-500:]}"
                          f" {stopped.stderr.strip()[-500:]}", flush=True)
            except subprocess.TimeoutExpired:
                print("  WARNING: cluster stop timed out", flush=True)
        _leftovers([str(state), work_dir], f"cluster {name}")
        _remove_dirs(state, work_dir)
    return out


def measure_restart(state_dir: str, cluster_name: str) -> None:
    """(subprocess) SIGKILL the partition-0 worker while publishing; kill -> first stored
    event that was published after the kill."""
    _project_on_path()
    import asyncio

    from storage import embedded
    from storage.settings import load_settings

    base = load_settings(None, {"CONVEYOR_STATE_DIR": state_dir, "CONVEYOR_CLUSTER_NAME": cluster_name})
    record = embedded.read_record(base)
    embedded.prepare_ray_environment(record.ray_token_path)
    resolved = embedded.resolve(base, record)
    from actors.remote import connect, disconnect

    connect(resolved.ray_address, resolved.cluster_name)
    try:
        result = asyncio.run(_restart_probe(resolved))
    finally:
        disconnect()
    print(json.dumps(result), flush=True)


async def _restart_probe(settings) -> dict:
    import asyncio
    import signal

    import asyncpg

    from client.connection import Conveyor
    from messages.codec import encode
    from messages.stream import StreamEvent

    conveyor = Conveyor.connect(settings)
    db = await asyncpg.connect(settings.postgres_dsn)
    stream = f"bench-restart-{uuid.uuid4().hex[:6]}"
    before: list[str] = []
    after: list[str] = []
    killed = {"flag": False}
    stop = asyncio.Event()

    async def publish() -> None:
        # one event every ~5 ms, not waiting for the broker's ack of the previous one
        sends: set = set()
        i = 0
        while not stop.is_set():
            event = StreamEvent(stream=stream, entity_key="k", values={"i": i})
            (after if killed["flag"] else before).append(event.msg_id)
            send = asyncio.create_task(conveyor.submit_raw("events", encode(event), b"k", partition=0))
            sends.add(send)
            send.add_done_callback(sends.discard)
            i += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*sends)

    async def seen(ids: list[str]):
        return await db.fetchval("SELECT min(received_at) FROM raw_events WHERE partition = 0 AND msg_id = ANY($1)",
                                 list(ids))

    try:
        worker = (await conveyor.status()).actor(WORKER)
        if worker.state != "running" or not worker.pid:
            raise RuntimeError(f"{WORKER} is not running: {worker}")
        await conveyor._ensure_publisher()
        publishing = asyncio.create_task(publish())
        # warm up: the line must be flowing before the kill
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (before and await seen(before)):
            await asyncio.sleep(0.02)
        if not await seen(before):
            raise RuntimeError("no event reached raw_events within 30 s before the kill")
        await asyncio.sleep(0.3)
        os.kill(worker.pid, signal.SIGKILL)
        killed["flag"] = True
        kill_wall, kill_mono = time.time(), time.monotonic()
        first = None
        deadline = kill_mono + 60
        while time.monotonic() < deadline:
            if after:
                first = await seen(after)
                if first is not None:
                    break
            await asyncio.sleep(0.005)
        seen_ms = (time.monotonic() - kill_mono) * 1000
        stop.set()
        await publishing
        if first is None:
            raise RuntimeError("no event published after the kill was stored within 60 s")
        now = (await conveyor.status()).actor(WORKER)
        return {"restart_ms": seen_ms, "db_ms": (first.timestamp() - kill_wall) * 1000,
                "old_pid": worker.pid, "new_pid": now.pid, "n_restarts": now.n_restarts,
                "sent_before": len(before), "sent_after": len(after)}
    finally:
        stop.set()
        await db.close()
        await conveyor.close()


# --- the report ----------------------------------------------------------------------------

def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def report(runs: list[tuple[dict, dict]], errors: list[str]) -> None:
    rows = [("cluster start to healthy (s)", "start_s", 1),
            ("idle memory (MiB)", "memory_mib", 0),
            ("idle CPU (% of one core)", "idle_cpu_pct", 1),
            ("worker restart (ms)", "restart_ms", 0)]
    print()
    print("per run (conveyor / floor):")
    for label, key, digits in rows:
        pairs = "   ".join(f"{_fmt(c.get(key), digits)} / {_fmt(f.get(key), digits)}" for c, f in runs)
        print(f"  {label:<30} {pairs}")
    for i, (c, f) in enumerate(runs, 1):
        detail = c.get("restart_detail")
        if detail:
            print(f"  run {i}: restart stored at +{_fmt(detail.get('db_ms'), 0)} ms by the database clock; "
                  f"pid {detail['old_pid']} -> {detail['new_pid']}, {detail['sent_after']} events sent after "
                  f"the kill; processes counted: {c.get('memory_procs')} conveyor, {f.get('memory_procs')} floor")
    print()
    print(f"{'figure':<30} {'conveyor':>10}   {'floor (bare)':>12}   {'ratio':>6}   goal")
    for label, key, digits in rows:
        mine = _median([c.get(key) for c, _ in runs])
        floor = _median([f.get(key) for _, f in runs])
        ratio = f"{mine / floor:.1f}x" if mine is not None and floor else "n/a"
        goal, limit = GOALS[key]
        verdict = "" if mine is None or limit is None else ("  ok" if mine <= limit else "  MISSED")
        print(f"{label:<30} {_fmt(mine, digits):>10}   {_fmt(floor, digits):>12}   {ratio:>6}   {goal}{verdict}")
    print(f"(medians over {len(runs)} run(s); floor = bare Ray head with the same flags, measured in the same run;"
          f" for idle CPU it holds {_fmt(_median([f.get('idle_actors') for _, f in runs]), 0)} idle actors, one per"
          f" actor process of the tree, over {IDLE_CPU_S:.0f} s; the cluster had"
          f" {_fmt(_median([c.get('actor_procs') for c, _ in runs]), 0)} actor processes: the tree's and the"
          f" training coordinator's warm candidate actors)")
    if errors:
        print("\nerrors:")
        for e in errors:
            print(f"  {e.strip().splitlines()[0] if e.strip() else e}")
            for line in e.strip().splitlines()[1:][-8:]:
                print(f"      {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/startup.py",
        description="Cluster start time, idle memory, idle CPU and worker restart time of Conveyor, each beside a "
                    "bare-Ray floor measured in the same run (medians over --runs).")
    parser.add_argument("--runs", type=int, default=3, help="number of runs (default 3; ~2 minutes each)")
    parser.add_argument("--_measure-restart", nargs=2, metavar=("STATE_DIR", "CLUSTER_NAME"),
                        dest="measure_restart", help=argparse.SUPPRESS)
    parser.add_argument("--_floor-restart", nargs=2, metavar=("TOKEN_PATH", "ADDRESS"),
                        dest="floor_restart", help=argparse.SUPPRESS)
    parser.add_argument("--_floor-idle", nargs=3, metavar=("TOKEN_PATH", "ADDRESS", "N"),
                        dest="floor_idle", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _project_on_path()
    if args.measure_restart:
        measure_restart(*args.measure_restart)
        return 0
    if args.floor_restart:
        floor_restart(*args.floor_restart)
        return 0
    if args.floor_idle:
        floor_idle(*args.floor_idle)
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    # The floor's `ray start` inherits this process's environment: give it the same clean
    # one the CLI gets (no CONVEYOR_*/RAY_* from the caller).
    for key in [k for k in os.environ if k.startswith(("CONVEYOR_", "RAY_"))]:
        del os.environ[key]

    runs: list[tuple[dict, dict]] = []
    errors: list[str] = []
    began = time.monotonic()
    try:
        for i in range(args.runs):
            print(f"run {i + 1}/{args.runs} ...", flush=True)
            # alternate the order so that neither side always runs on a warmer machine
            order = ("floor", "conveyor") if i % 2 == 0 else ("conveyor", "floor")
            got: dict[str, dict] = {}
            for side in order:
                try:
                    got[side] = measure_floor(errors) if side == "floor" else measure_cluster(errors)
                except Exception as exc:
                    errors.append(f"run {i + 1} {side}: {exc}")
                    got[side] = {}
                shown = ", ".join(f"{k}={v:.1f}" for k, v in got[side].items() if isinstance(v, float))
                print(f"  {side}: {shown or 'failed'}", flush=True)
            runs.append((got["conveyor"], got["floor"]))
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", flush=True)
    if runs:
        report(runs, errors)
    print(f"\ntotal {time.monotonic() - began:.0f} s")
    return 0 if runs and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
