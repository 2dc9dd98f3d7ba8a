-- A learner's journalled steps name offsets in one generation of the broker's log. A partition
-- that restarts on a new generation (an embedded broker started again) must not replay steps
-- of an older one: their offsets are gone, and before its first checkpoint nothing else says so.
ALTER TABLE learner_steps ADD COLUMN generation bigint NOT NULL DEFAULT 0;
