-- How many of a staged file's users are in the previous month's set (streamflow.user_sets.users_kept):
-- a hash semi join of the file against the previous set's user_id hashes, found by (run, fingerprint):
-- one hash of the previous set, probed by the file's hashes as they are scanned (joining this month's
-- kept array instead unnests both arrays into tuples first, a third slower). The key column and the
-- staged table are identifiers; the run and fingerprint are bound.
SELECT count(*)
FROM {batch}
WHERE hashtextextended({key}, 0) IN (
  SELECT unnest(user_hashes) FROM validation_user_sets
  WHERE run_id = %(previous_run_id)s AND fingerprint = %(previous_fingerprint)s)
