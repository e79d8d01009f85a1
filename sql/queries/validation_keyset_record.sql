-- Which user set a run's file held, and which set the previous month was published from
-- (streamflow.metrics.record): the users kept are counted once per pair (users_kept_counted.sql).
INSERT INTO validation_keysets (run_id, as_of, table_name, fingerprint, previous_fingerprint)
VALUES (%(run_id)s, %(as_of)s, %(table_name)s, %(fingerprint)s, %(previous_fingerprint)s)
