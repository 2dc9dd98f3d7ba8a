-- Joins of several datasets' features (on entity key, as of time), run once every
-- named source has arrived, and again when one of them gets a new batch.

CREATE TABLE feature_joins (
    name         text        PRIMARY KEY,
    sources      text[]      NOT NULL,
    time_column  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE join_runs (
    join_name    text        NOT NULL REFERENCES feature_joins (name),
    run_id       text        NOT NULL,
    inputs       text[]      NOT NULL,          -- source:feature_set_id:n_rows
    n_rows       integer     NOT NULL,
    n_unmatched  integer     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (join_name, run_id)
);

CREATE TABLE joined_features (
    join_name    text             NOT NULL,
    run_id       text             NOT NULL,
    row_no       integer          NOT NULL,
    entity_key   text             NOT NULL,
    vector       double precision[] NOT NULL,
    label        text,
    PRIMARY KEY (join_name, run_id, row_no)
);
