-- Preparation: feature specs per dataset, fitted feature sets, the offline feature
-- store, quarantined rows and the data-quality report of every prepared batch.

CREATE TABLE feature_specs (
    dataset     text        PRIMARY KEY,
    spec_toml   text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE feature_sets (
    feature_set_id  text        PRIMARY KEY,
    dataset         text        NOT NULL,
    spec_toml       text        NOT NULL,
    fitted          bytea       NOT NULL,
    signature       bytea       NOT NULL,
    feature_names   text[]      NOT NULL,
    fitted_on_batch text        NOT NULL REFERENCES raw_batches (batch_id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feature_sets_dataset ON feature_sets (dataset, created_at);

CREATE TABLE features (
    feature_set_id text             NOT NULL REFERENCES feature_sets (feature_set_id),
    batch_id       text             NOT NULL,
    line_no        integer          NOT NULL,
    entity_key     text,
    vector         double precision[] NOT NULL,
    label          text,
    PRIMARY KEY (feature_set_id, batch_id, line_no)
);
CREATE INDEX features_entity ON features (feature_set_id, entity_key);

CREATE TABLE feature_quarantine (
    feature_set_id text    NOT NULL,
    batch_id       text    NOT NULL,
    line_no        integer NOT NULL,
    reason         text    NOT NULL,
    PRIMARY KEY (feature_set_id, batch_id, line_no)
);

CREATE TABLE feature_quality (
    feature_set_id text        NOT NULL,
    batch_id       text        NOT NULL,
    report         jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feature_set_id, batch_id)
);
