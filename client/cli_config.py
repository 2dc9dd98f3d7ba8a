"""``python run.py config list|show|history``: the configuration service from the command
line (every configuration the actors read, with its versions; changes are made by
``features set``, ``train --on-features`` and ``learners create``, each a new version
with an audit record). Exit 0 done, 1 failed, 2 refused (the message names the field).

    python run.py config list [--kind feature_spec] [--json]
    python run.py config show feature_spec iris [--version 2] [--json]
    python run.py config history feature_spec iris [--json]
"""

from __future__ import annotations

from client.cli_ops import _common, _run
from client.configs import KINDS


def _at(version) -> str:
    return f"{version.created_at:%Y-%m-%d %H:%M:%S}"


def list_text(found) -> str:
    if not found:
        return "No configurations."
    return "\n".join(f"{c.kind:<17} {c.name:<40} v{c.version:<4} {_at(c)}  by {c.actor}" for c in found)


def history_text(found) -> str:
    return "\n".join(f"v{c.version:<4} {_at(c)}  by {c.actor}" + ("  (removed)" if c.removed else "")
                     for c in found)


def show_text(found) -> str:
    return f"# {found.kind} {found.name} v{found.version}, {_at(found)} by {found.actor}\n{found.body.rstrip()}"


def config(args) -> int:
    if args.action == "list":
        return _run(args, lambda c: c.configs(args.kind), list_text)
    if args.action == "history":
        return _run(args, lambda c: c.config_history(args.kind, args.name), history_text)
    return _run(args, lambda c: c.config(args.kind, args.name, args.version), show_text)


def register(commands) -> None:
    """Add ``config`` to run.py's subcommands."""
    cmd = commands.add_parser(
        "config", help="configurations the actors read, with their versions",
        description="The configuration service: feature specs, training triggers and learners, each change a new "
                    "version (with an audit record).")
    actions = cmd.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the current version of every configuration")
    listing.add_argument("--kind", choices=KINDS)
    show = actions.add_parser("show", help="one version of a configuration with its text (default: current)")
    history = actions.add_parser("history", help="every version of a configuration, newest first")
    for parser in (show, history):
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("name")
    show.add_argument("--version", type=int)
    for parser in (listing, show, history):
        _common(parser, limit=False).set_defaults(run=config, command="config")
