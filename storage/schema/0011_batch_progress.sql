-- Rows stored so far by each loader of a loading batch (progress without count(*)).
CREATE TABLE raw_batch_progress (
    batch_id    text        NOT NULL,
    partition   integer     NOT NULL,
    n_rows      integer     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, partition)
);
