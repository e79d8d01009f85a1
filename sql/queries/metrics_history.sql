-- A table's figures in the published months before as_of, at most `months` of them, oldest first
-- (streamflow.metrics.history): the table's row (column_name NULL) before its columns' rows.
SELECT p.as_of::text AS as_of, m.column_name, m.rows, m.null_fraction, m.distinct_count, m.min_value,
       m.max_value, m.mean, m.stddev, m.frequencies, m.users_joined, m.users_left, m.users_kept,
       m.previous_as_of::text AS previous_as_of
FROM streamflow_published_runs(%(table_name)s, %(as_of)s::date, %(months)s) AS p
JOIN validation_metrics AS m ON m.run_id = p.run_id AND m.table_name = %(table_name)s
ORDER BY p.as_of, m.column_name NULLS FIRST
