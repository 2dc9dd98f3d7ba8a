"""The one seam that imports Ray: connecting, hosting workers and supervisors as
actors, and every Ray call the supervisors make (one wrapper tests can replace)."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
from typing import Any

# Ray reads this when it is imported: with it, a cluster on loopback is advertised and
# joined on loopback (without it Ray picks the machine's routable address, DESIGN §9).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

from actors.worker import AnswersStarted, WorkerState
from storage.settings import Settings

#: Raised by `RayRuntime.call` when the actor's process is gone ...
ActorGone = RayActorError
#: ... or only unreachable for now (being restarted by Ray): a subclass of ActorGone.
ActorUnavailable = ActorUnavailableError


def load_class(path: str) -> type:
    """The class named by ``"module:Class"``."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def connect(address: str, namespace: str) -> None:
    """Join the cluster at ``address`` as a driver (idempotent within a process).

    Ray reads its authentication settings when it is imported: a process that joins an
    embedded cluster calls :func:`storage.embedded.prepare_ray_environment` before it
    imports this module.
    """
    if ray.is_initialized():
        return
    raylet_messages_to_stderr()
    host = address.rsplit(":", 1)[0]
    local = host in ("127.0.0.1", "localhost")
    ray.init(address=address, namespace=namespace, logging_level="ERROR", log_to_driver=False,
             **({"_node_ip_address": "127.0.0.1"} if local else {}))


#: What the raylet tells every driver when a node has started many worker processes: a
#: tree of many light actors (``num_cpus=0``) starts them by design, so it says nothing to
#: a Conveyor user but was printed in the middle of ``cluster start``'s progress.
_EXPECTED_RAYLET_NOTICES = ("PYTHON worker processes have been started",)


def raylet_messages_to_stderr() -> None:
    """Send what the raylet pushes to every driver to stderr, leaving out the notices a
    Conveyor tree causes by design: Ray's listener prints it on stdout, in the middle of a
    command's output (``cluster status --json`` stopped being JSON)."""
    import ray._private.worker as ray_worker

    printer = ray_worker.print_to_stdstream
    if getattr(printer, "to_stderr", False):
        return

    def to_stderr(data, ignore_prefix):
        lines = [line for line in data.get("lines", [])
                 if not any(notice in line for notice in _EXPECTED_RAYLET_NOTICES)]
        if lines:
            printer({**data, "lines": lines, "is_err": True}, ignore_prefix)

    to_stderr.to_stderr = True
    ray_worker.print_to_stdstream = to_stderr


def disconnect() -> None:
    if ray.is_initialized():
        ray.shutdown()


#: Ray records every actor call as a task event in its GCS unless told not to: with heartbeats
#: every 0.5 s and every online request a call, the GCS grew 85 -> 337 MiB in a 10-minute
#: soak. Conveyor's actors report their own state (status, logs, metrics), so they opt out.
NO_TASK_EVENTS = {"enable_task_events": False}


@ray.remote(num_cpus=0, max_restarts=0, **NO_TASK_EVENTS)
class WorkerHost(AnswersStarted):
    """Hosts one Ray-free worker: starts its run loop, answers heartbeats.

    Started without a worker (``factory`` None) it is a spare: it imports ``warm_modules``
    (and runs their ``warm_up()``, where a module has one) in a thread, then waits for
    :meth:`adopt` to hand it the worker of a child being restarted, whose restart then
    pays neither a new process nor those imports."""

    def __init__(self, factory: str | None, settings: Settings, name: str, args: dict[str, Any],
                 warm_modules: tuple[str, ...] = ()) -> None:
        from actors.logs import configure_logging

        configure_logging(settings.log_level)
        self.worker = self.task = None
        if factory is None:
            self.warming = asyncio.get_running_loop().run_in_executor(None, warm_up, warm_modules)
        else:
            self._host(factory, settings, name, args)

    def _host(self, factory: str, settings: Settings, name: str, args: dict[str, Any]) -> None:
        self.worker = load_class(factory)(settings, name, **args)
        self.task = asyncio.get_running_loop().create_task(self.worker.run())
        self.reporting = tell_supervisor_if_failed([self.task], settings.cluster_name, name,
                                                   lambda: self.worker.state is WorkerState.FAILED)

    async def adopt(self, factory: str, settings: Settings, name: str, args: dict[str, Any]) -> bool:
        """Host the worker ``factory(settings, name, **args)`` from now on; False when this
        spare already hosts one (another supervisor took it first)."""
        if self.worker is not None:
            return False
        self._host(factory, settings, name, args)
        return True

    async def ready(self) -> bool:
        """Once a spare's imports are done (at once for a host with a worker)."""
        if self.worker is None:
            await asyncio.shield(self.warming)
        return True

    async def ping(self) -> dict[str, Any]:
        if self.worker is None:     # a spare: "starting" while it imports, then "ready"
            return {"state": "ready" if self.warming.done() else "starting", "pid": os.getpid(),
                    "node_id": ray.get_runtime_context().get_node_id()}
        beat = self.worker.heartbeat()
        beat["node_id"] = ray.get_runtime_context().get_node_id()
        return beat

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def request(self, method: str, *args: Any, correlation_id: str = "", causation_id: str = "") -> Any:
        """A request/response call to the worker: only the methods it lists in ``requests``.
        What it logs, and the messages it causes, carry the caller's ``correlation_id``."""
        from actors.logs import bound_chain
        from messages.base import valid_chain

        if self.worker is None:
            raise AttributeError(f"a spare process answers no request {method!r}: it hosts no worker yet")
        if method not in getattr(type(self.worker), "requests", ()):
            raise AttributeError(f"{type(self.worker).__name__} answers no request {method!r}")
        with bound_chain(*valid_chain(correlation_id, causation_id)):
            result = getattr(self.worker, method)(*args)
            if asyncio.iscoroutine(result):
                result = await result
        return result


@ray.remote(num_cpus=0, max_restarts=0, **NO_TASK_EVENTS)
class SharedHost(AnswersStarted):
    """Hosts several light Ray-free workers in one process (a `HostSpec`): their run loops
    share its event loop, and its heartbeat answers for all of them."""

    def __init__(self, settings: Settings, name: str, workers: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        from actors.logs import configure_logging

        configure_logging(settings.log_level)
        loop = asyncio.get_running_loop()
        self.workers = {worker_id: load_class(factory)(settings, worker_name, **args)
                        for worker_id, worker_name, factory, args in workers}
        self.tasks = [loop.create_task(worker.run()) for worker in self.workers.values()]
        self.reporting = tell_supervisor_if_failed(
            self.tasks, settings.cluster_name, name,
            lambda: any(worker.state is WorkerState.FAILED for worker in self.workers.values()))

    async def ping(self) -> dict[str, Any]:
        from actors.worker import shared_heartbeat

        return {**shared_heartbeat(self.workers), "node_id": ray.get_runtime_context().get_node_id()}

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def warm_up(modules: tuple[str, ...]) -> None:
    """Import ``modules`` and run the ``warm_up()`` of those that define one: what a spare
    does before it hosts a worker of one of them (a failure only leaves it less warm)."""
    for name in modules:
        try:
            module = importlib.import_module(name)
            if callable(getattr(module, "warm_up", None)):
                module.warm_up()
        except Exception:
            pass


def tell_supervisor_if_failed(tasks: list[asyncio.Task], namespace: str, child_name: str, failed) -> set:
    """When one of a host's worker loops (``tasks``) ends and ``failed()`` says so, tell the
    supervisor of ``child_name`` (the name before its last dot) at once: between its pings it
    looks only at the host's process, which a failed loop leaves running. Returns the set
    holding the report while it is sent (keep it: a task only weakly referenced can vanish)."""
    supervisor, _, _ = child_name.rpartition(".")
    sending: set = set()

    async def report() -> None:
        try:
            handle = await asyncio.to_thread(ray.get_actor, supervisor, namespace=namespace)
            await asyncio.wait_for(handle.child_failed.remote(child_name), 10.0)
        except Exception:       # no supervisor answering: its next ping sees the failure
            pass

    def on_done(_task: asyncio.Task) -> None:
        if supervisor and failed() and not sending:
            sending.add(asyncio.get_running_loop().create_task(report()))

    for task in tasks:
        task.add_done_callback(on_done)
    return sending


#: Names of spare worker processes, and the keys (in Ray's internal key-value store, per
#: cluster namespace) of the names they took over.
SPARE_PREFIX = "spare."
REPLICA_SPARE_PREFIX = "spare-replica."
ALIAS_PREFIX = "conveyor.alias:"


class RayRuntime:
    """Every Ray operation a supervisor performs."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def lookup(self, name: str):
        """The live actor called ``name``: the one Ray knows by that name, else the spare
        that took it over (Ray names cannot move to another actor: see :meth:`set_alias`)."""
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            pass
        alias = self._alias_of(name)
        if alias is None:
            return None
        try:
            return ray.get_actor(alias, namespace=self.namespace)
        except ValueError:
            return None

    # --- spares: started ahead of a failure; the child's name then points at one -----------

    def _alias_key(self, name: str) -> bytes:
        return f"{ALIAS_PREFIX}{name}".encode()

    def _alias_of(self, name: str) -> str | None:
        from ray.experimental import internal_kv

        found = internal_kv._internal_kv_get(self._alias_key(name), namespace=self.namespace)
        return found.decode() if found else None

    def set_alias(self, name: str, actor_name: str) -> None:
        """Calls for ``name`` go to the actor named ``actor_name`` (a spare that took it over)."""
        from ray.experimental import internal_kv

        internal_kv._internal_kv_put(self._alias_key(name), actor_name.encode(), overwrite=True,
                                     namespace=self.namespace)

    def clear_alias(self, name: str) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_del(self._alias_key(name), namespace=self.namespace)

    def aliases(self, prefix: str = "") -> dict[str, str]:
        """name -> the spare's actor name, of every alias whose name starts with ``prefix``."""
        from ray.experimental import internal_kv

        keys = internal_kv._internal_kv_list(f"{ALIAS_PREFIX}{prefix}".encode(), namespace=self.namespace)
        found = {}
        for key in keys:
            value = internal_kv._internal_kv_get(key, namespace=self.namespace)
            if value:
                found[key.decode()[len(ALIAS_PREFIX):]] = value.decode()
        return found

    def spare_names(self, prefix: str = SPARE_PREFIX) -> list[str]:
        """Actor names of the spares alive, taken or not (``REPLICA_SPARE_PREFIX``: the
        deployment manager's spare replica processes)."""
        return [entry["name"] for entry in ray.util.list_named_actors(all_namespaces=True)
                if entry["namespace"] == self.namespace and entry["name"].startswith(prefix)]

    def free_spares(self, prefix: str = SPARE_PREFIX) -> list[tuple[str, Any]]:
        """(actor name, handle) of every spare no child's name points at."""
        taken = set(self.aliases().values())
        found = []
        for name in self.spare_names(prefix):
            handle = None if name in taken else self.lookup(name)
            if handle is not None:
                found.append((name, handle))
        return found

    async def spawn_spare(self, settings: Settings, warm_modules: tuple[str, ...]):
        """A `WorkerHost` without a worker, named ``spare.<random>``; (its name, its handle)."""
        name = f"{SPARE_PREFIX}{os.urandom(4).hex()}"
        handle = await self._spawn(lambda: WorkerHost.options(
            name=name, namespace=self.namespace, lifetime="detached", num_cpus=0, max_restarts=0,
            max_concurrency=16).remote(None, settings, "", {}, warm_modules))
        return name, handle

    async def spawn_worker(self, name: str, factory: str, settings: Settings, args: dict, num_cpus: float):
        return await self._spawn(lambda: WorkerHost.options(
            name=name, namespace=self.namespace, lifetime="detached", num_cpus=num_cpus, max_restarts=0,
            max_concurrency=16).remote(factory, settings, name, args))

    async def spawn_host(self, name: str, settings: Settings, workers: list[tuple[str, str, str, dict]],
                         num_cpus: float):
        """A `SharedHost` running ``workers``: (id, name, "module:Class", args) each."""
        return await self._spawn(lambda: SharedHost.options(
            name=name, namespace=self.namespace, lifetime="detached", num_cpus=num_cpus, max_restarts=0,
            max_concurrency=16).remote(settings, name, workers))

    async def spawn_supervisor(self, actor_class, name: str, *args):
        return await self._spawn(lambda: actor_class.options(
            name=name, namespace=self.namespace, lifetime="detached", num_cpus=0, max_restarts=-1,
            max_task_retries=0, max_concurrency=64).remote(*args))

    async def _spawn(self, create):
        """Create a named actor, waiting briefly while a dead predecessor still holds the name."""
        for _ in range(100):
            try:
                return create()
            except ValueError:  # name still taken by an actor being torn down
                await asyncio.sleep(0.05)
        return create()

    async def call(self, handle, method: str, timeout_s: float, *args) -> Any:
        """``handle.method(*args)``; ``asyncio.TimeoutError`` if late, `ActorGone` if dead."""
        ref = getattr(handle, method).remote(*args)
        try:
            return await asyncio.wait_for(ref, timeout=timeout_s)
        except GetTimeoutError:
            raise asyncio.TimeoutError from None

    def kill(self, handle, pid: int | None = None, node_id: str | None = None) -> None:
        """Kill an actor for good; SIGKILL its process too when it is on this node
        (a frozen process does not act on Ray's kill)."""
        try:
            ray.kill(handle, no_restart=True)
        except Exception:
            pass
        if pid and node_id and node_id == self.node_id():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def process_gone(self, pid: int | None, node_id: str | None) -> bool:
        """Whether an actor's process on this node has exited (gone, or a zombie not yet
        reaped): seen at once here, where Ray reports a killed actor only ~1.3 s later."""
        from storage.processes import alive

        if not pid or not node_id or node_id != self.node_id():
            return False
        return not alive(pid)

    def watch_exit(self, pid: int | None, node_id: str | None, on_exit) -> Any:
        """Call ``on_exit()`` (once, in the running event loop) when the process ``pid`` on this
        node exits; returns what :meth:`unwatch` takes, or None when it cannot be watched (on
        another node, already gone, no pidfd): the checks still find it then."""
        from storage.processes import exit_watch

        if not pid or not node_id or node_id != self.node_id():
            return None
        fd = exit_watch(pid)
        if fd is None:
            return None
        loop = asyncio.get_running_loop()

        def exited() -> None:
            loop.remove_reader(fd)       # the descriptor stays readable: one call, not a busy loop
            on_exit()

        loop.add_reader(fd, exited)
        return fd

    def unwatch(self, watch: Any) -> None:
        if watch is not None:
            asyncio.get_running_loop().remove_reader(watch)
            os.close(watch)

    def process_stopped(self, pid: int | None, node_id: str | None) -> bool:
        """Whether an actor's process on this node is stopped by a signal (frozen)."""
        from storage.processes import stopped

        return bool(pid and node_id and node_id == self.node_id() and stopped(pid))

    def named_below(self, prefix: str) -> list[tuple[str, Any]]:
        """(name, handle) of every live named actor of this namespace under ``prefix.``,
        the spares that took over such a name included."""
        found = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] == self.namespace and entry["name"].startswith(prefix + "."):
                handle = self.lookup(entry["name"])
                if handle is not None:
                    found.append((entry["name"], handle))
        named = {name for name, _ in found}
        for name, spare in self.aliases(prefix + ".").items():
            if name not in named:
                try:
                    found.append((name, ray.get_actor(spare, namespace=self.namespace)))
                except ValueError:
                    pass
        return found

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def actor_class(self, cls: type):
        return ray.remote(**NO_TASK_EVENTS)(cls)


def gauge(name: str, description: str, tag_keys: tuple[str, ...]):
    """A Ray metric gauge (exported in Prometheus format by the node's metrics agent, named
    ``ray_<name>``); ``.set(value, tags={...})``."""
    from ray.util.metrics import Gauge

    return Gauge(name, description=description, tag_keys=tag_keys)


# --- training: units of work hosted as actors, and tasks spread over the cluster -----------

@ray.remote(num_cpus=0, max_restarts=0, **NO_TASK_EVENTS)
class TaskHost:
    """Hosts one Ray-free object of a training run (a candidate, a data partition, a block
    of coefficients); ``call`` runs one of its methods (awaited when it is a coroutine)."""

    def __init__(self, factory: str, *args: Any) -> None:
        self.target = load_class(factory)(*args)

    def adopt(self, factory: str, *args: Any) -> None:
        """Host a new object instead (a warm actor taking its unit of work)."""
        self.target = load_class(factory)(*args)

    async def call(self, method: str, *args: Any) -> Any:
        result = getattr(self.target, method)(*args)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> str:
        """What this actor works on (its target's ``describe()``, else the target's class)."""
        describe = getattr(self.target, "describe", None)
        return describe() if callable(describe) else type(self.target).__name__


@ray.remote(num_cpus=0, max_restarts=0, concurrency_groups={"health": 1, "control": 1}, **NO_TASK_EVENTS)
class ReplicaHost:
    """Hosts one Ray-free serving replica (``actors.serving.ModelReplica``).

    A plain (threaded) Ray actor, not an asyncio one: a call into an asyncio actor crosses
    to its event loop's thread, which cost ~0.3-0.5 ms per request here (p50), a third of
    what a replica added to a bare Ray call. So requests run one at a time on the actor's
    own thread; the health checks (``stats``, ``pid``, ``describe``) have a concurrency
    group of their own, so a slow or stuck prediction never delays them; what needs I/O
    (loading the version, reading an entity's features from the online store) runs on an
    event loop the actor keeps in a background thread.
    """

    def __init__(self, factory: str | None, *args: Any) -> None:
        import threading

        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="replica-io", daemon=True).start()
        self.target = None
        if factory is None:      # a spare: ``args`` name the modules to import ahead of `adopt`
            self._warming = threading.Thread(target=warm_up, args=(tuple(args),), name="warm-up", daemon=True)
            self._warming.start()
        else:
            self.target = load_class(factory)(*args)

    @ray.method(concurrency_group="control")
    def adopt(self, factory: str, *args: Any) -> bool:
        """Host the replica ``factory(*args)`` from now on (a spare taking over a replica that
        died); False when this spare already hosts one."""
        if self.target is not None:
            return False
        self.target = load_class(factory)(*args)
        return True

    def _run(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def score(self, request: dict) -> dict:
        """One request's answer (``actors.serving.ScoringError`` for a bad request)."""
        if self.target is None:
            raise RuntimeError("a spare replica process serves no version yet")
        return self.target.score_now(request, self._run)

    @ray.method(concurrency_group="control")
    def load(self) -> dict:
        return self._run(self.target.load())

    @ray.method(concurrency_group="health")
    def stats(self) -> dict:
        """The replica's counts and whether its version is loaded, with its process (pid, node)."""
        here = {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}
        if self.target is None:
            return {**here, "loaded": False, "spare": "starting" if self._warming.is_alive() else "ready"}
        return {**self.target.stats(), **here}

    @ray.method(concurrency_group="health")
    def pid(self) -> int:
        return os.getpid()

    @ray.method(concurrency_group="health")
    def describe(self) -> str:
        return "a spare replica process" if self.target is None else self.target.describe()


@ray.remote(num_cpus=1, max_retries=0)
def _run_function(path: str, *args: Any) -> Any:
    return load_class(path)(*args)


class Compute:
    """Every Ray operation a training run makes: shared data, hosted objects, parallel tasks."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def put(self, value: Any):
        return ray.put(value)

    async def host(self, name: str, factory: str, *args: Any, detached: bool = False):
        """A named actor hosting ``factory(*args)`` (object refs among ``args`` arrive resolved);
        ``detached`` ones outlive the process that started them (found again by name)."""
        return await self.start(name, "actors.remote:TaskHost", factory, *args, detached=detached)

    async def start(self, name: str, actor_class: str, *args: Any, detached: bool = False):
        """A named actor of the Ray actor class ``actor_class`` ("module:Class"), started with
        ``args``; an actor still holding the name is killed first."""
        old = RayRuntime(self.namespace).lookup(name)
        if old is not None:
            self.kill(old)
        lifetime = {"lifetime": "detached"} if detached else {}
        cls = load_class(actor_class)
        return await RayRuntime(self.namespace)._spawn(lambda: cls.options(
            name=name, namespace=self.namespace, **lifetime).remote(*args))

    async def adopt(self, handle, factory: str, *args: Any) -> None:
        await handle.adopt.remote(factory, *args)

    async def call(self, handle, method: str, *args: Any) -> Any:
        """``handle.call(method, *args)``; raises `ActorGone` if the actor died, or what the method raised."""
        return await handle.call.remote(method, *args)

    async def cluster_cpus(self) -> int:
        """The CPUs of the Ray cluster, as its nodes declared them (at least 1)."""
        resources = await asyncio.to_thread(ray.cluster_resources)
        return max(1, int(resources.get("CPU", 1)))

    async def map(self, path: str, calls: list[tuple], num_cpus: float = 1.0) -> list[Any]:
        """``path(*args)`` for every ``args`` in ``calls``, as Ray tasks spread over the cluster's CPUs."""
        refs = [_run_function.options(num_cpus=num_cpus).remote(path, *args) for args in calls]
        return list(await asyncio.gather(*refs))

    def kill(self, handle) -> None:
        try:
            ray.kill(handle, no_restart=True)
        except Exception:
            pass
