-- The raw store of the offline line: one row per batch, its records unchanged, its rejected lines.
-- Records and rejects are append-only; a batch row changes once, from 'loading' to 'complete'.

CREATE TABLE raw_batches (
    batch_id      text        PRIMARY KEY,
    dataset       text        NOT NULL,
    checksum      text        NOT NULL,              -- sha256 of the file's bytes, hex
    format        text        NOT NULL CHECK (format IN ('csv', 'jsonl')),
    source_path   text        NOT NULL,
    key_column    text,
    time_column   text,
    label_column  text,
    n_rows        integer     NOT NULL DEFAULT 0 CHECK (n_rows >= 0),
    n_rejected    integer     NOT NULL DEFAULT 0 CHECK (n_rejected >= 0),
    state         text        NOT NULL DEFAULT 'loading' CHECK (state IN ('loading', 'complete')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    CHECK ((state = 'complete') = (completed_at IS NOT NULL)),
    UNIQUE (dataset, checksum)                       -- the same file is stored once per dataset
);

CREATE TABLE raw_records (
    batch_id   text     NOT NULL REFERENCES raw_batches (batch_id),
    dataset    text     NOT NULL,
    line_no    integer  NOT NULL,                    -- first line of the record in the file (header = 1)
    partition  integer  NOT NULL,
    "values"   jsonb    NOT NULL,                    -- the record's values exactly as in the file
    PRIMARY KEY (batch_id, line_no)
);

CREATE TABLE raw_rejects (
    batch_id   text     NOT NULL REFERENCES raw_batches (batch_id),
    line_no    integer  NOT NULL,
    field      text,                                 -- NULL when the line as a whole is refused
    reason     text     NOT NULL,
    raw        text     NOT NULL DEFAULT '',         -- printable excerpt of the refused line
    PRIMARY KEY (batch_id, line_no)
);

-- Records and rejects are never changed or removed (refuse_change comes from 0001).
CREATE TRIGGER raw_records_append_only BEFORE UPDATE OR DELETE ON raw_records
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER raw_records_no_truncate BEFORE TRUNCATE ON raw_records
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER raw_rejects_append_only BEFORE UPDATE OR DELETE ON raw_rejects
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER raw_rejects_no_truncate BEFORE TRUNCATE ON raw_rejects
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- A batch row is never removed; while 'loading' only its state, counts and completion
-- time may change, and once 'complete' nothing does.
CREATE FUNCTION raw_batches_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'table raw_batches keeps every batch: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.state <> 'loading' THEN
        RAISE EXCEPTION 'raw batch % is complete: UPDATE refused', OLD.batch_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.batch_id, NEW.dataset, NEW.checksum, NEW.format, NEW.source_path, NEW.key_column,
        NEW.time_column, NEW.label_column, NEW.created_at)
       IS DISTINCT FROM
       (OLD.batch_id, OLD.dataset, OLD.checksum, OLD.format, OLD.source_path, OLD.key_column,
        OLD.time_column, OLD.label_column, OLD.created_at) THEN
        RAISE EXCEPTION 'raw batch %: only state, n_rows, n_rejected and completed_at may change', OLD.batch_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER raw_batches_guarded BEFORE UPDATE OR DELETE ON raw_batches
    FOR EACH ROW EXECUTE FUNCTION raw_batches_guard();
CREATE TRIGGER raw_batches_no_truncate BEFORE TRUNCATE ON raw_batches
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
