-- How many users of this month's kept set are in the previous month's (streamflow.user_sets.users_kept):
-- one hash join of the two arrays of user_id hashes (sql/schema/009), each found by (run, fingerprint).
SELECT count(*)
FROM unnest((SELECT user_hashes FROM validation_user_sets
             WHERE run_id = %(run_id)s AND fingerprint = %(fingerprint)s)) AS this_month (h)
JOIN unnest((SELECT user_hashes FROM validation_user_sets
             WHERE run_id = %(previous_run_id)s AND fingerprint = %(previous_fingerprint)s)) AS previous (h)
  USING (h)
