-- Parquet is a source format too.
ALTER TABLE raw_batches DROP CONSTRAINT raw_batches_format_check;
ALTER TABLE raw_batches ADD CONSTRAINT raw_batches_format_check CHECK (format IN ('csv', 'jsonl', 'parquet'));
