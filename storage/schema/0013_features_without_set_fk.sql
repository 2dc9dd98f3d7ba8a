-- Vectors are written by the feature store only (PostgresFeatureStore.write_batch), in a
-- transaction that first locks their feature set's row (FOR KEY SHARE) and refuses the
-- batch when the set does not exist; and feature sets are never changed or removed
-- (below). The foreign key from features proved nothing more, and its check, one per
-- vector row, cost more than the COPY of the rows themselves (~0.9 s per 200k rows).
ALTER TABLE features DROP CONSTRAINT features_feature_set_id_fkey;

CREATE TRIGGER feature_sets_append_only BEFORE UPDATE OR DELETE ON feature_sets
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER feature_sets_no_truncate BEFORE TRUNCATE ON feature_sets
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
