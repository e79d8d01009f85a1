-- A run's validation as counts, for the snapshot's asset event (streamflow.pipeline.validation_summary):
-- the latest validation of each table only (a cleared task validates again), the outcomes that
-- passed, and the failures of severity warn (recorded, shown, not blocking; an accepted check is one).
SELECT count(DISTINCT table_name) AS tables,
       count(*) AS expectations,
       count(*) FILTER (WHERE success) AS passed,
       count(*) FILTER (WHERE NOT success AND severity = 'warn') AS warnings
FROM validation_results AS v
WHERE run_id = %(run_id)s
  AND validated_at = (SELECT max(validated_at) FROM validation_results AS w
                      WHERE w.run_id = v.run_id AND w.table_name = v.table_name)
