-- Freeze one live table into its snapshot table at as_of.
-- Rendered per table by streamflow.snapshots with psycopg.sql: {live_table}, {snapshot_table} and
-- the column lists ({columns}, {live_columns}, {snapshot_columns}) are identifiers from the table
-- registry; every value is a bound parameter (%(as_of)s, %(restamp)s, %(snapshot_name)s: the
-- snapshot table's name as text, for the lock, the guards and the catalogue).
-- Idempotent: rows already equal are not touched, so re-stamping a month with the same data
-- writes nothing. With restamp (the default) an as_of already stamped is brought up to the
-- live state (corrected files), users no longer live are dropped from it; with restamp false an
-- as_of already stamped is immutable and only a first stamp writes.
-- No time travel: once a later month is loaded, an as_of already stamped is frozen (this writes
-- nothing) and one never stamped is refused (streamflow_may_stamp raises, in the first statement).
-- One stamp of a table at a time: a second one waits here, and its next statement (a new
-- snapshot, READ COMMITTED) sees what the first one stamped instead of inserting it twice.
-- Writes go to the as_of's monthly partition, created here when missing (streamflow_begin_stamp);
-- what is already stamped comes from the catalogue (snapshot_stamps), which the statement after
-- this one keeps, so no statement reads another month's rows.
SELECT pg_advisory_xact_lock(hashtext('streamflow_stamp:' || %(snapshot_name)s::text)),
       streamflow_begin_stamp(%(as_of)s::date, %(snapshot_name)s::text);
-- One statement. A first stamp of as_of (the monthly case) is a plain INSERT ... SELECT; a
-- re-stamp updates what differs, inserts what is missing and deletes users no longer live. The
-- parts that do not apply are cut off by one-time filters before they read a row, and every part
-- sees the table as it was before the statement, so they touch disjoint rows. Not
-- INSERT ... ON CONFLICT DO UPDATE ... WHERE: that locks, and so rewrites, every row it meets.
WITH state AS MATERIALIZED (
  -- Uncorrelated: evaluated once per statement, not per row.
  SELECT streamflow_may_stamp(%(as_of)s::date, %(snapshot_name)s::text) AS may_write,
         streamflow_is_stamped(%(snapshot_name)s::text, %(as_of)s::date) AS stamped_before,
         %(restamp)s::boolean AS restamp
), first_stamp AS (
  INSERT INTO {snapshot_table} (user_id, as_of, {columns})
  SELECT live.user_id, %(as_of)s::date, {live_columns}
  FROM {live_table} AS live
  WHERE (SELECT may_write AND NOT stamped_before FROM state)
  RETURNING 1
), restamp_updated AS (
  UPDATE {snapshot_table} AS snapshot
  SET ({columns}) = ROW({live_columns})
  FROM {live_table} AS live
  WHERE (SELECT may_write AND stamped_before AND restamp FROM state)
    AND snapshot.as_of = %(as_of)s::date AND snapshot.user_id = live.user_id
    AND ({snapshot_columns}) IS DISTINCT FROM ({live_columns})
  RETURNING 1
), restamp_inserted AS (
  INSERT INTO {snapshot_table} (user_id, as_of, {columns})
  SELECT live.user_id, %(as_of)s::date, {live_columns}
  FROM {live_table} AS live
  WHERE (SELECT may_write AND stamped_before AND restamp FROM state)
    AND NOT EXISTS (SELECT 1 FROM {snapshot_table} AS snapshot
                    WHERE snapshot.user_id = live.user_id AND snapshot.as_of = %(as_of)s::date)
  RETURNING 1
), restamp_dropped AS (
  DELETE FROM {snapshot_table} AS snapshot
  WHERE (SELECT may_write AND stamped_before AND restamp FROM state)
    AND snapshot.as_of = %(as_of)s::date
    AND NOT EXISTS (SELECT 1 FROM {live_table} AS live WHERE live.user_id = snapshot.user_id)
  RETURNING 1
), counts AS (
  SELECT (SELECT count(*) FROM first_stamp) + (SELECT count(*) FROM restamp_inserted) AS inserted,
         (SELECT count(*) FROM restamp_updated) AS updated,
         (SELECT count(*) FROM restamp_dropped) AS dropped
), catalogued AS (
  -- The partition's rows after this statement: a first stamp's count, or the change a re-stamp made.
  INSERT INTO snapshot_stamps AS stamp (snapshot_table, as_of, partition_name, rows)
  SELECT %(snapshot_name)s::text, %(as_of)s::date,
         streamflow_snapshot_partition_name(%(snapshot_name)s::text, %(as_of)s::date),
         counts.inserted - counts.dropped
  FROM state, counts
  WHERE state.may_write AND (NOT state.stamped_before OR counts.inserted + counts.updated + counts.dropped > 0)
  ON CONFLICT (snapshot_table, as_of) DO UPDATE
  SET rows = stamp.rows + EXCLUDED.rows, last_stamped_at = EXCLUDED.last_stamped_at
  RETURNING 1
)
SELECT %(snapshot_name)s::text AS snapshot_table,
       %(as_of)s::date::text AS as_of,
       counts.inserted, counts.updated, counts.dropped,
       -- A later month is loaded: this as_of is frozen and the statement wrote nothing (a replay).
       NOT state.may_write AS frozen
FROM state, counts;
-- Statistics for the partition, now that it holds the month (streamflow_analyze_stamp says when).
SELECT streamflow_analyze_stamp(%(as_of)s::date, %(snapshot_name)s::text);
