-- Online learning: learner configurations (immutable revisions) and, per learner
-- partition, the journal of its steps: which events and observations each step
-- consumed and which learners were active, so a restart replays exactly the same
-- interleaving from its checkpoint.

CREATE TABLE learners (
    name        text        NOT NULL,
    revision    integer     NOT NULL,
    stream      text        NOT NULL,
    config      text        NOT NULL,                  -- the TOML as submitted
    removed     boolean     NOT NULL DEFAULT false,    -- a removal is a revision too
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, revision)
);

CREATE TABLE learner_steps (
    owner             text    NOT NULL,                -- learner/events/<partition>
    step              bigint  NOT NULL,
    events_end        bigint  NOT NULL,                -- next events offset after the step
    observations_end  bigint  NOT NULL,                -- next observations offset after the step
    learners          jsonb   NOT NULL,                -- {name: revision} active in the step
    PRIMARY KEY (owner, step)
);

-- The latest progressive report of every learner partition, written at checkpoints.
CREATE TABLE learner_reports (
    name        text        NOT NULL,
    partition   integer     NOT NULL,
    report      jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, partition)
);
