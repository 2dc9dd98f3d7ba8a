"""Client side of offline ingestion: check a source, submit it, follow it to the end."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import msgspec

from client.errors import ClientError, Refused


class IngestRefused(Refused):
    """The source cannot be ingested (nothing was submitted)."""


class IngestFailed(ClientError):
    """The pipeline accepted the request but could not ingest the source."""


class IngestProgress(msgspec.Struct, kw_only=True):
    """Where an ingestion request stands."""

    request_id: str
    dataset: str
    state: str                      # submitted | loading | complete | duplicate | failed
    batch_id: str | None = None
    n_rows: int = 0                 # stored so far (final once complete)
    n_rejected: int = 0
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("complete", "duplicate", "failed")


def check_source(dataset: str, path: str | Path, fmt: str | None, key: str | None, time_column: str | None,
                 label: str | None) -> tuple[str, str]:
    """(absolute path, format) of a source that can be ingested, else :class:`IngestRefused`."""
    from actors.batch_parse import IngestError, check_options, parse_file, validate_dataset_name

    fmt = fmt or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}.get(
        Path(path).suffix.lower())
    if fmt is None:
        raise IngestRefused("format", f"cannot tell the format of {str(path)!r}; pass --format csv|jsonl|parquet")
    absolute = os.path.abspath(path)
    try:
        validate_dataset_name(dataset)
        check_options(fmt, key=key, time=time_column, label=label)
        if not os.path.isfile(absolute):
            raise IngestError("path", f"{str(path)!r} is not a file")
        next(iter(parse_file(absolute, fmt, key=key, time=time_column, label=label)), None)
    except IngestError as exc:
        raise IngestRefused(exc.field, exc.reason) from None
    return absolute, fmt


async def ingest_progress(pool, request_id: str) -> IngestProgress | None:
    row = await pool.fetchrow("SELECT dataset, state, batch_id, error FROM ingest_requests WHERE request_id = $1",
                              request_id)
    if row is None:
        return None
    progress = IngestProgress(request_id=request_id, dataset=row["dataset"], state=row["state"],
                              batch_id=row["batch_id"], error=row["error"])
    if row["batch_id"]:
        batch = await pool.fetchrow("SELECT state, n_rows, n_rejected FROM raw_batches WHERE batch_id = $1",
                                    row["batch_id"])
        if batch["state"] == "complete":
            progress.n_rows, progress.n_rejected = batch["n_rows"], batch["n_rejected"]
        else:
            progress.n_rows = await pool.fetchval(
                "SELECT COALESCE(sum(n_rows), 0) FROM raw_batch_progress WHERE batch_id = $1", row["batch_id"])
    return progress


async def wait_for(pool, request_id: str, dataset: str, timeout_s: float, on_progress=None,
                   interval_s: float = 0.25) -> IngestProgress:
    deadline = time.monotonic() + timeout_s
    progress = IngestProgress(request_id=request_id, dataset=dataset, state="submitted")
    while time.monotonic() < deadline:
        progress = await ingest_progress(pool, request_id) or progress
        if on_progress is not None:
            on_progress(progress)
        if progress.finished:
            if progress.state == "failed":
                raise IngestFailed(progress.error or "ingestion failed")
            return progress
        await asyncio.sleep(interval_s)
    raise TimeoutError(f"ingestion {request_id} not finished after {timeout_s:.0f} s (last: {progress.state})")
