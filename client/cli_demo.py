"""``python run.py demo [--quick] [--use-running] [--keep-running]``: the whole pipeline end
to end on bundled real data (client/demo.py). It starts its own embedded cluster (with the
demo's slow algorithm among the plugins) and stops it afterwards, also on Ctrl-C; or it
runs on the cluster already running in the state dir. Exit 0 when every check passed, 1
naming the failed ones, 130 when interrupted. Registered by run.py."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PLUGIN = "ml.demo_algorithms"


def register(commands, load, start_cluster, stop_cluster) -> None:
    """Add ``demo`` to ``commands`` (run.py's subparsers); ``load(args)`` gives the settings,
    ``start_cluster(settings)`` / ``stop_cluster(settings)`` are the composition root's."""
    demo = commands.add_parser(
        "demo", help="the whole pipeline end to end on bundled real data",
        description="Start an embedded cluster, then ingest two sources and join them, train and evaluate "
                    "candidates (ROC/PR images), deploy the best, score online and in a batch job, learn online "
                    "from a stream, deploy a deliberately slow version (the fallback answers, the monitor rolls "
                    "it back), and show the monitoring summary and the lineage; each stage checks its results. "
                    "The cluster is stopped at the end (also on Ctrl-C). Exit 0 when every check passed.")
    demo.add_argument("--quick", action="store_true", help="fewer candidates and requests (about a minute less)")
    demo.add_argument("--use-running", action="store_true",
                      help=f"run on the cluster already running in the state dir (it needs {PLUGIN} in its plugins "
                           "for the slow version); leave it running")
    demo.add_argument("--keep-running", action="store_true",
                      help="leave the cluster the demo started running, to look around afterwards")
    demo.set_defaults(run=lambda args: run_demo(args, load, start_cluster, stop_cluster))


def say(text: str) -> None:
    print(text, flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def with_plugin(settings):
    """``settings`` whose plugins include the demo's algorithms."""
    import msgspec

    plugins = [p for p in settings.plugins.split(",") if p]
    return settings if PLUGIN in plugins else msgspec.structs.replace(settings, plugins=",".join([*plugins, PLUGIN]))


def cluster_running(settings) -> bool:
    from storage import embedded

    record = embedded.read_record(settings)
    return record is not None and any(embedded.service_alive(s) for s in record.services.values() if s.embedded)


def run_demo(args, load, start_cluster, stop_cluster) -> int:
    from client.demo import run, summary

    settings, started = load(args), False
    if args.use_running and not cluster_running(settings) and not settings.ray_address:
        print(f"demo: --use-running: no cluster is running in {settings.state_path} (python run.py cluster start)",
              file=sys.stderr)
        return EXIT_FAILED
    if not args.use_running and cluster_running(settings):
        print(f"demo: a cluster is already running in {settings.state_path}: run the demo on it with --use-running,"
              " or stop it (python run.py cluster stop)", file=sys.stderr)
        return EXIT_FAILED
    if args.use_running and PLUGIN not in settings.plugins.split(","):
        say(f"Note: the slow-version stage needs the running cluster started with {PLUGIN} in its plugins.")
    signal.signal(signal.SIGTERM, _interrupt)
    code, began = EXIT_FAILED, time.monotonic()
    try:
        if not args.use_running:
            settings = with_plugin(settings)
            start_cluster(settings)
            started = True
        ok, text = summary(asyncio.run(run(settings, quick=args.quick, say=say)))
        say(text)
        code = EXIT_OK if ok else EXIT_FAILED
    except KeyboardInterrupt:
        say("\nInterrupted.")
        code = EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 (said, then the cluster is stopped)
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if started and not args.keep_running:
            signal.signal(signal.SIGINT, signal.SIG_IGN)     # a second Ctrl-C must not leave processes behind
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            say("Stopping the demo's cluster ...")
            stopped = stop_cluster(settings)
            code = code if stopped == EXIT_OK else EXIT_FAILED
        elif started:
            say(f"The cluster keeps running (state in {settings.state_path}); stop it with python run.py cluster stop")
    say(f"Total {time.monotonic() - began:.0f} s.")
    return code
