-- The requests behind an alert (the slowest, the newest a fallback answered or the primary
-- failed, the newest an outcome judged wrong), which an operator looks up one by one.
ALTER TABLE alerts ADD COLUMN evidence text[] NOT NULL DEFAULT '{}';
