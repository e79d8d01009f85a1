-- Freeze one live table into its snapshot table at as_of (a bound parameter).
-- The params.* fragments are identifier lists built from the table registry
-- (streamflow.registry.snapshot_sql_params), quoted there like psycopg.sql.Identifier.
-- Idempotent: rows already equal are not rewritten, so re-stamping a month with the same data
-- changes nothing. With restamp (the default) an as_of already stamped is brought up to the
-- live state (corrected files), users no longer live are dropped from it; with restamp false an
-- as_of already stamped is immutable and only a first stamp writes.
-- No time travel: once a later month is loaded, an as_of already stamped is frozen (this writes
-- nothing) and one never stamped is refused (streamflow_may_stamp raises, in the first statement).
SELECT streamflow_may_stamp(%(as_of)s::date, {{ params.snapshot_table_literal }});
WITH stamped AS (
  INSERT INTO {{ params.snapshot_table }} AS snapshot (user_id, as_of, {{ params.columns }})
  SELECT live.user_id, %(as_of)s::date, {{ params.live_columns }}
  FROM {{ params.live_table }} AS live
  -- Uncorrelated subqueries: evaluated once per statement, not per row.
  WHERE (SELECT streamflow_may_stamp(%(as_of)s::date, {{ params.snapshot_table_literal }}))
    AND (%(restamp)s::boolean OR NOT EXISTS (SELECT 1 FROM {{ params.snapshot_table }} WHERE as_of = %(as_of)s::date))
  ON CONFLICT (user_id, as_of) DO UPDATE
    SET ({{ params.columns }}) = ROW({{ params.excluded_columns }})
    WHERE %(restamp)s::boolean AND ({{ params.snapshot_columns }}) IS DISTINCT FROM ({{ params.excluded_columns }})
  RETURNING (xmax = 0) AS inserted
), dropped AS (
  DELETE FROM {{ params.snapshot_table }} AS snapshot
  WHERE %(restamp)s::boolean AND snapshot.as_of = %(as_of)s::date
    AND (SELECT streamflow_may_stamp(%(as_of)s::date, {{ params.snapshot_table_literal }}))
    AND NOT EXISTS (SELECT 1 FROM {{ params.live_table }} AS live WHERE live.user_id = snapshot.user_id)
  RETURNING 1
)
SELECT {{ params.snapshot_table_literal }} AS snapshot_table,
       %(as_of)s::date::text AS as_of,
       (SELECT count(*) FROM stamped WHERE inserted) AS inserted,
       (SELECT count(*) FROM stamped WHERE NOT inserted) AS updated,
       (SELECT count(*) FROM dropped) AS dropped;
