"""The rows of each console panel, from a snapshot: pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rich.text import Text

from client.console_snapshot import Snapshot, lag

PANELS = ("tree", "models", "drift", "learners", "alerts")


@dataclass(frozen=True)
class Column:
    title: str
    justify: str = "left"
    ratio: int | None = None
    min_width: int | None = None


def _right(title: str) -> Column:
    return Column(title, justify="right")


#: How an actor's (or the cluster's) state is drawn; any other state is bold red.
STATE_STYLE = {"running": "green", "starting": "yellow", "stopped": "dim", "degraded": "yellow"}


def panel_rows(name: str, snapshot: Snapshot) -> tuple[list[Column], list[list]]:
    return {"tree": tree_rows, "models": model_rows, "drift": drift_rows, "learners": learner_rows,
            "alerts": alert_rows}[name](snapshot)


def _num(value, fmt: str = "{:,}", missing: str = "—") -> str:
    return missing if value is None else fmt.format(value)


def tree_rows(snapshot: Snapshot):
    columns = [Column("actor", min_width=24), Column("state", min_width=9), _right("restarts"), Column("partition"),
               _right("lag"), _right("per s"), _right("processed"), Column("checkpoint"), _right("pid"),
               Column("activity", ratio=1, min_width=10)]
    rows = []
    status = snapshot.status
    if status is None or status.tree is None:
        return columns, rows

    def visit(node, depth: int) -> None:
        style = STATE_STYLE.get(node.state, "bold red")
        checkpoint = ("" if node.last_checkpoint_offset is None else
                      f"@{node.last_checkpoint_offset:,} {_age(node.last_checkpoint_age_s)}")
        behind = lag(node, snapshot.end_offsets)
        partition = f"{node.topic}/{node.partition}" if node.topic is not None else ""
        rate = snapshot.rates.get(node.id)
        note = node.error or node.activity or (f"{node.strategy}, restarts {node.intensity}"
                                               if node.kind == "supervisor" and node.intensity else "")
        rows.append([
            Text("  " * depth + node.id, style="bold" if node.kind == "supervisor" else ""),
            Text(node.state, style=style),
            Text(str(node.n_restarts), style="yellow" if node.n_restarts else ""), partition,
            "" if node.topic is None else Text(_num(behind), style="yellow" if behind else ""),
            "" if rate is None else f"{rate:,.1f}", _num(node.n_processed, "{:,}", ""), checkpoint, _num(node.pid, "{}", ""),
            Text(note, style="red" if node.error else "dim"),
        ])
        for child in node.children:
            visit(child, depth + 1)

    visit(status.tree, 0)
    return columns, rows


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.1f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 7200 else f"{seconds / 3600:.1f} h ago"


def _figures(snapshot: Snapshot) -> dict:
    return {(v.model, v.version): v for v in snapshot.versions}


def model_rows(snapshot: Snapshot):
    columns = [Column("model", min_width=10), _right("version"), Column("aliases"), _right("replicas"),
               _right("served"), _right("p50 ms"), _right("p99 ms"), _right("fallback"), _right("errors"),
               _right("accuracy"), Column("drift", ratio=1)]
    figures = _figures(snapshot)
    rows = []
    for live in snapshot.live:
        v = figures.get((live.model, live.version))
        aliases = ", ".join(live.aliases) + (f" {live.canary_weight:.0%}" if live.canary_weight else "")
        if v is None:
            rows.append([live.model, f"v{live.version}", aliases, str(live.replicas),
                         Text("no answers yet", style="dim"), "", "", "", "", "", ""])
            continue
        rate = v.fallback_rate
        quality = (f"{v.accuracy:.3f}" if v.accuracy is not None else f"MAE {v.mae:.3g}" if v.mae is not None
                   else "—")
        rows.append([live.model, f"v{live.version}", aliases, str(live.replicas), f"{v.n_served:,}",
                     _num(v.latency_p50_ms, "{:.1f}"), _num(v.latency_p99_ms, "{:.1f}"),
                     Text(f"{rate:.1%}", style="yellow" if rate else ""),
                     Text(f"{v.n_errors:,}", style="red" if v.n_errors else ""), quality,
                     _drift_summary(v, snapshot.drift_psi_alert)])
    return columns, rows


def _drift_summary(v, threshold: float) -> Text:
    drifting = v.drifting_features(threshold)
    parts = []
    if v.prediction_drift is not None:
        parts.append(f"predictions PSI {v.prediction_drift.psi:.2f}")
    parts.append(f"{len(drifting)} of {len(v.feature_drift)} features drifting" if v.feature_drift else "")
    if drifting:
        parts.append("(" + ", ".join(drifting[:3]) + (", …" if len(drifting) > 3 else "") + ")")
    hot = bool(drifting) or (v.prediction_drift is not None and v.prediction_drift.psi > threshold)
    return Text(" ".join(p for p in parts if p), style="bold yellow" if hot else "")


def drift_rows(snapshot: Snapshot):
    columns = [Column("model", min_width=10), _right("version"), Column("of", min_width=12), _right("PSI"),
               _right("KS"), _right("p-value"), Column("", ratio=1)]
    live = {(v.model, v.version) for v in snapshot.live}
    rows = []
    for v in snapshot.versions:
        if live and (v.model, v.version) not in live:
            continue
        drifts = ([("predictions", v.prediction_drift)] if v.prediction_drift is not None else []) + sorted(
            v.feature_drift.items(), key=lambda kv: -kv[1].psi)
        for name, d in drifts:
            hot = d.psi > snapshot.drift_psi_alert
            rows.append([v.model, f"v{v.version}", name, Text(f"{d.psi:.3f}", style="bold yellow" if hot else ""),
                         f"{d.ks:.3f}", f"{d.p_value:.3g}",
                         Text("drifting" if hot else "", style="bold yellow")])
    return columns, rows


def learner_rows(snapshot: Snapshot):
    columns = [Column("learner", min_width=10), Column("stream"), _right("rev"), _right("partition"),
               Column("champion"), Column("progressive scores", ratio=1), _right("learned"), _right("pending"),
               _right("drifts"), _right("promotions")]
    rows = []
    for learner in snapshot.learners:
        reports = learner.get("reports") or {}
        if not reports:
            rows.append([learner["name"], learner.get("stream", ""), str(learner.get("revision", "")), "",
                         Text("no checkpoint yet", style="dim"), "", "", "", "", ""])
        for partition, report in sorted(reports.items(), key=lambda kv: int(kv[0])):
            scores = "  ".join(f"{k} {v:.4f}" for k, v in (report.get("scores") or {}).items())
            rows.append([learner["name"], learner.get("stream", ""), str(learner.get("revision", "")),
                         str(partition), str(report.get("champion", "")), scores,
                         f"{report.get('n_learned', 0):,}", f"{report.get('n_pending', 0):,}",
                         str(report.get("n_drifts", 0)), str(report.get("n_promotions", 0))])
    return columns, rows


def alert_rows(snapshot: Snapshot):
    columns = [Column("raised"), Column("model", min_width=10), _right("version"), Column("kind"),
               Column("severity"), Column("summary", ratio=1), Column("rolled back to")]
    rows = []
    for a in snapshot.alerts:
        raised = a.raised_at.astimezone() if a.raised_at.tzinfo else a.raised_at.replace(tzinfo=dt.timezone.utc)
        rows.append([raised.strftime("%m-%d %H:%M:%S"), a.model, f"v{a.version}", a.kind,
                     Text(a.severity, style="bold red" if a.severity in ("critical", "error") else "yellow"),
                     a.summary, "" if a.rolled_back_to is None else f"v{a.rolled_back_to}"])
    return columns, rows
