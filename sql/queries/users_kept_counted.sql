-- The users kept that a file of the same run already counted: same users (fingerprint), same
-- previous month's set (streamflow.user_sets.users_kept). A month's six files usually hold the
-- same users: one join counts them all.
SELECT m.users_kept
FROM validation_keysets AS k
JOIN validation_metrics AS m USING (run_id, table_name)
WHERE k.run_id = %(run_id)s AND k.fingerprint = %(fingerprint)s
  AND k.previous_fingerprint = %(previous_fingerprint)s
  AND m.column_name IS NULL AND m.users_kept IS NOT NULL
LIMIT 1
