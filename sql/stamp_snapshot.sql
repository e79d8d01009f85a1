-- Freeze one live table into its snapshot table at as_of (a bound parameter).
-- The params.* fragments are identifier lists built from the table registry
-- (streamflow.registry.snapshot_sql_params), quoted there like psycopg.sql.Identifier.
-- Idempotent: rows already equal are not rewritten, so re-stamping a month with the same data
-- changes nothing; users no longer in the live table are dropped from this as_of.
-- First statement: refuse to stamp an as_of older than the latest loaded month (no time travel).
SELECT streamflow_assert_latest_month(%(as_of)s::date);
WITH stamped AS (
  INSERT INTO {{ params.snapshot_table }} AS snapshot (user_id, as_of, {{ params.columns }})
  SELECT live.user_id, %(as_of)s::date, {{ params.live_columns }}
  FROM {{ params.live_table }} AS live
  ON CONFLICT (user_id, as_of) DO UPDATE
    SET ({{ params.columns }}) = ROW({{ params.excluded_columns }})
    WHERE ({{ params.snapshot_columns }}) IS DISTINCT FROM ({{ params.excluded_columns }})
  RETURNING (xmax = 0) AS inserted
), dropped AS (
  DELETE FROM {{ params.snapshot_table }} AS snapshot
  WHERE snapshot.as_of = %(as_of)s::date
    AND NOT EXISTS (SELECT 1 FROM {{ params.live_table }} AS live WHERE live.user_id = snapshot.user_id)
  RETURNING 1
)
SELECT {{ params.snapshot_table_literal }} AS snapshot_table,
       %(as_of)s::date::text AS as_of,
       (SELECT count(*) FROM stamped WHERE inserted) AS inserted,
       (SELECT count(*) FROM stamped WHERE NOT inserted) AS updated,
       (SELECT count(*) FROM dropped) AS dropped;
