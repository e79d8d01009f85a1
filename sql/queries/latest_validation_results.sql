-- The Validation tab's rows (streamflow.validation_view.fetch): every outcome of the latest
-- validation of each table in a run (a retried or cleared task validates again, and the page
-- shows what the run decided on), with the count of its failing keys kept; one table, or every
-- table when the table parameter is null. The columns are validation_view.COLUMNS.
SELECT table_name, month, as_of::text AS as_of, expectation, expectation_type, column_name, kwargs, success,
       element_count, unexpected_count, unexpected_percent, samples, why, error, validated_at,
       (SELECT count(*) FROM validation_failing_keys AS k WHERE k.validation_result_id = v.id) AS failing_keys_kept,
       severity, figures
FROM validation_results AS v
WHERE run_id = %(run_id)s
  AND (%(table)s::text IS NULL OR table_name = %(table)s)
  AND validated_at = (SELECT max(validated_at) FROM validation_results AS w
                      WHERE w.run_id = v.run_id AND w.table_name = v.table_name)
ORDER BY table_name, id
