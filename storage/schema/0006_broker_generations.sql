-- The embedded broker keeps nothing across a restart: every start begins new, empty
-- topic logs (a new generation). Offsets and checkpoints name the generation they
-- belong to; an offset of an older generation means "from the start of the new log".

CREATE TABLE broker_generations (
    generation  bigserial   PRIMARY KEY,
    bootstrap   text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE consumer_offsets ADD COLUMN generation bigint NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN generation bigint NOT NULL DEFAULT 0;
