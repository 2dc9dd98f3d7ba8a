-- Online preparation: per-entity running aggregates of every numeric field of a stream
-- (absolute values, so a replay rewrites the same numbers), and per-event feature vectors.

CREATE TABLE online_aggregates (
    stream      text             NOT NULL,
    entity_key  text             NOT NULL,
    field       text             NOT NULL,
    n           bigint           NOT NULL,
    total       double precision NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    updated_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, entity_key, field)
);

CREATE TABLE stream_features (
    msg_id          text               PRIMARY KEY,
    stream          text               NOT NULL,
    entity_key      text               NOT NULL,
    feature_set_id  text               NOT NULL,
    vector          double precision[] NOT NULL,
    created_at      timestamptz        NOT NULL DEFAULT now()
);
