-- Monitoring: the newest figures of every monitored model version (rewritten by the
-- monitor every few seconds), and every alert it raised (also published on `alerts`).

CREATE TABLE monitor_versions (
    model             text        NOT NULL,
    version           integer     NOT NULL,
    n_served          bigint      NOT NULL,
    n_fallback        bigint      NOT NULL,
    n_errors          bigint      NOT NULL,
    n_late            bigint      NOT NULL,
    window_s          double precision NOT NULL,
    n_window          integer     NOT NULL,
    latency_min_ms    double precision,
    latency_mean_ms   double precision,
    latency_max_ms    double precision,
    latency_p50_ms    double precision,
    latency_p99_ms    double precision,
    n_observed        bigint      NOT NULL DEFAULT 0,
    accuracy          double precision,
    mae               double precision,
    n_drift_sample    integer     NOT NULL DEFAULT 0,
    feature_drift     jsonb       NOT NULL DEFAULT '{}'::jsonb,   -- {feature: {psi, ks, p_value}}
    prediction_drift  jsonb,                                     -- {psi, ks, p_value, n}
    first_seen_at     timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, version)
);

CREATE TABLE alerts (
    alert_id    text        PRIMARY KEY,                          -- the alert.raised message id
    model       text        NOT NULL,
    version     integer     NOT NULL,
    kind        text        NOT NULL,
    severity    text        NOT NULL,
    value       double precision NOT NULL,
    threshold   double precision NOT NULL,
    summary     text        NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    rolled_back_to integer,                                       -- the version production moved to
    raised_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_model ON alerts (model, raised_at);
