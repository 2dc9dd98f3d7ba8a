-- Reading back: `audit` filters the log by actor, action or subject (newest first), and
-- `lineage` finds a version's deployment records and batch scoring jobs. Both grow for
-- the life of a cluster, so these reads use indexes instead of scanning.

CREATE INDEX audit_log_subject ON audit_log (subject, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX score_jobs_candidate ON score_jobs (candidate_id, created_at);
