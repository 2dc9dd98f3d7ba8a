-- Foundation: consumer offsets, checkpoints, outbox, dead letters, audit, raw events.

CREATE TABLE consumer_offsets (
    consumer     text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    next_offset  bigint      NOT NULL,
    epoch        bigint      NOT NULL DEFAULT 0,   -- fences a zombie writer after a restart
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);

CREATE TABLE checkpoints (
    owner          text        NOT NULL,
    version        bigint      NOT NULL,
    source_offset  bigint      NOT NULL,
    state          bytea       NOT NULL,
    signature      bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, version)
);

CREATE TABLE outbox (
    id            bigserial   PRIMARY KEY,
    topic         text        NOT NULL,
    msg_key       bytea,
    payload       bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE dead_letters (
    id           bigserial   PRIMARY KEY,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    source_offset bigint     NOT NULL,
    msg_key      bytea,
    payload      bytea       NOT NULL,
    error        text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, source_offset)
);

CREATE TABLE audit_log (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text        NOT NULL,
    action   text        NOT NULL,
    subject  text        NOT NULL,
    detail   jsonb       NOT NULL DEFAULT '{}'::jsonb
);

-- The raw store of the online line: events exactly as they arrived, never changed.
CREATE TABLE raw_events (
    msg_id        text        PRIMARY KEY,
    stream        text        NOT NULL,
    entity_key    text        NOT NULL,
    payload       jsonb       NOT NULL,
    event_time    double precision,
    topic         text        NOT NULL,
    partition     integer     NOT NULL,
    source_offset bigint      NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX raw_events_stream ON raw_events (stream, entity_key);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER raw_events_append_only BEFORE UPDATE OR DELETE ON raw_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
