"""Client side of training: the checks made before a run is submitted, its progress,
and waiting for its verdict."""

from __future__ import annotations

import msgspec

from client.errors import ClientError, Refused


class TrainingRefused(Refused):
    """A training configuration refused before any worker starts."""


class TrainingFailed(ClientError):
    """A training run that failed; the message is the run's error."""


class TrainingProgress(msgspec.Struct, kw_only=True):
    run_id: str
    model: str
    state: str                       # pending, running, done, failed
    n_candidates: int
    n_trained: int
    error: str | None = None
    best_candidate: str | None = None
    metric: str | None = None
    score: float | None = None
    reference: str | None = None
    reference_score: float | None = None
    deployable: bool | None = None
    split_warnings: list[str] = []

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


def check_config(config_toml: str, plugins: str = ""):
    """The checked plan of a configuration, or :class:`TrainingRefused` naming the field
    (``plugins``: the modules that register the cluster's own algorithms)."""
    from actors.wiring import import_plugins
    from ml.training_config import TrainingConfigError, parse_config, plan_training

    try:
        import_plugins(plugins)
    except ImportError as exc:
        raise TrainingRefused("plugins", str(exc).split(": ", 1)[1]) from None
    try:
        return plan_training(parse_config(config_toml))
    except TrainingConfigError as exc:
        raise TrainingRefused(exc.field, exc.reason) from None


async def check_source(pool, plan) -> str:
    """The feature set the run will train on, checked: it exists, has rows, and (for
    classification) at least two classes among its labels."""
    config = plan.config
    if config.feature_set is not None:
        fsid = await pool.fetchval("SELECT feature_set_id FROM feature_sets WHERE feature_set_id = $1",
                                   config.feature_set)
        if fsid is None:
            raise TrainingRefused("feature_set", f"no feature set {config.feature_set!r}")
    else:
        fsid = await pool.fetchval("SELECT feature_set_id FROM feature_sets WHERE dataset = $1"
                                   " ORDER BY created_at DESC LIMIT 1", config.dataset)
        if fsid is None:
            raise TrainingRefused("dataset", f"{config.dataset!r} has no feature set yet (set its feature spec"
                                  " and ingest a batch)")
    stats = await pool.fetchrow("SELECT count(*) AS n, count(DISTINCT label) AS n_labels, count(label) AS n_labelled"
                                " FROM features WHERE feature_set_id = $1", fsid)
    if stats["n"] == 0:
        raise TrainingRefused("feature_set", f"{fsid} has no rows: an empty training set")
    if plan.task in ("classification", "regression") and stats["n_labelled"] < stats["n"]:
        raise TrainingRefused("feature_set", f"{stats['n'] - stats['n_labelled']} of {stats['n']} rows of {fsid}"
                              " have no label; a supervised run needs a label column")
    if plan.task == "classification" and stats["n_labels"] < 2:
        raise TrainingRefused("feature_set", f"every row of {fsid} has the same label: a single class cannot be "
                              "learnt")
    return fsid


async def progress(pool, run_id: str) -> TrainingProgress | None:
    row = await pool.fetchrow(
        "SELECT r.*, (SELECT count(*) FROM candidates c WHERE c.run_id = r.run_id) AS n_trained"
        " FROM training_runs r WHERE run_id = $1", run_id)
    if row is None:
        return None
    import json

    warnings = row["split_warnings"]
    return TrainingProgress(
        run_id=run_id, model=row["model"], state=row["state"], n_candidates=row["n_candidates"],
        n_trained=row["n_trained"], error=row["error"], best_candidate=row["best_candidate"], metric=row["metric"],
        score=row["score"], reference=row["reference"], reference_score=row["reference_score"],
        deployable=row["deployable"], split_warnings=json.loads(warnings) if isinstance(warnings, str) else warnings)


async def wait_for(pool, dsn: str, run_id: str, timeout_s: float, on_progress=None) -> TrainingProgress:
    """Wait until the run is done (its progress, read through ``pool``) or failed
    (:class:`TrainingFailed`): seen when it ends (:func:`client.finished.watch` on ``dsn``)."""
    from client.finished import watch

    current = await watch(dsn, "training_runs", run_id, lambda: progress(pool, run_id), lambda p: p.state,
                          timeout_s, on_progress)
    if current is None:
        raise TimeoutError(f"training run {run_id} not finished after {timeout_s:.0f} s")
    if current.state == "failed":
        raise TrainingFailed(f"training run {run_id} failed: {current.error}")
    return current


def render_curves(settings, candidate: dict) -> dict[str, str]:
    """PNG files of the candidate's stored ROC and PR curves (drawn once, under the state dir):
    ``{"roc": path, "pr": path}``, empty when it has no curves."""
    from ml.curves import Curve, render_png

    if not candidate.get("curves"):
        return {}
    curves = msgspec.msgpack.decode(candidate["curves"], type=dict[str, Curve])
    folder = settings.state_path / "models" / candidate["model"] / f"v{candidate['version']}"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, curve in curves.items():
        path = folder / f"{kind}.png"
        if not path.exists():
            render_png(curve, path, title=f"{candidate['model']} v{candidate['version']} ({candidate['name']}): "
                                          f"{'ROC' if kind == 'roc' else 'precision-recall'}")
        out[kind] = str(path)
    return out
