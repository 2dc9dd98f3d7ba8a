-- Offline ingestion pipeline: requests the CLI and client follow, per-partition load
-- tasks, and outbox rows that name their partition.

ALTER TABLE outbox ADD COLUMN partition integer;

CREATE TABLE ingest_requests (
    request_id   text        PRIMARY KEY,          -- the msg_id of the IngestBatch / SourceAvailable
    dataset      text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('loading', 'complete', 'duplicate', 'failed')),
    batch_id     text,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE raw_batch_tasks (
    batch_id     text        NOT NULL REFERENCES raw_batches (batch_id),
    partition    integer     NOT NULL,
    n_partitions integer     NOT NULL,
    n_rows       integer     NOT NULL,
    done_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, partition)
);
