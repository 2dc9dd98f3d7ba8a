"""``python run.py config list|show|history|set``: the configuration service from the
command line (every configuration the actors read, with its versions; each change, by
``config set``, ``features set``, ``train --on-features`` or ``learners create``, is a new
version with an audit record). Exit 0 done, 1 failed, 2 refused (the message names the field).

    python run.py config list [--kind feature_spec] [--json]
    python run.py config show feature_spec iris [--version 2] [--json]
    python run.py config history feature_spec iris [--json]
    python run.py config set serving MODEL serving.toml
"""

from __future__ import annotations

from client.cli_ops import _common, _run
from client.configs import KINDS, SETTABLE


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


async def _set(conveyor, kind: str, name: str, path: str) -> str:
    """Check and store ``path`` as the ``kind`` configuration of ``name``; what to say."""
    from pathlib import Path

    from client.errors import Refused

    setters = {"feature_spec": conveyor.set_feature_spec, "training_trigger": conveyor.set_training_trigger,
               "serving": conveyor.set_serving_config}
    try:
        file = Path(path)
        if not file.is_file():
            raise Refused("file", f"{path} is not a readable file")
        if file.stat().st_size > 64 * 1024:
            raise Refused("file", f"{path} is larger than 64 KiB")
        text = file.read_text(encoding="utf-8")
        version = await setters[kind](name, text)
    except UnicodeDecodeError:
        raise Refused("file", f"{path} is not UTF-8 text") from None
    except ValueError as exc:     # the checks of each kind name the field (FieldError and its like)
        raise Refused(str(getattr(exc, "field", "config")), str(getattr(exc, "reason", exc))) from None
    return f"{kind} {name} is version {version} ({path})."


def config(args) -> int:
    if args.action == "set":
        return _run(args, lambda c: _set(c, args.kind, args.name, args.file), lambda said: said)
    if args.action == "list":
        return _run(args, lambda c: c.configs(args.kind), list_text)
    if args.action == "history":
        return _run(args, lambda c: c.config_history(args.kind, args.name), history_text)
    return _run(args, lambda c: c.config(args.kind, args.name, args.version), show_text)


def register(commands) -> None:
    """Add ``config`` to run.py's subcommands."""
    cmd = commands.add_parser(
        "config", help="configurations the actors read, with their versions",
        description="The configuration service: feature specs, training triggers, serving configurations and "
                    "learners, each change a new version (with an audit record).")
    actions = cmd.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the current version of every configuration")
    listing.add_argument("--kind", choices=KINDS)
    show = actions.add_parser("show", help="one version of a configuration with its text (default: current)")
    history = actions.add_parser("history", help="every version of a configuration, newest first")
    for parser in (show, history):
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("name")
    show.add_argument("--version", type=int)
    change = actions.add_parser(
        "set", help="a new version of a configuration, from a TOML file",
        description="Check FILE and make it the current KIND configuration of NAME: a feature spec or training "
                    "trigger of a dataset, or the serving configuration of a model (serving.toml: replicas, "
                    "latency_objective_ms, fallback_rate_alert, error_rate_alert, accuracy_drop_margin, "
                    "auto_rollback; a key left out keeps the cluster's setting). The same text again is the same "
                    "version; each change has an audit record.")
    change.add_argument("kind", choices=SETTABLE)
    change.add_argument("name")
    change.add_argument("file")
    for parser in (listing, show, history, change):
        _common(parser, limit=False).set_defaults(run=config, command="config")
