"""Replaying a dataset as a stream of events: the datasets River and scikit-learn ship
(read from the installed packages, nothing downloaded), River's seeded synthetic
generators, or a CSV/JSONL file. Each row becomes a ``stream.event`` (its label in the
event, or sent later as a ``stream.observation``), published in order at a given rate.

Examples
--------
>>> rows = dataset_rows("phishing")
>>> x, y = next(iter(rows))
>>> sorted(x)[:3], y
(['age_of_domain', 'anchor_from_other_domain', 'empty_server_form_handler'], True)
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import time
from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

from client.errors import Refused

RIVER_FILES = {"phishing": "Phishing", "bananas": "Bananas", "trump_approval": "TrumpApproval",
               "chick_weights": "ChickWeights", "image_segments": "ImageSegments", "water_flow": "WaterFlow"}
SKLEARN = {"breast_cancer": "load_breast_cancer", "iris": "load_iris", "wine": "load_wine",
           "diabetes": "load_diabetes"}
SYNTHETIC = {"agrawal": "Agrawal", "sea": "SEA", "hyperplane": "Hyperplane"}
MAX_FILE_BYTES = 1 << 30


class StreamRefused(Refused):
    """A dataset or stream option that cannot be replayed."""


def bundled_names() -> list[str]:
    return sorted([*RIVER_FILES, *SKLEARN, *SYNTHETIC])


def dataset_rows(name: str, seed: int = 42) -> Iterable[tuple[dict, object]]:
    """(features, label) pairs of a bundled dataset or a CSV/JSONL file (whose ``label``
    column is the label)."""
    if name in RIVER_FILES:
        from river import datasets

        return getattr(datasets, RIVER_FILES[name])()
    if name in SKLEARN:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, SKLEARN[name])()
        names = [str(n).replace(" ", "_") for n in bunch.feature_names]
        return [({n: float(v) for n, v in zip(names, row)}, y.item()) for row, y in zip(bunch.data, bunch.target)]
    if name in SYNTHETIC:
        from river.datasets import synth

        return getattr(synth, SYNTHETIC[name])(seed=seed)
    return _file_rows(Path(name))


def _file_rows(path: Path) -> Iterator[tuple[dict, object]]:
    if not path.is_file():
        raise StreamRefused("dataset", f"{str(path)!r} is neither a bundled dataset ({', '.join(bundled_names())})"
                                       " nor a readable file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise StreamRefused("dataset", f"{path} is larger than 1 GiB")
    if path.suffix == ".jsonl":
        def rows():
            with path.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        record = json.loads(line)
                        yield record, record.pop("label", None)
        return rows()

    def csv_rows():
        with path.open(encoding="utf-8", newline="") as f:
            for record in csv.DictReader(f):
                values = {k: _number(v) for k, v in record.items() if k is not None}
                yield values, values.pop("label", None)
    return csv_rows()


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return None if text == "" else text


def _scalar(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def build_events(rows: Iterable[tuple[dict, object]], stream: str, *, label_field: str = "label",
                 labels: str = "inline", label_delay: int = 100, entity_key: str | None = None,
                 key_field: str | None = None, limit: int | None = None) -> Iterator[list]:
    """The messages to publish, one list per row: the event, then any observations due.
    ``labels``: ``inline`` (in the event), ``later`` (an observation ``label_delay`` events
    later), ``none``."""
    from messages.stream import Observation, StreamEvent

    waiting: deque = deque()
    for i, (x, y) in enumerate(itertools.islice(rows, limit)):
        values = {str(k): _scalar(v) for k, v in x.items()}
        key = entity_key or (str(values[key_field]) if key_field and key_field in values else f"{stream}-{i}")
        if labels == "inline" and y is not None:
            values[label_field] = _scalar(y)
        try:
            event = StreamEvent(stream=stream, entity_key=key, values=values)
        except ValueError as exc:          # a column name no event may carry
            raise StreamRefused(f"row {i}", str(exc)) from None
        out = [event]
        if labels == "later" and y is not None:
            waiting.append(Observation(stream=stream, event_id=event.msg_id, entity_key=key, label=_scalar(y)))
            if len(waiting) > label_delay:
                out.append(waiting.popleft())
        yield out
    if waiting:
        yield list(waiting)


async def replay(conveyor, messages: Iterator[list], rate: float = 0.0, chunk: int = 500,
                 on_progress=lambda n, elapsed: None) -> int:
    """Publish ``messages`` in order, ``rate`` events per second (0: as fast as the broker takes
    them), in chunks; the number of events published."""
    n_events = 0
    began = time.monotonic()
    buffer: list = []
    for group in messages:
        buffer.extend(group)
        n_events += sum(1 for m in group if type(m).__name__ == "StreamEvent")
        if len(buffer) >= chunk or (rate and n_events % max(1, int(rate / 10)) == 0):
            await conveyor.submit_many(buffer)
            buffer = []
            on_progress(n_events, time.monotonic() - began)
            if rate:
                ahead = n_events / rate - (time.monotonic() - began)
                if ahead > 0:
                    await asyncio.sleep(ahead)
    if buffer:
        await conveyor.submit_many(buffer)
    on_progress(n_events, time.monotonic() - began)
    return n_events
