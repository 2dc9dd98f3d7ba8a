"""The client's view of monitoring: per model version, what the monitor last stored
(counts, latency over the window, drift, accuracy), and the alerts it raised.

    >>> async with Conveyor.connect() as conveyor:            # doctest: +SKIP
    ...     for v in await conveyor.monitoring("cancer"):
    ...         print(v.version, v.n_served, v.latency_p99_ms, v.drifting_features())
    ...     print([a.summary for a in await conveyor.alerts("cancer")])
"""

from __future__ import annotations

import datetime as dt
import json

import msgspec

from client.errors import Refused
from client.scoring import NAME


class MonitoringRefused(Refused):
    """A monitoring query refused (a bad model name or limit, or a model never monitored)."""


class Drift(msgspec.Struct, frozen=True):
    psi: float
    ks: float
    p_value: float


class VersionSummary(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    version: int
    n_served: int                   # answers to requests routed to this version
    n_fallback: int                 # ... given by a fallback (the previous version or the baseline)
    n_errors: int                   # ... whose primary failed
    n_late: int                     # ... whose primary missed the deadline
    window_s: float
    n_window: int                   # answers in the latency window
    latency_min_ms: float | None
    latency_mean_ms: float | None
    latency_max_ms: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    n_observed: int                 # answers joined to an observed outcome
    accuracy: float | None
    mae: float | None
    n_drift_sample: int             # newest input vectors compared with the training reference
    feature_drift: dict[str, Drift]
    prediction_drift: Drift | None
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    updated_at: dt.datetime

    @property
    def fallback_rate(self) -> float:
        return self.n_fallback / self.n_served if self.n_served else 0.0

    def drifting_features(self, psi_above: float = 0.25) -> list[str]:
        """Features whose PSI is above ``psi_above``, most drifted first."""
        return [n for n, d in sorted(self.feature_drift.items(), key=lambda kv: -kv[1].psi) if d.psi > psi_above]


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    alert_id: str
    model: str
    version: int
    kind: str
    severity: str
    value: float
    threshold: float
    summary: str
    details: dict[str, float]
    rolled_back_to: int | None      # the version production moved to, when the alert rolled it back
    raised_at: dt.datetime
    evidence: list[str] = []        # request ids behind it: client.get_score(request_id) shows each


def check_model(model) -> None:
    if model is not None and (not isinstance(model, str) or not NAME.match(model)):
        raise MonitoringRefused("model", "letters, digits, '_', '.', '-'; starts with a letter; at most 63")


class MonitoringQueries:
    """Mixed into :class:`client.connection.Conveyor` (needs its ``_db``)."""

    async def monitoring(self, model: str | None = None) -> list[VersionSummary]:
        """Every monitored version (of ``model``), newest figures first stored by the monitor."""
        check_model(model)
        rows = await (await self._db()).fetch(
            "SELECT * FROM monitor_versions WHERE $1::text IS NULL OR model = $1 ORDER BY model, version", model)
        if model is not None and not rows:
            raise MonitoringRefused("model", f"{model!r} has no monitored answers yet (is it deployed and scored?)")
        out = []
        for r in rows:
            row = dict(r)
            row["feature_drift"] = json.loads(row["feature_drift"])
            row["prediction_drift"] = json.loads(row["prediction_drift"]) if row["prediction_drift"] else None
            out.append(msgspec.convert(row, VersionSummary, from_attributes=False, strict=False))
        return out

    async def alerts(self, model: str | None = None, limit: int = 20) -> list[Alert]:
        """The newest ``limit`` alerts (of ``model``), newest first."""
        check_model(model)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise MonitoringRefused("limit", f"from 1 to 10,000; got {limit!r}")
        rows = await (await self._db()).fetch(
            "SELECT alert_id, model, version, kind, severity, value, threshold, summary, details, rolled_back_to,"
            " raised_at, evidence"
            " FROM alerts WHERE $1::text IS NULL OR model = $1 ORDER BY raised_at DESC, alert_id LIMIT $2",
            model, limit)
        return [msgspec.convert({**dict(r), "details": json.loads(r["details"])}, Alert, strict=False) for r in rows]

    async def restore(self, model: str, timeout_s: float = 60) -> dict:
        """Undo the newest automatic rollback of ``model``: the version it rolled back from goes
        back to production (it is still live as ``previous``) and is measured afresh; an audit
        record says so. :class:`MonitoringRefused` when there is nothing to undo or production
        has moved since."""
        check_model(model)
        if model is None:
            raise MonitoringRefused("model", "name the model to restore")
        row = await (await self._db()).fetchrow(
            "SELECT detail FROM audit_log WHERE action = 'model.rollback' AND subject = $1 ORDER BY id DESC LIMIT 1",
            model)
        detail = json.loads(row["detail"]) if row is not None else {}
        if not str(detail.get("reason") or "").startswith("automatic:"):
            raise MonitoringRefused("model", f"{model!r} has no automatic rollback to undo")
        demoted, current = detail["previous_version"], detail["version"]
        live = {d["version"]: d["aliases"] for d in await self.deployments(model)}
        if "production" not in live.get(current, []) or "previous" not in live.get(demoted, []):
            raise MonitoringRefused("model", f"production of {model!r} has moved since it was rolled back from "
                                             f"v{demoted} to v{current}; deploy the version you want instead")
        monitor = await self._cluster_actor("root.monitor")
        if monitor is not None:
            import asyncio

            await asyncio.wait_for(monitor.request.remote("restored", model, demoted), timeout=timeout_s)
        return await self._serve_request("rollback", timeout_s, model,
                                         f"restored: v{demoted} back to production by an operator, undoing the "
                                         f"automatic rollback to v{current}", demoted)
