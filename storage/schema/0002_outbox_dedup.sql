-- A replayed batch (after a restore from checkpoint) must not publish its events twice.
ALTER TABLE outbox ADD COLUMN dedup_key text UNIQUE;
