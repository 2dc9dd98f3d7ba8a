"""``python run.py monitor [MODEL] [--json] [--alerts N]``: the monitoring summary of every
monitored model version (or MODEL's): serve, fallback and error counts, latency over the
window, drift against the training reference, accuracy against outcomes, recent alerts.
Exit 0 shown, 1 no cluster, 2 refused (the message names the field)."""

from __future__ import annotations


import msgspec

from client.cli_run import EXIT_OK, Exit, run_command


def _ms(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary_text(versions, alerts) -> str:
    lines = []
    for v in versions:
        lines.append(f"{v.model} v{v.version}: {v.n_served:,} served, {v.n_fallback:,} by a fallback "
                     f"({100 * v.fallback_rate:.1f}%), {v.n_errors:,} errors, {v.n_late:,} late")
        lines.append(f"  latency over {v.window_s:g} s ({v.n_window:,} answers): min {_ms(v.latency_min_ms)}, "
                     f"mean {_ms(v.latency_mean_ms)}, p50 {_ms(v.latency_p50_ms)}, p99 {_ms(v.latency_p99_ms)}, "
                     f"max {_ms(v.latency_max_ms)} ms")
        if v.feature_drift:
            worst = sorted(v.feature_drift.items(), key=lambda kv: -kv[1].psi)[:3]
            drifting = v.drifting_features()
            lines.append(f"  feature drift ({v.n_drift_sample:,} inputs): {len(drifting)} of {len(v.feature_drift)}"
                         f" features PSI > 0.25; largest " + ", ".join(f"{n} PSI {d.psi:.3f} KS {d.ks:.3f}"
                                                                        for n, d in worst))
        else:
            lines.append(f"  feature drift: not measured yet ({v.n_drift_sample:,} inputs)")
        if v.prediction_drift is not None:
            lines.append(f"  prediction drift: PSI {v.prediction_drift.psi:.3f}, KS {v.prediction_drift.ks:.3f}")
        if v.n_observed:
            measure = f"accuracy {v.accuracy:.3f}" if v.accuracy is not None else f"MAE {v.mae:.4g}"
            lines.append(f"  outcomes: {v.n_observed:,} joined, {measure}")
    if not versions:
        lines.append("No model version has been monitored yet (deploy one and score it).")
    if alerts:
        lines.append("recent alerts:")
        for a in alerts:
            lines.append(f"  {a.raised_at:%Y-%m-%d %H:%M:%S} {a.severity:<8} {a.model} v{a.version} {a.kind}: "
                         f"{a.summary}")
            if a.evidence:
                lines.append(f"    requests: {' '.join(a.evidence)} "
                             f"(python run.py data scores {a.model} --request ID)")
    return "\n".join(lines)


def monitor(args) -> int:
    from client.connection import Conveyor
    from client.monitoring import check_model
    from storage.settings import load_settings

    async def main():
        check_model(args.model)                    # a bad name is refused before connecting
        async with Conveyor.connect(load_settings(args.config)) as conveyor:
            versions = await conveyor.monitoring(args.model)
            alerts = await conveyor.alerts(args.model, args.alerts) if args.alerts else []
            return versions, alerts

    try:
        versions, alerts = run_command(main, "monitor")
    except Exit as exc:
        return exc.code
    if args.json:
        print(msgspec.json.encode({"versions": versions, "alerts": alerts}).decode(), flush=True)
    else:
        print(summary_text(versions, alerts), flush=True)
    return EXIT_OK


def restore(args) -> int:
    from client.connection import Conveyor
    from client.monitoring import check_model
    from storage.settings import load_settings

    async def main():
        check_model(args.model)
        async with Conveyor.connect(load_settings(args.config)) as conveyor:
            return await conveyor.restore(args.model)

    try:
        done = run_command(main, "restore")
    except Exit as exc:
        return exc.code
    print(f"{args.model}: v{done['version']} is production again (v{done['previous']} stays live as previous).",
          flush=True)
    return EXIT_OK


def register(subparsers) -> None:
    """Add ``monitor`` and ``restore`` to run.py's commands."""
    parser = subparsers.add_parser(
        "monitor", help="serve counts, latency, drift and alerts of live model versions",
        description="The monitoring summary of every monitored model version (or MODEL's): serve, fallback and "
                    "error counts; latency min/mean/p50/p99/max over the window; PSI and KS drift of every "
                    "feature and of the predictions against the training data; accuracy against observed "
                    "outcomes; and the most recent alerts.")
    parser.add_argument("model", nargs="?", help="one model (default: all)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--alerts", type=int, default=10, metavar="N",
                        help="show the N newest alerts (default 10; 0: none)")
    parser.set_defaults(run=monitor)
    undo = subparsers.add_parser(
        "restore", help="undo a model's automatic rollback",
        description="Put back in production the version the monitor rolled MODEL back from (it is still live as "
                    "previous); its latency window and outcomes are measured afresh. An audit record says so.")
    undo.add_argument("model")
    undo.set_defaults(run=restore)
