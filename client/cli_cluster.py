"""``python run.py cluster start|status|stop``: the embedded services and the supervision
tree started (or repaired in place), shown, and stopped, nothing left behind."""

from __future__ import annotations

import asyncio
import sys
import time

import msgspec

from client.cli_run import EXIT_FAILED, EXIT_OK, say


# --- cluster start ---------------------------------------------------------------------

async def prepare_storage(settings, embedded_broker: bool) -> None:
    """Apply migrations and create the topics (idempotent); an embedded broker starts a new
    generation of topic logs, which the partition workers' stored offsets must know."""
    import asyncpg

    from storage.kafka import ensure_topics, topic_partitions
    from storage.migrations import apply_migrations
    from storage.postgres import new_broker_generation

    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        applied = await apply_migrations(conn)
        if embedded_broker:
            await new_broker_generation(conn, settings.kafka_bootstrap)
    finally:
        await conn.close()
    say(f"  schema: {'applied ' + ', '.join(map(str, applied)) if applied else 'up to date'}")
    await ensure_topics(settings.kafka_bootstrap, topic_partitions(settings))
    say(f"  topics: ready ({settings.topic_partitions} partitions for events)")


def cluster_start(settings) -> int:
    from storage import embedded

    record = embedded.read_record(settings)
    from supervisors.tree import TreeStartTimeout

    if record is not None and any(embedded.service_alive(s) for s in record.services.values() if s.embedded):
        dead = embedded.dead_services(record)
        if not dead:
            say(f"A cluster is already running in {settings.state_path}; `python run.py cluster status` shows it.")
            return EXIT_FAILED
        try:
            repair_cluster(settings, record, dead)
        except Exception as exc:   # a service that died meanwhile, or the tree that does not come back
            say(f"Repair failed: {type(exc).__name__}: {str(exc)[:500]}; `python run.py cluster start` again "
                "repairs what is dead by then, or `cluster stop` then `cluster start` starts it afresh.")
            return EXIT_FAILED
        return EXIT_OK
    try:
        start_cluster(settings)
    except TreeStartTimeout:   # said, and what was started is stopped
        return EXIT_FAILED
    say("  status: python run.py cluster status   stop: python run.py cluster stop")
    return EXIT_OK


def start_cluster(settings) -> None:
    """Start the services and the supervision tree of ``settings``; returns once healthy. A
    failed start stops what it started and raises."""
    from storage import embedded

    began = time.monotonic()
    say(f"Starting cluster {settings.cluster_name!r}, state in {settings.state_path}")
    record = embedded.start_services(settings, progress=lambda line: say(f"  {line}"))
    try:
        resolved = embedded.resolve(settings, record)
        asyncio.run(prepare_storage(resolved, embedded_broker=record.services["kafka"].embedded))
        embedded.prepare_ray_environment(record.ray_token_path)
        from actors.remote import connect
        from supervisors.tree import cluster_tree, start_tree

        connect(resolved.ray_address, resolved.cluster_name)
        asyncio.run(start_tree(cluster_tree(resolved), resolved, resolved.start_timeout_s,
                               progress=lambda line: say(f"  tree: {line}")))
    except BaseException as exc:
        say(f"Start failed: {exc}; stopping what was started.")
        _stop(settings, record)
        raise
    finally:
        _disconnect()
    say(f"Cluster {settings.cluster_name!r} healthy in {time.monotonic() - began:.1f} s.")
    say(f"  state: {settings.state_path}")


def repair_cluster(settings, record, dead: list[str]) -> None:
    """Start again, in place, the embedded services of a running cluster that died (the
    tree's actors still point at them), then wait until the tree is healthy again: the
    actors that failed while a service was down are restarted by their supervisors."""
    from storage import embedded

    began = time.monotonic()
    say(f"Cluster {settings.cluster_name!r} is running without its embedded {', '.join(dead)}; starting "
        f"{'them' if len(dead) > 1 else 'it'} again in place")
    record = embedded.restart_in_place(settings, record, dead, progress=lambda line: say(f"  {line}"))
    resolved = embedded.resolve(settings, record)
    try:
        if "kafka" in dead:         # an empty broker: the topics again
            asyncio.run(prepare_storage(resolved, embedded_broker=True))
        embedded.prepare_ray_environment(record.ray_token_path)
        from actors.remote import connect
        from supervisors.tree import cluster_tree, start_tree

        connect(resolved.ray_address, resolved.cluster_name)
        if "kafka" in dead:   # every partition worker claims the new broker's empty logs from their start
            from supervisors.tree import ROOT, forget_restarts, stop_tree

            say("  tree: stopping it, to start it again on the new broker")
            asyncio.run(stop_tree(ROOT, resolved))
            asyncio.run(forget_restarts(cluster_tree(resolved), resolved))
        asyncio.run(start_tree(cluster_tree(resolved), resolved, resolved.start_timeout_s,
                               progress=lambda line: say(f"  tree: {line}")))
    finally:
        _disconnect()
    say(f"Cluster {settings.cluster_name!r} healthy again in {time.monotonic() - began:.1f} s.")


# --- cluster stop ----------------------------------------------------------------------

def _disconnect() -> None:
    if "actors.remote" in sys.modules:
        sys.modules["actors.remote"].disconnect()


def _stop(settings, record) -> list[int]:
    from storage import embedded

    ray_service = record.services.get("ray")
    resolved = embedded.resolve(settings, record)
    if ray_service is not None and embedded.ray_reachable(resolved.ray_address):
        try:
            embedded.prepare_ray_environment(record.ray_token_path)
            from actors.remote import connect
            from supervisors.tree import ROOT, stop_tree

            connect(resolved.ray_address, resolved.cluster_name)
            asyncio.run(stop_tree(ROOT, resolved))
        except Exception as exc:
            say(f"  supervision tree not stopped cleanly ({exc}); its processes stop with Ray")
        finally:
            _disconnect()
    survivors = embedded.stop_services(record)
    embedded.remove_record(settings)
    return survivors


def stop_cluster(settings) -> int:
    """Stop the cluster recorded in ``settings``' state dir: exit 0 when no process is left."""
    from storage import embedded

    record = embedded.read_record(settings)
    if record is None:
        say(f"No cluster is recorded in {settings.state_path}; nothing to stop.")
        return EXIT_OK
    began = time.monotonic()
    _disconnect()
    survivors = _stop(settings, record)
    if survivors:
        say(f"Stopped, but these processes would not die: {survivors}")
        return EXIT_FAILED
    say(f"Cluster {settings.cluster_name!r} stopped in {time.monotonic() - began:.1f} s; no process left.")
    return EXIT_OK


# --- cluster status --------------------------------------------------------------------

def cluster_status(settings, as_json: bool) -> int:
    from client.connection import Conveyor
    from client.errors import ClusterNotRunning
    from client.status import ClusterStatus

    try:
        client = Conveyor.connect(settings)
        status = asyncio.run(client.status())
    except ClusterNotRunning:
        status = ClusterStatus(cluster_name=settings.cluster_name, state_dir=str(settings.state_path),
                               state="stopped", healthy=False)
    if as_json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(status)).decode() + "\n")
    else:
        from client.console import render_text

        say(render_text(status))
    return EXIT_OK if status.healthy else EXIT_FAILED


def register(commands, load) -> None:
    """The ``cluster`` command; ``load(args)`` gives the settings."""
    cluster = commands.add_parser("cluster", help="start, inspect and stop a cluster",
                                  description="Start, inspect and stop a cluster.")
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("start", help="start services and the supervision tree; returns once healthy",
                       description="Start the embedded services (those not configured as external) and "
                                   "the supervision tree; returns once every actor is running. On a running "
                                   "cluster whose embedded PostgreSQL, Redis or broker died, starts those "
                                   "again in place (same data and address; the broker comes back empty) and "
                                   "waits until the tree is healthy again."
                       ).set_defaults(run=lambda args: cluster_start(load(args)))
    status = actions.add_parser("status", help="every actor's state, restarts and last checkpoint",
                                description="Show every actor with its state, restart count, last "
                                            "checkpoint offset and age. Exit 0 only when healthy.")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=lambda args: cluster_status(load(args), args.json))
    actions.add_parser("stop", help="stop actors, Ray and the embedded services",
                       description="Stop the supervision tree, Ray and the embedded services; "
                                   "no process is left behind.").set_defaults(run=lambda args: stop_cluster(load(args)))
