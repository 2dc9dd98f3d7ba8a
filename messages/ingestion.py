"""Messages of offline ingestion: a source file arrives, is loaded as one batch, is announced.

Large data never rides in these messages: they name the file (``path``) or the
stored batch (``batch_id``).

Examples
--------
>>> cmd = IngestBatch(dataset="iris", path="/data/iris.csv", format="csv", label_column="species")
>>> cmd.dataset, cmd.key_column, cmd.label_column
('iris', None, 'species')
>>> done = RawIngested(dataset="iris", batch_id="5f1c", checksum="0" * 64, n_rows=150, n_rejected=0,
...                    correlation_id=cmd.correlation_id, causation_id=cmd.msg_id)
>>> done.duplicate_of is None
True
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from messages.base import Message
from messages.types import Name

#: The formats a source file can be in.
SourceFormat = Literal["csv", "jsonl", "parquet"]

#: A file path as given by the user: bounded, no control characters.
SourcePath = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f\x7f]+\Z")]

#: A column of the source file (the same bounds as the names of a record's values).
ColumnName = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+\Z")]

#: The identifier of a stored raw batch.
BatchId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+\Z")]

#: The SHA-256 of a source file, 64 lowercase hex digits.
Checksum = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")]

Count = Annotated[int, msgspec.Meta(ge=0)]


class SourceAvailable(Message, tag="source.available"):
    """A source file of a dataset is ready to be ingested (from a watcher, a schedule or a user)."""

    dataset: Name
    path: SourcePath
    format: SourceFormat
    key_column: ColumnName | None = None
    time_column: ColumnName | None = None
    label_column: ColumnName | None = None


class IngestBatch(Message, tag="ingest.batch"):
    """Command: load the file at ``path`` into the raw store as one batch of ``dataset``.

    Submitting the same file (same bytes) again for the same dataset stores nothing
    and is answered by a :class:`RawIngested` whose ``duplicate_of`` names the batch
    that holds it.
    """

    dataset: Name
    path: SourcePath
    format: SourceFormat
    key_column: ColumnName | None = None
    time_column: ColumnName | None = None
    label_column: ColumnName | None = None


class RawIngested(Message, tag="raw.ingested"):
    """Event: batch ``batch_id`` of ``dataset`` is complete in the raw store.

    ``n_rows`` records were stored unchanged, ``n_rejected`` lines were refused (each
    with its line number and reason in the store). ``duplicate_of`` is set when the
    file had already been ingested: then nothing new was stored and ``batch_id`` is
    that earlier batch.
    """

    dataset: Name
    batch_id: BatchId
    checksum: Checksum
    n_rows: Count
    n_rejected: Count
    duplicate_of: BatchId | None = None


class LoadPartition(Message, tag="ingest.load_partition"):
    """Command to one loader: store the rows of ``partition`` (of ``n_partitions``) of a batch.

    Every loader reads the same file and keeps its own share of the rows (by key hash,
    else line number), so no row data travels on the broker.
    """

    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    batch_id: BatchId
    dataset: Name
    path: SourcePath
    format: SourceFormat
    partition: Annotated[int, msgspec.Meta(ge=0)]
    n_partitions: Annotated[int, msgspec.Meta(ge=1, le=256)]
    key_column: ColumnName | None = None
    time_column: ColumnName | None = None
    label_column: ColumnName | None = None
