-- Records are written by the raw store only, each chunk in a transaction that has just
-- locked its batch row (FOR SHARE) and checked that the batch exists and is loading, and
-- batch rows are never removed (raw_batches_guard): the foreign key to raw_batches
-- proved nothing more, and its per-row check cost about as much as the COPY itself.
ALTER TABLE raw_records DROP CONSTRAINT raw_records_batch_id_fkey;
