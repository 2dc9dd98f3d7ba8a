-- Training and evaluation: runs, the candidate store (signed artifacts with their
-- config, learned parameters, metrics, curves and lineage), checkpoints of
-- data-parallel partitions, aliases of model versions, and training triggers.

CREATE TABLE training_runs (
    run_id          text        PRIMARY KEY,
    model           text        NOT NULL,
    config_toml     text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending',   -- pending, running, done, failed
    error           text,
    feature_set_id  text,
    task            text,
    metric          text,
    margin          double precision,
    n_candidates    integer     NOT NULL DEFAULT 0,
    n_train         integer,
    n_test          integer,
    split_warnings  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    best_candidate  text,
    score           double precision,
    reference       text,
    reference_score double precision,
    deployable      boolean,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX training_runs_open ON training_runs (requested_at) WHERE state IN ('pending', 'running');

CREATE TABLE candidates (
    candidate_id    text        PRIMARY KEY,
    run_id          text        NOT NULL REFERENCES training_runs (run_id),
    model           text        NOT NULL,
    version         integer     NOT NULL,
    name            text        NOT NULL,
    algorithm       text        NOT NULL,
    params          jsonb       NOT NULL,
    summary         jsonb       NOT NULL,
    search          jsonb       NOT NULL DEFAULT '[]'::jsonb,   -- [{params, score}] of a search
    metrics         jsonb       NOT NULL,
    curves          bytea,                                      -- msgpack {kind: Curve}
    artifact        bytea       NOT NULL,
    signature       bytea       NOT NULL,
    feature_set_id  text        NOT NULL,
    batch_ids       text[]      NOT NULL,
    n_train         integer     NOT NULL,
    partitions      integer     NOT NULL DEFAULT 1,
    blocks          integer     NOT NULL DEFAULT 1,
    attempts        integer     NOT NULL DEFAULT 1,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    fit_s           double precision NOT NULL,
    deployable      boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, name),
    UNIQUE (model, version)
);

CREATE TABLE training_checkpoints (
    owner       text        NOT NULL,       -- run/candidate/partition
    rows_done   bigint      NOT NULL,
    state       bytea       NOT NULL,
    signature   bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, rows_done)
);

CREATE TABLE model_aliases (
    model         text        NOT NULL,
    alias         text        NOT NULL,     -- production, previous, ...
    candidate_id  text        NOT NULL REFERENCES candidates (candidate_id),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, alias)
);

CREATE TABLE training_triggers (
    dataset      text        PRIMARY KEY,   -- train when this dataset gets new features
    config_toml  text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
