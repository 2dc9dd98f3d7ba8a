"""The command line of online learning: ``learners create|list|show|remove`` and
``stream DATASET`` (replay a dataset as events). Registered by run.py."""

from __future__ import annotations

import json
import sys

from client.cli_run import EXIT_OK, EXIT_USAGE


def register(commands, load) -> None:
    """Add the commands to ``commands`` (run.py's subparsers); ``load(args)`` gives the settings."""
    learners = commands.add_parser("learners", help="online learners: create, list, show, remove",
                                   description="River learners that learn from the stream as events arrive.")
    actions = learners.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="register a learner from its TOML config",
                                description="Register a learner (name, stream, model, optional challenger, label"
                                            " field); the learner partitions start learning within a second.")
    create.add_argument("--config", dest="learner_config", required=True, metavar="LEARNER.toml")
    create.set_defaults(run=lambda args: _create(args, load))
    listing = actions.add_parser("list", help="every learner with its progressive scores")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=lambda args: _list(args, load))
    show = actions.add_parser("show", help="one learner's live report from every partition")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=lambda args: _show(args, load))
    remove = actions.add_parser("remove", help="stop a learner")
    remove.add_argument("name")
    remove.set_defaults(run=lambda args: _remove(args, load))

    from client.streaming import bundled_names

    stream = commands.add_parser(
        "stream", help="replay a dataset as events on the stream",
        description="Publish every row of DATASET as a stream event (keyed by entity), in order, with its label in"
                    " the event or sent later as an observation. DATASET: " + ", ".join(bundled_names())
                    + ", or a CSV/JSONL file with a `label` column.")
    stream.add_argument("dataset")
    stream.add_argument("--stream", help="the stream name (default: the dataset's name)")
    stream.add_argument("--rate", type=float, default=0.0, help="events per second (default: as fast as possible)")
    stream.add_argument("--limit", type=int, help="at most this many events (synthetic datasets: default 10,000)")
    stream.add_argument("--labels", choices=("inline", "later", "none"), default="inline",
                        help="inline: in the event; later: as an observation --label-delay events later")
    stream.add_argument("--label-field", default="label", help="the event field of an inline label (default label)")
    stream.add_argument("--label-delay", type=int, default=100)
    stream.add_argument("--key", help="the field whose value is the entity key (default: one entity per row)")
    stream.add_argument("--entity-key", help="one entity key for every event (all on one partition, in order)")
    stream.add_argument("--seed", type=int, default=42, help="seed of a synthetic dataset")
    stream.set_defaults(run=lambda args: _stream(args, load))


def _run(main, name: str) -> int:
    from client.cli_run import Exit, run_command

    try:
        return run_command(main, name)
    except Exit as exc:
        return exc.code


def _connect(args, load):
    from client.connection import Conveyor

    return Conveyor.connect(load(args))


def _create(args, load) -> int:
    async def main() -> int:
        async with _connect(args, load) as conveyor:
            made = await conveyor.create_learner(args.learner_config if args.learner_config.endswith(".toml")
                                                 else _read(args.learner_config))
            print(f"learner {made['name']} revision {made['revision']} learns stream {made['stream']}"
                  f" ({made['task']})")
            return EXIT_OK
    return _run(main, "learners create")


def _read(path: str) -> str:
    from client.learning import LearnerRefused

    try:
        return open(path, encoding="utf-8").read(64 * 1024 + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise LearnerRefused("config", f"cannot read {path}: {exc}") from None


def _summary(report: dict) -> str:
    scores = ", ".join(f"{k} {v:.4f}" for k, v in report.get("scores", {}).items())
    text = (f"{report.get('champion')}: {scores or 'no score yet'}; learned {report.get('n_learned', 0)},"
            f" pending {report.get('n_pending', 0)}, expired {report.get('n_expired', 0)},"
            f" unknown labels {report.get('n_unknown_labels', 0)}, refused {report.get('n_refused', 0)},"
            f" duplicates {report.get('n_duplicates', 0)}, drifts {report.get('n_drifts', 0)},"
            f" promotions {report.get('n_promotions', 0)}")
    challenger = report.get("challenger")
    if challenger:
        text += (f"; challenger {challenger['algorithm']} window {challenger['window_score']:.4f}"
                 f" vs champion {report.get('window_score', 0.0):.4f}")
    return text


def _list(args, load) -> int:
    async def main() -> int:
        async with _connect(args, load) as conveyor:
            learners = await conveyor.learners()
            if args.json:
                print(json.dumps(learners, default=str))
                return EXIT_OK
            if not learners:
                print("no learners (python run.py learners create --config LEARNER.toml)")
            for learner in learners:
                print(f"{learner['name']} r{learner['revision']} on stream {learner['stream']}")
                for partition, report in sorted(learner["reports"].items()):
                    print(f"  partition {partition}: {_summary(report)}")
            return EXIT_OK
    return _run(main, "learners list")


def _show(args, load) -> int:
    async def main() -> int:
        async with _connect(args, load) as conveyor:
            report = await conveyor.learner_report(args.name)
            if args.json:
                print(json.dumps(report))
                return EXIT_OK
            print(f"learner {args.name}")
            for partition, part in sorted(report.items()):
                print(f"  partition {partition}: {_summary(part)}")
            return EXIT_OK
    return _run(main, "learners show")


def _remove(args, load) -> int:
    async def main() -> int:
        async with _connect(args, load) as conveyor:
            revision = await conveyor.remove_learner(args.name)
            print(f"learner {args.name} removed (revision {revision})")
            return EXIT_OK
    return _run(main, "learners remove")


def _stream(args, load) -> int:
    from client.streaming import SYNTHETIC, StreamRefused, build_events, dataset_rows, replay

    if args.rate < 0 or args.rate != args.rate:
        print("stream: --rate: events per second, 0 or more", file=sys.stderr)
        return EXIT_USAGE
    if args.limit is not None and args.limit < 1:
        print("stream: --limit: at least 1", file=sys.stderr)
        return EXIT_USAGE
    limit = args.limit or (10_000 if args.dataset in SYNTHETIC else None)
    stream_name = args.stream or args.dataset.replace("/", "_").rsplit(".", 1)[0][-63:]

    async def main() -> int:
        from client.scoring import NAME

        if not NAME.match(stream_name):
            raise StreamRefused("stream", f"{stream_name!r}: letters, digits, '_', '.', '-'; starts with a letter")
        rows = dataset_rows(args.dataset, seed=args.seed)
        messages = build_events(rows, stream_name, label_field=args.label_field, labels=args.labels,
                                label_delay=args.label_delay, entity_key=args.entity_key, key_field=args.key,
                                limit=limit)
        last = [-1.0]

        def progress(n: int, elapsed: float) -> None:
            if elapsed - last[0] >= 1.0:
                last[0] = elapsed
                print(f"streamed {n:,} events to {stream_name} ({n / max(elapsed, 1e-9):,.0f}/s)", flush=True)

        async with _connect(args, load) as conveyor:
            n = await replay(conveyor, messages, rate=args.rate, on_progress=progress)
        print(f"done: {n:,} events published to stream {stream_name}")
        return EXIT_OK
    return _run(main, "stream")

