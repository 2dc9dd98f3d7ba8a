"""The feature set of a join: its sources' fitted feature sets side by side.

A join (see :mod:`ml.join`) concatenates, per row of its first source, the vectors of
every source's feature set. A model trained on those rows serves raw requests with
:class:`JoinedFeatureSet`, which runs each source's own fitted feature set on the same
raw row and concatenates the results in the join's order, so a request names the
columns of every source once. Feature names are prefixed with their source's dataset.

Bytes are JSON (no pickle): the join's name, its run, and each source's own feature set
bytes; :func:`load_feature_set` reads these and a plain :class:`~ml.features.FittedFeatureSet`
alike. The id is derived from the content, so altered bytes are refused.

Examples
--------
>>> from ml.features import FeatureSpec, StepSpec, fit_feature_set
>>> ages = fit_feature_set(FeatureSpec(key="id", steps=[StepSpec("age", "numeric", ["age"])]), [{"id": "a", "age": 3}])
>>> spend = fit_feature_set(FeatureSpec(key="id", steps=[StepSpec("spend", "numeric", ["spend"])]),
...                         [{"id": "a", "spend": 9.5}])
>>> joined = JoinedFeatureSet("people", "run1", [("ages", ages), ("spend", spend)])
>>> joined.feature_names
('ages.age', 'spend.spend')
>>> joined.transform_one({"age": 40, "spend": 12.0}).tolist()
[40.0, 12.0]
>>> load_feature_set(joined.to_bytes()).feature_set_id == joined.feature_set_id
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import numpy as np

from ml.features import FeatureSpecError, FittedFeatureSet
from ml.quality import QualityReport

_PREFIX = b'{"joined":'
_ID_HEX = 20


class JoinedSpec(msgspec.Struct, frozen=True):
    """What callers read of a spec: a joined set has no key column of its own (each source
    fills its own), and the label of its first source."""

    key: str | None = None
    label: str | None = None


class _Envelope(msgspec.Struct, frozen=True):
    joined: str
    run_id: str
    parts: list[tuple[str, msgspec.Raw]]


class JoinedFeatureSet:
    """Sources' fitted feature sets applied to one raw row each and concatenated."""

    def __init__(self, join: str, run_id: str, parts: list[tuple[str, FittedFeatureSet]]) -> None:
        if len(parts) < 2:
            raise FeatureSpecError("parts", "a joined feature set has at least two sources")
        self.join, self.run_id, self.parts = join, run_id, list(parts)
        self._bytes = msgspec.json.encode(
            _Envelope(join, run_id, [(d, msgspec.Raw(fs.to_bytes())) for d, fs in self.parts]))
        self._id = hashlib.sha256(self._bytes).hexdigest()[:_ID_HEX]

    @property
    def feature_set_id(self) -> str:
        return self._id

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f"{dataset}.{name}" for dataset, fs in self.parts for name in fs.feature_names)

    @property
    def n_features(self) -> int:
        return sum(fs.n_features for _, fs in self.parts)

    @property
    def spec(self) -> JoinedSpec:
        return JoinedSpec(key=None, label=self.parts[0][1].spec.label)

    @property
    def label_kind(self) -> str | None:
        return self.parts[0][1].label_kind

    @property
    def sources(self) -> list[tuple[str, str]]:
        """(dataset, feature_set_id) of every source, in the join's order."""
        return [(dataset, fs.feature_set_id) for dataset, fs in self.parts]

    def __repr__(self) -> str:
        return f"JoinedFeatureSet(id={self._id!r}, join={self.join!r}, sources={[d for d, _ in self.parts]})"

    def transform_one(self, row: Mapping[str, Any]) -> np.ndarray:
        """The joined vector of one raw row; :class:`ml.quality.QuarantineError` from the first
        source that refuses it."""
        return np.concatenate([fs.transform_one(_keyed(row, fs)) for _, fs in self.parts])

    def transform_batch(self, rows: Iterable[Mapping[str, Any]], *, with_label: bool | None = None
                        ) -> tuple[np.ndarray, np.ndarray | None, QualityReport]:
        """The joined vectors of the rows every source keeps; the label as the first source reads it."""
        rows = list(rows)
        outputs = []
        for i, (_, fs) in enumerate(self.parts):
            outputs.append(fs.transform_batch([_keyed(r, fs) for r in rows], with_label=with_label if i == 0 else False))
        kept = sorted(set.intersection(*(set(report.kept) for _, _, report in outputs)))
        blocks = []
        for X, _, report in outputs:
            position = {index: j for j, index in enumerate(report.kept)}
            blocks.append(X[[position[i] for i in kept]].reshape(len(kept), X.shape[1]))
        _, y0, first = outputs[0]
        y = None if y0 is None else y0[[{k: j for j, k in enumerate(first.kept)}[i] for i in kept]]
        refused = {}
        for _, _, report in outputs:
            for q in report.quarantined:
                refused.setdefault(q.index, q)
        report = msgspec.structs.replace(first, kept=tuple(kept), feature_set_id=self._id,
                                         quarantined=tuple(refused[i] for i in sorted(refused)))
        return np.hstack(blocks), y, report

    def to_bytes(self) -> bytes:
        return self._bytes


def _keyed(row: Mapping[str, Any], fs: FittedFeatureSet) -> Mapping[str, Any]:
    """The row with the source's key column filled: the entity key names a row, it is no feature."""
    key = fs.spec.key
    return row if key is None or row.get(key) is not None else {**row, key: "request"}


def request_columns(feature_set: FittedFeatureSet | JoinedFeatureSet) -> list[str]:
    """The raw columns a request names (every source's once; key and label left out).

    >>> from ml.features import FeatureSpec, StepSpec, fit_feature_set
    >>> fs = fit_feature_set(FeatureSpec(key="id", steps=[StepSpec("a", "numeric", ["a"])]), [{"id": "x", "a": 1}])
    >>> request_columns(fs), request_columns(JoinedFeatureSet("j", "r", [("d1", fs), ("d2", fs)]))
    (['a'], ['a'])
    """
    parts = feature_set.parts if isinstance(feature_set, JoinedFeatureSet) else [("", feature_set)]
    columns: list[str] = []
    for _, part in parts:
        spec = part.spec
        columns += [c for c in spec.raw_columns if c not in (spec.key, spec.label) and c not in columns]
    return columns


def load_feature_set(data: bytes) -> FittedFeatureSet | JoinedFeatureSet:
    """The feature set (plain or joined) that ``to_bytes`` wrote.

    >>> load_feature_set(b'{"joined": 1}')
    Traceback (most recent call last):
    ...
    ml.transforms.FeatureSpecError: bytes: not a joined feature set: Expected `str`, got `int` - at `$.joined`
    """
    if bytes(data[:len(_PREFIX)]) != _PREFIX:
        return FittedFeatureSet.from_bytes(data)
    try:
        envelope = msgspec.json.decode(data, type=_Envelope)
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise FeatureSpecError("bytes", f"not a joined feature set: {err}") from None
    joined = JoinedFeatureSet(envelope.joined, envelope.run_id,
                              [(dataset, FittedFeatureSet.from_bytes(bytes(raw))) for dataset, raw in envelope.parts])
    if joined.to_bytes() != bytes(data):
        raise FeatureSpecError("bytes", "the joined feature set's content is not in its own form (altered or corrupt)")
    return joined
