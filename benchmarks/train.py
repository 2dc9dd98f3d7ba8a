#!/usr/bin/env python
"""Training wall time through the pipeline beside the same candidates fit one after
another in one process (the floor), measured in the same run.

    python benchmarks/train.py [--rows N] [--runs K]      # default 20,000 rows, 3 runs

A seeded two-class problem (``sklearn.datasets.make_classification``: N rows, 20
features) is written as CSV, ingested and prepared (20 numeric features) in a fresh
embedded cluster started with ``python run.py cluster start`` and always stopped again.

Figure: the wall time of ``client.train(config)`` -> ``wait_trained`` for four
candidates (random forest, gradient boosting, logistic regression, decision tree):
loading the feature set from PostgreSQL, the split, one actor per candidate, the fits,
the evaluation on the test side, the signed artifacts stored and the verdict.

Floor, same run, same rows: the same split (``client.training_split``), then the same
four scikit-learn estimators fit one after another in this process, each followed by
the same evaluation (``ml.evaluators.evaluate`` of its predictions on the test side).
Goal: pipeline <= 0.75 x floor (2 cores), the median of the runs' ratios (each run's
pipeline beside the floor measured next to it: the machine's load swings). Each side
starts once the machine has settled (``benchmarks.quiet``): neither pays for the actors
the cluster starts after a run. The runs begin once the coordinator's warm candidate
actors are up (a fresh cluster starts them ``actors.training.WARM_AFTER_S`` after the
coordinator): a run that comes before starts its actors cold, ~3 s more here, once.

Fixed overhead: a trivial candidate (a depth-1 decision tree) end to end through the
pipeline, beside its fit + evaluation in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 0.75
N_FEATURES = 20

CANDIDATES = {
    "forest": ("sklearn.random_forest", {"n_estimators": 100}),
    "boost": ("sklearn.gradient_boosting", {"n_estimators": 70}),
    "lr": ("sklearn.logistic_regression", {"max_iter": 1000}),
    "tree": ("sklearn.decision_tree", {}),
}
TRIVIAL = {"stump": ("sklearn.decision_tree", {"max_depth": 1})}


def _project_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def write_csv(path: Path, n_rows: int, seed: int) -> None:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n_rows, n_features=N_FEATURES, n_informative=8, random_state=seed)
    with open(path, "w") as f:
        f.write("id," + ",".join(f"x{i}" for i in range(N_FEATURES)) + ",label\n")
        for i, (row, label) in enumerate(zip(X, y)):
            f.write(f"r{i}," + ",".join(f"{v:.6f}" for v in row) + f",{label}\n")


def spec_toml() -> str:
    return 'label = "label"\nkey = "id"\n' + "".join(
        f'[[steps]]\nname = "x{i}"\ntransform = "numeric"\ncolumns = ["x{i}"]\n' for i in range(N_FEATURES))


def train_toml(model: str, dataset: str, candidates: dict) -> str:
    lines = [f'model = "{model}"', f'dataset = "{dataset}"', 'metric = "roc_auc"',
             '[split]', 'strategy = "stratified"', 'ratio = 0.8', 'seed = 0']
    for name, (algorithm, params) in candidates.items():
        inline = ", ".join(f"{k} = {v}" for k, v in params.items())
        lines += ["[[candidates]]", f'name = "{name}"', f'algorithm = "{algorithm}"', f"params = {{ {inline} }}"]
    return "\n".join(lines) + "\n"


async def prepare_dataset(conveyor, dataset: str, csv_path: Path) -> str:
    await conveyor.set_feature_spec(dataset, spec_toml())
    request = await conveyor.ingest(dataset, str(csv_path), key="id", label="label")
    await conveyor.wait_ingested(request, dataset, timeout_s=600)
    db = await conveyor._db()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        fsid = await db.fetchval("SELECT feature_set_id FROM feature_sets WHERE dataset = $1", dataset)
        if fsid and await db.fetchval("SELECT 1 FROM feature_quality WHERE feature_set_id = $1", fsid):
            return fsid
        await asyncio.sleep(0.2)
    raise TimeoutError("features were not prepared within 600 s")


async def pipeline_s(conveyor, model: str, dataset: str, candidates: dict) -> tuple[float, dict]:
    began = time.perf_counter()
    run_id = await conveyor.train(train_toml(model, dataset, candidates))
    done = await conveyor.wait_trained(run_id, timeout_s=1800)
    elapsed = time.perf_counter() - began
    fits = {c["name"]: c["fit_s"] for c in await conveyor.candidates(model) if c["run_id"] == run_id}
    return elapsed, {"fits": fits, "best": done.best_candidate, "score": done.score}


def floor_s(split_data, candidates: dict) -> tuple[float, dict]:
    """The same estimators fit one after another here, each evaluated like the pipeline does."""
    from ml.algorithms import build
    from ml.evaluators import evaluate

    X_train, X_test, y_train, y_test = split_data
    each = {}
    began = time.perf_counter()
    for name, (algorithm, params) in candidates.items():
        t = time.perf_counter()
        model = build(algorithm, params).fit(X_train, y_train)
        evaluate("classification", y_test, y_pred=model.predict(X_test), y_score=model.predict_proba(X_test),
                 labels=model.classes_.tolist())
        each[name] = time.perf_counter() - t
    return time.perf_counter() - began, each


async def measure(cluster, n_rows: int, runs: int, errors: list[str]) -> list[dict]:
    from benchmarks.quiet import settle, warm_pool_started
    from client.connection import Conveyor
    from storage.settings import load_settings

    settings = load_settings(None, {"CONVEYOR_STATE_DIR": str(cluster.state), "CONVEYOR_CLUSTER_NAME": cluster.name})
    csv_path = cluster.state / "train-bench.csv"
    write_csv(csv_path, n_rows, seed=0)
    results = []
    async with Conveyor.connect(settings) as conveyor:
        dataset = f"bench-{uuid.uuid4().hex[:6]}"
        fsid = await prepare_dataset(conveyor, dataset, csv_path)
        await conveyor.status()     # joins the cluster's Ray: the warm actors are looked up there
        await warm_pool_started(settings.cluster_name, settings.training_warm_actors)
        _, X_train, X_test, y_train, y_test = await conveyor.training_split(fsid, strategy="stratified", ratio=0.8,
                                                                           seed=0)
        data = (X_train, X_test, y_train, y_test)
        floor_s(data, TRIVIAL)  # warm this process's imports, as the pipeline's actors warm theirs
        for run in range(runs):
            try:
                order = ("pipeline", "floor") if run % 2 == 0 else ("floor", "pipeline")
                r: dict = {}
                for side in order:
                    await settle()      # each side beside the idle cluster only
                    if side == "pipeline":
                        r["pipeline_s"], r["pipeline"] = await pipeline_s(conveyor, f"bench{run}", dataset,
                                                                          CANDIDATES)
                    else:
                        r["floor_s"], r["floor"] = floor_s(data, CANDIDATES)
                await settle()
                r["trivial_s"], _ = await pipeline_s(conveyor, f"trivial{run}", dataset, TRIVIAL)
                r["trivial_floor_s"], _ = floor_s(data, TRIVIAL)
                results.append(r)
                print(f"  run {run + 1}: pipeline {r['pipeline_s']:.2f} s, floor {r['floor_s']:.2f} s, "
                      f"ratio {r['pipeline_s'] / r['floor_s']:.2f}; trivial {r['trivial_s']:.2f} s "
                      f"(floor {r['trivial_floor_s']:.3f} s)", flush=True)
            except Exception as exc:
                errors.append(f"run {run + 1}: {type(exc).__name__}: {exc}")
    return results


def report(results: list[dict], n_rows: int) -> bool:
    if not results:
        return False
    med = lambda key: statistics.median(r[key] for r in results)  # noqa: E731
    pipeline, floor = med("pipeline_s"), med("floor_s")
    ratio = statistics.median(r["pipeline_s"] / r["floor_s"] for r in results)   # each run beside its own floor
    print(f"\nTraining 4 candidates ({', '.join(CANDIDATES)}) on {int(n_rows * 0.8):,} rows x {N_FEATURES} features,"
          f" median of {len(results)} run(s):")
    print("| what | conveyor | floor | ratio | goal |\n|---|---|---|---|---|")
    print(f"| 4 candidates end to end | {pipeline:.2f} s | {floor:.2f} s (one after another, in process) | "
          f"{ratio:.2f} (median of the runs' ratios) | <= {GOAL_RATIO}: "
          f"{'met' if ratio <= GOAL_RATIO else 'NOT MET'} |")
    trivial, trivial_floor = med("trivial_s"), med("trivial_floor_s")
    print(f"| fixed overhead (depth-1 tree end to end) | {trivial:.2f} s | {trivial_floor:.3f} s | "
          f"overhead {trivial - trivial_floor:.2f} s | - |")
    last = results[-1]
    print("\nper candidate (last run): " + ", ".join(
        f"{name} fit {last['pipeline']['fits'].get(name, float('nan')):.2f} s in its actor vs "
        f"{last['floor'][name]:.2f} s here" for name in CANDIDATES))
    return ratio <= GOAL_RATIO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    _project_on_path()
    from benchmarks.ingest import Cluster
    from benchmarks.report import print_errors

    errors: list[str] = []
    cluster = Cluster()
    try:
        print(f"starting a cluster in {cluster.state} ...", flush=True)
        cluster.start()
        results = asyncio.run(measure(cluster, args.rows, args.runs, errors))
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        results = []
    finally:
        errors.extend(cluster.stop())
    report(results, args.rows)
    print_errors(errors)
    return 0 if results and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
