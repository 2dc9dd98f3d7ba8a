-- A training run or a batch-scoring job that ends (done or failed) notifies
-- `conveyor_finished` with "<table>:<id>" when its transaction commits: a client waiting
-- for it is answered then, not at its next look. The trigger's argument names the id column.
CREATE FUNCTION finished_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('done', 'failed') THEN
        PERFORM pg_notify('conveyor_finished', TG_TABLE_NAME || ':' || (to_jsonb(NEW) ->> TG_ARGV[0]));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER training_runs_finished AFTER INSERT OR UPDATE OF state ON training_runs
    FOR EACH ROW EXECUTE FUNCTION finished_notify('run_id');
CREATE TRIGGER score_jobs_finished AFTER INSERT OR UPDATE OF state ON score_jobs
    FOR EACH ROW EXECUTE FUNCTION finished_notify('job_id');
