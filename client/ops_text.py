"""Plain-text views of lineage, audit, schedule and data-service results for the CLI
(pure functions; ``--json`` prints the typed results instead).

    >>> print(table(["id", "rows"], [["a1", "10"], ["b2", "2,000"]]))
    id  rows
    a1  10
    b2  2,000
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import msgspec


def when(at: dt.datetime | None) -> str:
    """A timestamp in local time to the second; ``-`` for none.

    >>> when(None)
    '-'
    """
    return "-" if at is None else at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def number(value: float | None) -> str:
    """A metric to four decimals; ``n/a`` for none.

    >>> number(0.98765), number(None)
    ('0.9877', 'n/a')
    """
    return "n/a" if value is None else f"{value:.4f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell (the last one is not padded)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [headers, *rows])


def json_text(value) -> str:
    """Indented JSON of typed results (datetimes as ISO-8601)."""
    return msgspec.json.format(msgspec.json.encode(value)).decode()


def lineage_text(found) -> str:
    """batches → feature set → model version → deployments → scores, one block each."""
    m, fs, s = found.model, found.feature_set, found.scores
    lines = [f"lineage of {m.model} v{m.version}", "batches"]
    for b in found.batches:
        raw = b.batch
        lines.append(f"  {raw.batch_id}  {raw.dataset}  {raw.n_rows:,} rows, {raw.n_rejected:,} rejected, "
                     f"{b.n_feature_rows:,} prepared  {raw.state} {when(raw.completed_at)}  {raw.source_path}")
    if not found.batches:
        lines.append("  (none recorded)")
    lines.append("→ feature set")
    if fs is None:
        lines.append("  (no longer stored)")
    else:
        lines.append(f"  {fs.feature_set_id}  {fs.dataset}  {len(fs.feature_names)} features, {fs.n_rows:,} rows "
                     f"from {fs.n_batches} batch(es), fitted on {fs.fitted_on_batch}  {when(fs.created_at)}")
    metric = next((k for k in ("roc_auc", "rmse", "silhouette") if k in m.metrics), None)
    lines += ["→ model version",
              f"  {m.model} v{m.version}  {m.name} ({m.algorithm})  candidate {m.candidate_id}  run {m.run_id}",
              f"  trained on {m.n_train:,} rows  {when(m.created_at)}"
              + (f"  {metric}={number(m.metrics.get(metric))}" if metric else "")
              + f"  {'deployable' if m.deployable else 'not deployable'}",
              "→ deployments"]
    for d in found.deployments:
        lines.append(f"  v{d.version} {d.state}" + (f" as {', '.join(d.aliases)}" if d.aliases else "")
                     + f", {d.replicas} replicas" + (f", canary {d.canary_weight:.0%}" if d.canary_weight else "")
                     + f", deployed {when(d.deployed_at)}" + (f", retired {when(d.retired_at)}" if d.retired_at
                                                              else ""))
        for e in d.history:
            moved = f"v{e.previous_version} -> v{e.version}" if e.previous_version else f"-> v{e.version}"
            lines.append(f"    {when(e.at)}  {e.action}: {e.alias or 'production'} {moved}  by {e.actor}")
    if not found.deployments:
        lines.append("  (never deployed)")
    by = ", ".join(f"{c.n:,} {c.answered_by}" for c in s.online)
    lines += ["→ scores", f"  online: {s.n_online:,} answers" + (f" ({by})" if by else "")]
    if s.online:
        lines[-1] += (f", first {when(min(c.first_at for c in s.online))}, "
                      f"last {when(max(c.last_at for c in s.online))}")
    lines.append(f"  batch: {s.n_batch_rows:,} rows in {len(s.batch_jobs)} job(s)")
    for j in s.batch_jobs:
        lines.append(f"    {j.job_id}  {j.state}  {j.n_stored:,} rows of feature set {j.feature_set_id}  "
                     f"{when(j.created_at)}")
    return "\n".join(lines)


def audit_text(records) -> str:
    from client.audit import summary

    return table(["at", "actor", "action", "subject", "detail"],
                 [[when(r.at), r.actor, r.action, r.subject, summary(r.detail)] for r in records])


def schedules_text(found) -> str:
    return table(["schedule", "cron", "next run", "runs", "last run", "what"],
                 [[s.schedule_id, s.cron, when(s.next_run_at), str(s.n_runs), when(s.last_run_at), s.what]
                  for s in found])


def batches_text(found) -> str:
    return table(["batch", "dataset", "format", "rows", "rejected", "state", "created", "source"],
                 [[b.batch_id, b.dataset, b.format, f"{b.n_rows:,}", f"{b.n_rejected:,}", b.state, when(b.created_at),
                   b.source_path] for b in found])


def rejects_text(found) -> str:
    return table(["line", "field", "reason", "raw"],
                 [[str(r.line_no), r.field or "-", r.reason, r.raw[:60]] for r in found])


def feature_sets_text(found) -> str:
    def names(s) -> str:
        shown = ", ".join(s.feature_names[:4])
        return shown + (f", ... ({len(s.feature_names)})" if len(s.feature_names) > 4 else "")

    return table(["feature set", "dataset", "rows", "batches", "fitted on", "created", "features"],
                 [[s.feature_set_id, s.dataset, f"{s.n_rows:,}", str(s.n_batches), s.fitted_on_batch,
                   when(s.created_at), names(s)] for s in found])


def scores_text(found) -> str:
    return table(["scored at", "request", "version", "by", "score", "label", "latency ms", "entity"],
                 [[when(r.scored_at), r.request_id, "-" if r.version is None else f"v{r.version}", r.answered_by,
                   number(r.score), r.label or "-", f"{r.latency_ms:.2f}", r.entity_key or "-"] for r in found])


def score_counts_text(found) -> str:
    return table(["version", "answered by", "answers", "first", "last"],
                 [["-" if c.version is None else f"v{c.version}", c.answered_by, f"{c.n:,}", when(c.first_at),
                   when(c.last_at)] for c in found])


def score_jobs_text(found) -> str:
    return table(["job", "model", "version", "state", "rows", "stored", "feature set", "created"],
                 [[j.job_id, j.model, "-" if j.version is None else f"v{j.version}", j.state,
                   "-" if j.n_rows is None else f"{j.n_rows:,}", f"{j.n_stored:,}", j.feature_set_id or "-",
                   when(j.created_at)] for j in found])
