-- The user set a table's previous published month was published from (streamflow.user_sets.previous_users):
-- the latest run published before as_of (streamflow_published_runs), the set its file held, if still kept.
SELECT p.as_of::text, p.run_id, k.fingerprint
FROM streamflow_published_runs(%(table_name)s, %(as_of)s::date, 1) AS p
JOIN validation_keysets AS k ON k.run_id = p.run_id AND k.table_name = %(table_name)s
WHERE EXISTS (SELECT FROM validation_user_sets AS s WHERE s.run_id = k.run_id AND s.fingerprint = k.fingerprint)
