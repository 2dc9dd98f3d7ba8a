"""The operator's commands: ``lineage``, ``audit``, ``schedule add|list|remove`` and
``data batches|rejects|feature-sets|scores|score-counts|score-jobs``. ``run.py`` adds
them with :func:`register`; each handler returns the exit code (0 done, 1 failed or
nothing found, 2 refused: the message names the field).

    python run.py lineage cancer 2 [--json]
    python run.py audit --action model.deployed --subject cancer --limit 20
    python run.py schedule add ingest iris data/iris.csv --cron "0 * * * *" --key id
    python run.py data batches iris --json
"""

from __future__ import annotations

import argparse

from client.cli_run import EXIT_OK


def _run(args, query, text) -> int:
    """Connect, ``await query(conveyor)``, print its JSON (``--json``) or ``text(result)``."""
    from client.cli_run import Exit, run_command
    from client.connection import Conveyor
    from client.ops_text import json_text
    from storage.settings import load_settings

    async def main():
        async with Conveyor.connect(load_settings(args.config)) as conveyor:
            return await query(conveyor)

    try:
        found = run_command(main, args.command)
    except Exit as exc:
        return exc.code
    if getattr(args, "json", False):
        print(json_text(found), flush=True)
    else:
        print(text(found), flush=True)
    return EXIT_OK


def _version(text: str) -> int | str:
    return int(text) if text.isdigit() else text


# --- handlers ---------------------------------------------------------------------------------

def lineage(args) -> int:
    from client.ops_text import lineage_text

    return _run(args, lambda c: c.lineage(args.model, _version(args.version)), lineage_text)


def audit(args) -> int:
    from client.ops_text import audit_text

    return _run(args, lambda c: c.audit(actor=args.actor, action=args.action, subject=args.subject,
                                        limit=args.limit), lambda found: audit_text(found) if found else
                "No audit records match.")


def schedule(args) -> int:
    from client import ops_text

    if args.action == "list":
        return _run(args, lambda c: c.schedule_list(),
                    lambda found: ops_text.schedules_text(found) if found else "No schedules.")
    if args.action == "remove":
        async def remove(c):
            await c.unschedule(args.schedule_id)
            return {"removed": args.schedule_id}

        return _run(args, remove, lambda done: f"Schedule {done['removed']} removed.")

    async def add(c):
        if args.kind == "ingest":
            sid = await c.schedule_ingest(args.dataset, args.path, args.cron, format=args.format, key=args.key,
                                          time=args.time, label=args.label)
        else:
            sid = await c.schedule_training(args.train_config, args.cron)
        return next(s for s in await c.schedule_list() if s.schedule_id == sid)

    return _run(args, add, lambda s: f"Scheduled {s.schedule_id}: {s.what}, cron {s.cron!r}; first run "
                                     f"{ops_text.when(s.next_run_at)}.")


def data(args) -> int:
    from client import ops_text as t

    queries = {
        "batches": (lambda c: c.raw_batches(args.dataset, limit=args.limit), t.batches_text, "No raw batches."),
        "rejects": (lambda c: c.raw_rejects(args.batch_id, limit=args.limit), t.rejects_text,
                    "No rejected lines: every line of the batch was stored."),
        "feature-sets": (lambda c: c.feature_sets(args.dataset, limit=args.limit), t.feature_sets_text,
                         "No feature sets."),
        "scores": (lambda c: c.score_records(args.model, version=args.version, answered_by=args.answered_by,
                                             request_ids=args.request, limit=args.limit), t.scores_text,
                   "No recorded answers."),
        "score-counts": (lambda c: c.score_counts(args.model, args.version), t.score_counts_text,
                         "No recorded answers."),
        "score-jobs": (lambda c: c.score_jobs(args.model, limit=args.limit), t.score_jobs_text,
                       "No batch scoring jobs."),
    }
    query, text, empty = queries[args.action]
    return _run(args, query, lambda found: text(found) if found else empty)


# --- parsers ----------------------------------------------------------------------------------

def _common(parser: argparse.ArgumentParser, limit: bool = True) -> argparse.ArgumentParser:
    if limit:
        parser.add_argument("--limit", type=int, default=50, help="at most this many, newest first "
                                                                  "(1 to 10000; default 50)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def register(commands) -> None:
    """Add ``lineage``, ``audit``, ``schedule`` and ``data`` to run.py's subcommands."""
    one = commands.add_parser(
        "lineage", help="where a model version came from and what it did",
        description="The lineage of VERSION of MODEL: the raw batches of its features -> the feature set -> the "
                    "model version (candidate, training run) -> its deployments (with every deploy and rollback) "
                    "-> the answers it gave (online, by who answered; batch scoring jobs).")
    one.add_argument("model")
    one.add_argument("version", help="a version number, or production, previous, canary")
    _common(one, limit=False).set_defaults(run=lineage)

    log = commands.add_parser("audit", help="the audit log: who did what, when",
                              description="Audit records, newest first: the actor, the action, its subject and "
                                          "the details recorded. Filters match exactly.")
    log.add_argument("--actor", help="e.g. root.serve")
    log.add_argument("--action", help="e.g. model.deployed, model.rollback, model.evaluated")
    log.add_argument("--subject", help="e.g. a model name")
    _common(log).set_defaults(run=audit)

    _schedule_parsers(commands)
    _data_parsers(commands)


def _schedule_parsers(commands) -> None:
    cron_help = "a cron expression: 5 fields, or 6 with seconds last, e.g. '0 * * * *' (hourly)"
    sched = commands.add_parser("schedule", help="scheduled ingestion and training (cron)",
                                description="Add, list and remove schedules; the scheduler publishes each one's "
                                            "command when its cron expression is due.")
    actions = sched.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="ingest a file or train a config on a schedule",
                             description="Ingest a file (an unchanged file is stored once) or train with a config "
                                         "whenever the cron expression is due. The same as `ingest --every` and "
                                         "`train --every`.")
    kinds = add.add_subparsers(dest="kind", required=True, metavar="KIND")
    ingest = kinds.add_parser("ingest", help="ingest FILE into DATASET on a schedule",
                              description="Ingest FILE into DATASET whenever CRON is due.")
    ingest.add_argument("dataset")
    ingest.add_argument("path", metavar="FILE", help="the file (read by the ingestion workers)")
    ingest.add_argument("--cron", "--every", dest="cron", required=True, metavar="CRON", help=cron_help)
    ingest.add_argument("--format", choices=["csv", "jsonl", "parquet"], help="default: from the file's extension")
    ingest.add_argument("--key", help="the entity key column")
    ingest.add_argument("--time", help="the event time column")
    ingest.add_argument("--label", help="the label column")
    ingest.set_defaults(run=schedule)
    train = kinds.add_parser("train", help="train with a config on a schedule",
                             description="Train and evaluate the candidates of TRAIN.toml whenever CRON is due.")
    train.add_argument("train_config", metavar="TRAIN.toml")
    train.add_argument("--cron", "--every", dest="cron", required=True, metavar="CRON", help=cron_help)
    train.set_defaults(run=schedule)
    _common(actions.add_parser("list", help="every schedule, its next run and what it does",
                               description="Every schedule: id, cron, next and last run, runs so far, what it "
                                           "does."), limit=False).set_defaults(run=schedule)
    remove = actions.add_parser("remove", help="remove a schedule",
                                description="Remove a schedule by its id (`schedule list` shows them).")
    remove.add_argument("schedule_id")
    remove.set_defaults(run=schedule)


def _data_parsers(commands) -> None:
    data_cmd = commands.add_parser(
        "data", help="query raw batches, feature sets and scores",
        description="Query the stores: raw batches and their rejected lines, feature sets, online score records "
                    "and counts, batch scoring jobs. (Candidates: `models list|show`.)")
    actions = data_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    batches = actions.add_parser("batches", help="raw batches (of DATASET), newest first",
                                 description="Raw batches: id, dataset, rows stored and rejected, state, source.")
    batches.add_argument("dataset", nargs="?")
    rejects = actions.add_parser("rejects", help="the rejected lines of a batch",
                                 description="The lines of BATCH_ID that were refused, with line number, field "
                                             "and reason.")
    rejects.add_argument("batch_id")
    sets = actions.add_parser("feature-sets", help="feature sets (of DATASET), newest first",
                              description="Feature sets: id, dataset, rows and batches prepared, the batch it was "
                                          "fitted on, its features.")
    sets.add_argument("dataset", nargs="?")
    scores = actions.add_parser("scores", help="recorded online answers of MODEL, newest first",
                                description="Recorded online answers of MODEL: request, version, who answered, "
                                            "score, label, latency, entity key.")
    scores.add_argument("model")
    scores.add_argument("--version", type=int, help="only answers given by this version")
    scores.add_argument("--answered-by", choices=["primary", "fallback", "baseline", "cache"])
    scores.add_argument("--request", action="append", metavar="REQUEST_ID",
                        help="only the answer to this request (repeatable; e.g. the requests an alert names)")
    counts = actions.add_parser("score-counts", help="online answers of MODEL counted by version and answerer",
                                description="How many online answers each version of MODEL gave, by who "
                                            "answered, with the first and last.")
    counts.add_argument("model")
    counts.add_argument("--version", type=int)
    jobs = actions.add_parser("score-jobs", help="batch scoring jobs (of MODEL), newest first",
                              description="Batch scoring jobs: id, version, state, rows planned and stored.")
    jobs.add_argument("model", nargs="?")
    for parser in (batches, rejects, sets, scores, jobs):
        _common(parser).set_defaults(run=data)
    _common(counts, limit=False).set_defaults(run=data)
