#!/usr/bin/env python
"""Conveyor's command line and composition root.

    python run.py cluster start     start the embedded services and the supervision tree
    python run.py cluster status    every actor with its state, restarts and checkpoint
    python run.py cluster stop      stop actors, Ray and the embedded services
    python run.py ingest D FILE     load a CSV/JSONL file into the raw store as a batch of dataset D
    python run.py features set D S  set the feature spec of dataset D (TOML file S)
    python run.py train --config T  train and evaluate the candidates of training config T
    python run.py models list|show  trained candidates, metrics, verdicts and curve images
    python run.py models deploy M   deploy (or roll back) a version of model M
    python run.py score M --features JSON   score one request online
    python run.py console           a live view of the tree, models, learners and alerts
    python run.py learners create   an online learner (River) learning from the stream
    python run.py stream D          replay dataset D as events on the stream
    python run.py lineage M V       batches -> feature set -> model version -> deployments -> scores
    python run.py audit | schedule | data   the audit log, cron schedules, queries over the stores
    python run.py demo              the whole pipeline end to end on bundled data (its own cluster)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import msgspec

from client.cli_run import EXIT_FAILED, EXIT_OK, EXIT_USAGE, say


def progress_printer(describe):
    """A progress callback that prints ``describe(progress)`` each time the line changes."""
    last: list[str] = []

    def show(progress) -> None:
        line = describe(progress)
        if last != [line]:
            say(line)
            last[:] = [line]

    return show


def run_async(main, name: str) -> int:
    """``asyncio.run(main())``: a refused request exits 2, a failed one 1, each with its reason."""
    from client.cli_run import Exit, run_command

    try:
        return run_command(main, name)
    except Exit as exc:
        return exc.code


def load(args):
    from storage.settings import load_settings

    return load_settings(args.config)


def ingest(args) -> int:
    from client.connection import Conveyor
    from client.errors import ClusterNotRunning, SubmitRefused
    from client.ingestion import IngestFailed, IngestRefused

    settings = load(args)

    shown = []

    def show(progress) -> None:
        line = f"  {progress.dataset}: {progress.state}, {progress.n_rows:,} rows stored"
        if progress.n_rejected:
            line += f", {progress.n_rejected:,} rejected"
        if not shown or shown[-1] != line:
            print(("\r" if sys.stdout.isatty() else "\n" if shown else "") + line, end="", flush=True)
            shown.append(line)

    async def run() -> int:
        async with Conveyor.connect(settings) as conveyor:
            if args.every:
                schedule = await conveyor.schedule_ingest(args.dataset, args.path, args.every, format=args.format,
                                                          key=args.key, time=args.time, label=args.label)
                say(f"Scheduled: {args.path} into {args.dataset!r} every {args.every!r} (schedule {schedule}).")
                return EXIT_OK
            request = await conveyor.ingest(args.dataset, args.path, format=args.format, key=args.key,
                                            time=args.time, label=args.label)
            say(f"Submitted {args.path} as dataset {args.dataset!r} (request {request}).")
            if args.no_wait:
                return EXIT_OK
            done = await conveyor.wait_ingested(request, args.dataset, args.timeout, on_progress=show)
            print()
            if done.state == "duplicate":
                say(f"Already ingested as batch {done.batch_id} ({done.n_rows:,} rows); nothing stored twice.")
            else:
                say(f"Batch {done.batch_id}: {done.n_rows:,} rows stored, {done.n_rejected:,} rejected"
                    + (" (see raw_rejects for line numbers and reasons)" if done.n_rejected else "") + ".")
            return EXIT_OK

    try:
        return asyncio.run(run())
    except (IngestRefused, SubmitRefused) as exc:
        print(f"cannot ingest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (IngestFailed, ClusterNotRunning, TimeoutError) as exc:
        print(f"\ningestion failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


def features(args) -> int:
    from client.cli_run import Exit, run_command
    from client.connection import Conveyor
    from ml.transforms import FeatureSpecError

    settings = load(args)
    spec = None
    if args.action == "set":      # a spec that cannot be read is the caller's to fix, before connecting
        try:
            spec = open(args.spec, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"features: cannot read the spec {args.spec!r}: {exc}", file=sys.stderr)
            return EXIT_USAGE

    async def run() -> int:
        async with Conveyor.connect(settings) as conveyor:
            if args.action == "join":
                await conveyor.define_join(args.name, args.sources, args.time)
                say(f"Join {args.name!r} of {', '.join(args.sources)} defined; it runs once every source "
                    "has features.")
                return EXIT_OK
            if args.action == "set":
                version = await conveyor.set_feature_spec(args.dataset, spec)
                say(f"Feature spec of {args.dataset!r} set (version {version}); batches ingested from now on are"
                    " prepared with it.")
                return EXIT_OK
            found = await conveyor.online_features(args.dataset, args.key)
            if found is None:
                say(f"No online features for {args.key!r} in {args.dataset!r}.")
                return EXIT_FAILED
            say(msgspec.json.encode(found).decode())
            return EXIT_OK

    try:
        return run_command(run, "features")
    except Exit as exc:
        return exc.code
    except FeatureSpecError as exc:
        print(f"features: {exc}", file=sys.stderr)
        return EXIT_USAGE


def train(args) -> int:
    from client.connection import Conveyor

    settings = load(args)
    show = progress_printer(lambda p: f"  {p.model}: {p.state}, {p.n_trained}/{p.n_candidates or '?'} candidates"
                                      " trained")

    async def run() -> int:
        async with Conveyor.connect(settings) as conveyor:
            if args.on_features:
                version = await conveyor.set_training_trigger(args.on_features, args.train_config)
                say(f"Training with {args.train_config} whenever {args.on_features!r} gets new features"
                    f" (trigger version {version}).")
                return EXIT_OK
            if args.every:
                schedule = await conveyor.schedule_training(args.train_config, args.every)
                say(f"Scheduled: training with {args.train_config} every {args.every!r} (schedule {schedule}).")
                return EXIT_OK
            run_id = await conveyor.train(args.train_config)
            say(f"Submitted training run {run_id}.")
            if args.no_wait:
                return EXIT_OK
            done = await conveyor.wait_trained(run_id, args.timeout, on_progress=show)
            for warning in done.split_warnings:
                say(f"  split warning: {warning}")
            for c in await conveyor.candidates(done.model):
                if c["run_id"] == run_id:
                    score = c["metrics"].get(done.metric)
                    say(f"  v{c['version']:<4} {c['name']:<20} {c['algorithm']:<34} {done.metric}="
                        f"{_number(score)}  fit {c['fit_s']:.2f} s" + ("  <- best" if c["candidate_id"] ==
                                                                      done.best_candidate else ""))
            verdict = "DEPLOYABLE" if done.deployable else "not deployable"
            say(f"Best {done.metric}={_number(done.score)} vs {done.reference} {_number(done.reference_score)}: "
                f"{verdict}." + ("" if not done.error else f" Some candidates failed: {done.error}"))
            say(f"Details: python run.py models show {done.model}")
            return EXIT_OK

    return run_async(run, "train")


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def models(args) -> int:
    from client.connection import Conveyor

    settings = load(args)

    async def run() -> int:
        async with Conveyor.connect(settings) as conveyor:
            if args.action == "deploy":
                say(f"Deploying {args.model}" + (f" v{args.version}" if args.version else " (best deployable)")
                    + ": loading and warming its replicas ...")
                done = await conveyor.deploy(args.model, args.version, replicas=args.replicas,
                                             canary_weight=args.canary)
                role = f"canary ({args.canary:.0%} of traffic)" if args.canary else "production"
                say(f"{args.model} v{done['version']} is {role}"
                    + (f"; v{done['previous']} stays live as previous" if done["previous"] else "")
                    + f" ({len(done['replicas'])} replicas).")
                return EXIT_OK
            if args.action == "rollback":
                done = await conveyor.rollback(args.model)
                say(f"{args.model}: production is back on v{done['version']} (v{done['previous']} is previous).")
                return EXIT_OK
            if args.action == "list":
                found = await conveyor.candidates(args.model)
                if args.json:
                    sys.stdout.write(json.dumps(found, default=str, indent=2) + "\n")
                    return EXIT_OK
                if not found:
                    say("No candidates yet: `python run.py train --config train.toml` trains some.")
                live = {(d["model"], d["version"]): d for d in await conveyor.deployments(args.model)}
                for c in found:
                    main_metric = next(iter(k for k in ("roc_auc", "rmse", "silhouette") if k in c["metrics"]), None)
                    deployment = live.get((c["model"], c["version"]))
                    serving = ",".join(deployment["aliases"]) or deployment["state"] if deployment else ""
                    say(f"{c['model']:<20} v{c['version']:<4} {c['name']:<20} {c['algorithm']:<34} "
                        f"{main_metric}={_number(c['metrics'].get(main_metric))} "
                        f"{'deployable' if c['deployable'] else '-':<10} {serving}")
                return EXIT_OK
            found = await conveyor.candidate(args.model, args.version)
            if found is None:
                print(f"models: no candidate {args.model!r}" + (f" v{args.version}" if args.version else ""),
                      file=sys.stderr)
                return EXIT_FAILED
            from client.training import render_curves

            found["images"] = render_curves(settings, found)
            found.pop("curves", None)
            run_info = await conveyor.training_progress(found["run_id"])
            if run_info is not None:
                found["verdict"] = {"metric": run_info.metric, "best_of_run": run_info.best_candidate,
                                    "reference": run_info.reference, "reference_score": run_info.reference_score,
                                    "deployable": found["deployable"]}
            if args.json:
                sys.stdout.write(json.dumps(found, default=str, indent=2) + "\n")
                return EXIT_OK
            for key in ("model", "version", "name", "algorithm", "candidate_id", "run_id", "feature_set_id",
                        "batch_ids", "n_train", "partitions", "blocks", "attempts", "fit_s", "deployable"):
                say(f"{key:<15} {found[key]}")
            say(f"{'params':<15} {json.dumps(found['params'])}")
            for name, value in found["metrics"].items():
                say(f"  {name:<16} {value if isinstance(value, list) else _number(value)}")
            if "verdict" in found:
                v = found["verdict"]
                say(f"{'verdict':<15} {'deployable' if v['deployable'] else 'not deployable'} (reference "
                    f"{v['reference']} {v['metric']}={_number(v['reference_score'])})")
            for kind, path in found["images"].items():
                say(f"{kind + ' curve':<15} {path}")
            return EXIT_OK

    return run_async(run, f"models {args.action}")


def batch_score(args) -> int:
    from client.connection import Conveyor

    settings = load(args)
    show = progress_printer(lambda p: f"  {p['model']}: {p['state']}, {p['rows_done']:,}/{p['n_rows'] or 0:,} rows"
                                      " scored")

    async def run() -> int:
        async with Conveyor.connect(settings) as conveyor:
            job = await conveyor.batch_score(args.model, args.version, args.feature_set)
            say(f"Submitted batch scoring job {job}.")
            if args.no_wait:
                return EXIT_OK
            done = await conveyor.wait_batch_scored(job, args.timeout, on_progress=show)
            say(f"{done['model']} v{done['version']} scored {done['n_rows']:,} rows of feature set "
                f"{done['feature_set_id']} (results: client.batch_scores({job!r})).")
            return EXIT_OK

    return run_async(run, "batch-score")


def score(args) -> int:
    from client.connection import Conveyor

    settings = load(args)
    try:
        features = json.loads(args.features) if args.features is not None else None
    except ValueError as exc:
        print(f"score: --features: not JSON ({exc})", file=sys.stderr)
        return EXIT_USAGE
    version = int(args.version) if args.version and args.version.isdigit() else args.version

    async def run() -> int:
        async with Conveyor.connect(settings) as conveyor:
            if args.online:
                await conveyor.connect_learners()     # a one-off's deadline is for the answer, not the set-up
                result = await conveyor.score_online(args.model, features or {}, entity_key=args.entity_key,
                                                     deadline_ms=args.deadline_ms)
            else:
                result = await conveyor.score(args.model, features, entity_key=args.entity_key, version=version,
                                              deadline_ms=args.deadline_ms)
            say(msgspec.json.encode(result).decode())
            return EXIT_OK

    return run_async(run, "score")


def console(args) -> int:
    from client.console import run_console

    return run_console(load(args), refresh_s=args.refresh, once=args.once, width=args.width)


# --- the parser --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Conveyor: a supervised, reactive ML pipeline.")
    parser.add_argument("--config", help="TOML settings file (default ./conveyor.toml when present); "
                                         "CONVEYOR_* environment variables override it")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from client.cli_cluster import register as register_cluster, start_cluster, stop_cluster   # cluster

    register_cluster(commands, load)

    source = commands.add_parser("ingest", help="load a CSV, JSONL or Parquet file into the raw store as one batch",
                                 description="Load a file into the raw store as one batch of DATASET, "
                                             "partitioned over the ingestion workers; the same file twice "
                                             "is recognised by its checksum and stored once. Shows progress "
                                             "and waits for the batch to complete.")
    source.add_argument("dataset", help="dataset name: letters, digits, '_', '.', '-'; starts with a letter")
    source.add_argument("path", help="the file (read by the ingestion workers: give a path they can see)")
    source.add_argument("--format", choices=["csv", "jsonl", "parquet"], help="default: from the file's extension")
    source.add_argument("--key", help="the entity key column")
    source.add_argument("--time", help="the event time column (ISO-8601 or epoch seconds)")
    source.add_argument("--label", help="the label column")
    source.add_argument("--no-wait", action="store_true", help="submit and return at once")
    source.add_argument("--every", metavar="CRON", help="ingest on this schedule instead of now, e.g. "
                                                      "'0 * * * *' (hourly); an unchanged file is stored once")
    source.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")
    source.set_defaults(run=ingest)

    feats = commands.add_parser("features", help="feature specs and the online feature store",
                                description="Set a dataset's feature spec (TOML), or read an entity's "
                                            "latest vector from the online store.")
    feature_actions = feats.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_spec = feature_actions.add_parser("set", help="set the feature spec of a dataset",
                                          description="Check and store DATASET's feature spec; batches "
                                                      "ingested afterwards are prepared with it.")
    set_spec.add_argument("dataset")
    set_spec.add_argument("spec", help="a TOML file of [[steps]]")
    set_spec.set_defaults(run=features)
    join = feature_actions.add_parser("join", help="join several datasets' features on entity key",
                                      description="Define a join: the features of SOURCES (the first is the "
                                                  "left side) on entity key, as of --time when given; it runs "
                                                  "once every source has features.")
    join.add_argument("name")
    join.add_argument("sources", nargs="+", help="two or more datasets")
    join.add_argument("--time", help="raw time column for an as-of join")
    join.set_defaults(run=features)
    get = feature_actions.add_parser("get", help="an entity's latest vector from the online store",
                                     description="Print the latest feature vector of KEY in DATASET.")
    get.add_argument("dataset")
    get.add_argument("key")
    get.set_defaults(run=features)

    fit = commands.add_parser("train", help="train and evaluate the candidates of a training config",
                              description="Train the candidates named in a training config (TOML) in parallel, "
                                          "evaluate them on the test side of the split, and mark the best "
                                          "deployable when it beats production (or a baseline) by the margin. "
                                          "Checks the config and its feature set first; shows progress.")
    fit.add_argument("--config", dest="train_config", required=True, metavar="TRAIN.toml",
                     help="the training config: model, feature_set or dataset, metric, margin, [split], "
                          "[[candidates]] with algorithm, params, grid or distributions, partitions, blocks")
    fit.add_argument("--no-wait", action="store_true", help="submit and return at once")
    fit.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")
    fit.add_argument("--every", metavar="CRON", help="train on this schedule instead of now")
    fit.add_argument("--on-features", metavar="DATASET", help="train whenever DATASET gets new features")
    fit.set_defaults(run=train)

    registry = commands.add_parser("models", help="trained candidates, their metrics and verdicts",
                                   description="List the trained candidates, or show one with its metrics, "
                                               "verdict, lineage and the paths of its ROC/PR curve images.")
    model_actions = registry.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = model_actions.add_parser("list", help="every candidate (of MODEL)",
                                       description="Every stored candidate, one line each.")
    listing.add_argument("model", nargs="?")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=models)
    show_one = model_actions.add_parser("show", help="one candidate in full",
                                        description="One candidate (the newest version by default) with its "
                                                    "metrics, verdict, lineage and curve images.")
    show_one.add_argument("model")
    show_one.add_argument("version", nargs="?", type=int)
    show_one.add_argument("--json", action="store_true", help="machine-readable output")
    show_one.set_defaults(run=models)
    deploy = model_actions.add_parser("deploy", help="deploy a version (default: the best deployable candidate)",
                                      description="Load and warm the version's replicas, then move production to "
                                                  "it (the current version stays live as previous); with --canary, "
                                                  "send only that share of traffic to it.")
    deploy.add_argument("model")
    deploy.add_argument("version", nargs="?", type=int)
    deploy.add_argument("--replicas", type=int, help="replicas of the version (default 2)")
    deploy.add_argument("--canary", type=float, metavar="SHARE", help="a weighted canary, e.g. 0.1")
    deploy.set_defaults(run=models)
    rollback = model_actions.add_parser(
        "rollback", help="production back to the previous version",
        description="Move production back along the chain of earlier production versions: to the newest one "
                    "not rolled back from (a retired one is loaded again first). Rolling back again goes further "
                    "back; `python run.py restore MODEL` undoes an automatic rollback.")
    rollback.add_argument("model")
    rollback.set_defaults(run=models)

    batch = commands.add_parser("batch-score", help="score every row of a feature set as a job",
                                description="Score every row of a feature set (default: the one the version was "
                                            "trained on) with a version (default: production), partitioned over "
                                            "the batch scorers; results go to the score store and the prediction "
                                            "cache, and scores.ready announces the job. Shows progress.")
    batch.add_argument("model")
    batch.add_argument("--version", type=int)
    batch.add_argument("--feature-set", help="a feature set id")
    batch.add_argument("--no-wait", action="store_true", help="submit and return at once")
    batch.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")
    batch.set_defaults(run=batch_score)

    one = commands.add_parser("score", help="score one request online",
                              description="Score one request through the router (the deadline's fallback "
                                          "included) and print the typed result as JSON.")
    one.add_argument("model")
    one.add_argument("--features", help='raw features as JSON, e.g. \'{"x": 1.5, "color": "red"}\'')
    one.add_argument("--entity-key", help="read the entity's features from the online store instead")
    one.add_argument("--version", help="a version number or alias (production, previous, canary)")
    one.add_argument("--deadline-ms", type=float, default=100.0, help="answer within this (default 100)")
    one.add_argument("--online", action="store_true",
                     help="MODEL names an online learner: its live champion answers (--entity-key picks the partition)")
    one.set_defaults(run=score)

    live = commands.add_parser(
        "console", help="live status of the supervision tree, models, learners and alerts",
        description="A live terminal view of a running cluster: the supervision tree (state, restarts, last "
                    "checkpoint, lag per partition, records per second), live model versions (latency, fallback "
                    "rate), drift, online learners' scores and recent alerts. Keys: tab or left/right to move "
                    "between panels, 1-5 to select one, up/down/PgUp/PgDn to scroll it, z to zoom it, q to quit "
                    "(Ctrl-C too). Without a terminal on stdin it refreshes until interrupted. "
                    "`cluster status --json` is the scripting interface.")
    live.add_argument("--refresh", type=float, default=1.0, help="seconds between refreshes (default 1)")
    live.add_argument("--once", action="store_true",
                      help="print one frame and exit (0 when the cluster is healthy, else 1)")
    live.add_argument("--width", type=int, help="columns to draw (default: the terminal's, else 160)")
    live.set_defaults(run=console)

    from client.cli_learning import register as register_learning   # learners, stream

    register_learning(commands, load)
    from client.cli_ops import register   # lineage, audit, schedule, data

    register(commands)

    from client.cli_config import register as register_config   # config

    register_config(commands)
    from client.cli_monitor import register as register_monitor   # monitor

    register_monitor(commands)

    from client.cli_demo import register as register_demo   # demo

    register_demo(commands, load, start_cluster, stop_cluster)
    return parser


def main(argv: list[str] | None = None) -> int:
    from storage.settings import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
