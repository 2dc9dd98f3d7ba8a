-- Batch scoring: jobs, the rows each partition has stored so far, and the results.

CREATE TABLE score_jobs (
    job_id          text        PRIMARY KEY,
    model           text        NOT NULL,
    version         integer,
    candidate_id    text,
    feature_set_id  text,
    n_partitions    integer     NOT NULL DEFAULT 0,
    n_rows          integer,
    state           text        NOT NULL DEFAULT 'scoring',      -- scoring, done, failed
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

CREATE TABLE score_job_progress (
    job_id     text        NOT NULL,
    partition  integer     NOT NULL,
    rows_done  integer     NOT NULL DEFAULT 0,
    done       boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, partition)
);

CREATE TABLE batch_scores (
    job_id      text             NOT NULL,
    batch_id    text             NOT NULL,
    line_no     integer          NOT NULL,
    entity_key  text,
    score       double precision,
    label       text,
    PRIMARY KEY (job_id, batch_id, line_no)
);
