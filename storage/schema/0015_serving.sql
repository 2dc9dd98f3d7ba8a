-- Deployment and scoring: the versions of a model that are live, and the record of
-- every online answer (written off the latency path, from the `scores` topic).

CREATE TABLE deployments (
    model         text        NOT NULL,
    version       integer     NOT NULL,
    candidate_id  text        NOT NULL REFERENCES candidates (candidate_id),
    replicas      integer     NOT NULL,
    state         text        NOT NULL DEFAULT 'live',      -- live, retired
    canary_weight double precision,                         -- share of traffic when a canary
    deployed_at   timestamptz NOT NULL DEFAULT now(),
    retired_at    timestamptz,
    PRIMARY KEY (model, version)
);

CREATE TABLE scores (
    request_id    text        PRIMARY KEY,
    model         text        NOT NULL,
    version       integer,
    answered_by   text        NOT NULL,                     -- primary, fallback, baseline, cache
    score         double precision,
    label         text,
    latency_ms    double precision NOT NULL,
    fallback      boolean     NOT NULL,
    entity_key    text,
    reason        text,                                      -- why a fallback answered
    scored_at     timestamptz NOT NULL
);
CREATE INDEX scores_model ON scores (model, version, scored_at);
