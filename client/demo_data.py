"""The demo's data and configs: scikit-learn's bundled breast-cancer data (569 patients,
30 measurements, malignant or benign) written as two CSV sources that share a patient id,
the feature specs, the training configs and the online learner's config. Nothing here
talks to a cluster; the files go where the caller says.

Examples
--------
>>> columns, rows = cancer_table()
>>> len(rows), columns[:2], rows[0][0]
(569, ['mean_radius', 'mean_texture'], 'p0')
>>> means, worst = split_columns(columns)
>>> len(means), len(worst), worst[0]
(20, 10, 'worst_radius')
>>> print(numeric_spec(["a"], label="label"))
key = "id"
label = "label"
[[steps]]
name = "a"
transform = "numeric"
columns = ["a"]
<BLANKLINE>
"""

from __future__ import annotations

import csv
from pathlib import Path

#: Candidates of the main training run: the quick variant trains the first three.
CANDIDATES = [
    ("logistic", "sklearn.logistic_regression", "params = { max_iter = 5000, C = 0.5 }"),
    ("tree", "sklearn.decision_tree", "grid = { max_depth = [3, 5] }"),
    ("forest", "sklearn.random_forest", "params = { n_estimators = 100 }"),
    ("boosting", "sklearn.gradient_boosting", "params = { n_estimators = 100 }"),
    ("sgd", "sklearn.sgd_classifier", 'params = { loss = "log_loss" }'),
]


def cancer_table() -> tuple[list[str], list[tuple[str, list[float], int]]]:
    """(column names, rows of (patient id, 30 values, label 0 malignant / 1 benign))."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    columns = [str(name).replace(" ", "_") for name in data.feature_names]
    rows = [(f"p{i}", [float(v) for v in values], int(label))
            for i, (values, label) in enumerate(zip(data.data, data.target))]
    return columns, rows


def split_columns(columns: list[str]) -> tuple[list[str], list[str]]:
    """The two sources' columns: the means and standard errors, and the worst values."""
    worst = [c for c in columns if c.startswith("worst_")]
    return [c for c in columns if c not in worst], worst


def write_csv(path: Path, header: list[str], rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_sources(folder: Path) -> dict[str, Path]:
    """Two CSV files keyed by ``id``: ``means.csv`` (20 measurements and the label) and
    ``worst.csv`` (the 10 worst values); their paths."""
    columns, rows = cancer_table()
    means, worst = split_columns(columns)
    at = {c: i for i, c in enumerate(columns)}
    return {
        "means": write_csv(folder / "means.csv", ["id", *means, "label"],
                           ([key, *(values[at[c]] for c in means), label] for key, values, label in rows)),
        "worst": write_csv(folder / "worst.csv", ["id", *worst],
                           ([key, *(values[at[c]] for c in worst)] for key, values, _ in rows)),
    }


def numeric_spec(columns: list[str], label: str | None = None, key: str = "id") -> str:
    """A feature spec (TOML) taking every column as a number."""
    head = f'key = "{key}"\n' + (f'label = "{label}"\n' if label else "")
    return head + "".join(f'[[steps]]\nname = "{c}"\ntransform = "numeric"\ncolumns = ["{c}"]\n' for c in columns)


def training_config(model: str, dataset: str, candidates) -> str:
    """A training config: a stratified 80/20 split, ROC AUC picks the best."""
    text = (f'model = "{model}"\ndataset = "{dataset}"\nmetric = "roc_auc"\nmargin = 0.0\n'
            '[split]\nstrategy = "stratified"\nratio = 0.8\nseed = 0\n')
    return text + "".join(f'[[candidates]]\nname = "{name}"\nalgorithm = "{algorithm}"\n{extra}\n'
                          for name, algorithm, extra in candidates)


def slow_candidate(delay_s: float) -> list[tuple[str, str, str]]:
    return [("slow", "demo.slow_classifier", f"params = {{ delay_s = {delay_s} }}")]


def learner_config(name: str, stream: str) -> str:
    """River's standard scaler and logistic regression, learning from ``label`` in each event."""
    return f'name = "{name}"\nstream = "{stream}"\nlabel = "label"\n[model]\nalgorithm = "river.logistic_regression"\n'
