-- Scheduled commands (cron expressions): the scheduler publishes each one when it is due.

CREATE TABLE schedules (
    schedule_id  text        PRIMARY KEY,
    cron         text        NOT NULL,
    topic        text        NOT NULL,
    command      bytea       NOT NULL,        -- an encoded message; a fresh msg_id per run
    next_run_at  timestamptz NOT NULL,
    last_run_at  timestamptz,
    n_runs       integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules (next_run_at);
