-- Serving configurations (replicas and monitoring objectives per model) join the
-- configuration service: versions in configs, the current one in serving_configs, which
-- the deployment manager and the monitor read.
ALTER TABLE configs DROP CONSTRAINT configs_kind_check;
ALTER TABLE configs ADD CONSTRAINT configs_kind_check
    CHECK (kind IN ('feature_spec', 'training_trigger', 'serving'));
CREATE TABLE serving_configs (
    model       text        PRIMARY KEY,
    config_toml text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
