-- Whoever adds outbox rows wakes the outbox relay: a notification on `conveyor_outbox`,
-- delivered when the transaction commits (one per transaction, however many rows), so
-- the relay need not poll the table every few milliseconds to publish promptly.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('conveyor_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
