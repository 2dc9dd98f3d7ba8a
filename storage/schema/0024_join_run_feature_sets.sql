-- A join's run is stored once, as a feature set of the join's name (rows in `features`);
-- the run names it. `joined_features` keeps the rows of runs made before this change and
-- gets no new ones.
ALTER TABLE join_runs ADD COLUMN feature_set_id text REFERENCES feature_sets (feature_set_id);
