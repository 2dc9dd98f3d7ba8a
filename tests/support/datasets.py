"""Bundled data written as the files a user would ingest."""

from __future__ import annotations

NUMERIC_SPEC = 'label = "label"\nkey = "id"\n' + "".join(
    f'[[steps]]\nname = "f{i}"\ntransform = "numeric"\ncolumns = ["f{i}"]\n' for i in range(30))


def cancer_rows():
    """(id, {f0..f29: value}, label) of scikit-learn's bundled breast-cancer data."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return [(f"p{i}", {f"f{j}": float(v) for j, v in enumerate(row)}, int(label))
            for i, (row, label) in enumerate(zip(data.data, data.target))]


def cancer_csv(path) -> str:
    lines = ["id," + ",".join(f"f{i}" for i in range(30)) + ",label"]
    for key, values, label in cancer_rows():
        lines.append(f"{key}," + ",".join(repr(v) for v in values.values()) + f",{label}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)
