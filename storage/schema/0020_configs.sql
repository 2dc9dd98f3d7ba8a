-- Configuration service: every version of every configuration the actors read, append-only.
-- The actors read the current version from feature_specs / training_triggers (kept as they
-- were); each change writes the new version here and an audit record in the same transaction.
CREATE TABLE configs (
    kind        text        NOT NULL CHECK (kind IN ('feature_spec', 'training_trigger')),
    name        text        NOT NULL,
    version     integer     NOT NULL CHECK (version >= 1),
    body        text        NOT NULL,
    actor       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name, version)
);
CREATE TRIGGER configs_append_only BEFORE UPDATE OR DELETE ON configs
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- What was configured before versions were kept becomes version 1.
INSERT INTO configs (kind, name, version, body, actor, created_at)
    SELECT 'feature_spec', dataset, 1, spec_toml, 'migration', updated_at FROM feature_specs;
INSERT INTO configs (kind, name, version, body, actor, created_at)
    SELECT 'training_trigger', dataset, 1, config_toml, 'migration', updated_at FROM training_triggers;
