-- The month order and no time travel: what may load, what may stamp (ledger and stamp catalogue).

-- The as_of of the month after the one ending on as_of (the last day of the next month): the one
-- place this arithmetic is written.
CREATE OR REPLACE FUNCTION streamflow_next_as_of(as_of DATE) RETURNS DATE
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT (date_trunc('month', as_of) + interval '2 months' - interval '1 day')::date
$$;

-- The latest month loaded after run_as_of, if any: the live tables then hold a later state.
-- One probe of the ledger's as_of index, whatever the history.
CREATE OR REPLACE FUNCTION streamflow_later_month(run_as_of DATE) RETURNS TABLE (month TEXT, as_of DATE)
LANGUAGE sql STABLE AS $$
  SELECT l.month, l.as_of FROM ingestion_ledger AS l
  WHERE l.status = 'loaded' AND l.as_of > run_as_of ORDER BY l.as_of DESC LIMIT 1
$$;

-- Is snapshot_table stamped at stamp_as_of? A catalogue lookup (sql/schema/008), not a scan of snapshot data.
-- plpgsql: the catalogue's file comes after this one, and a SQL function's body is checked when created.
CREATE OR REPLACE FUNCTION streamflow_is_stamped(snapshot_table TEXT, stamp_as_of DATE) RETURNS BOOLEAN
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM snapshot_stamps AS s
                 WHERE s.snapshot_table = streamflow_is_stamped.snapshot_table AND s.as_of = stamp_as_of);
END $$;

-- Months apply one after another. Loading month M is refused when:
--  * a later month is already loaded: the live tables would roll back to a state that never existed;
--  * M is new and is not the month right after the latest loaded one (a month would be skipped);
--  * M is new and the latest loaded month is not stamped in every snapshot table (its run failed
--    or is still going: stamping it later would read M's state).
-- Raises, naming the month in the way and the remedy.
CREATE OR REPLACE FUNCTION streamflow_assert_loadable(run_as_of DATE, snapshot_tables TEXT[]) RETURNS DATE
LANGUAGE plpgsql STABLE AS $$
DECLARE
  later RECORD;
  latest RECORD;
  next_as_of DATE;
  unstamped TEXT[];
BEGIN
  SELECT * INTO later FROM streamflow_later_month(run_as_of);
  IF FOUND THEN
    RAISE EXCEPTION 'refusing to apply as_of % : % (as_of %) is already loaded and the live tables hold its state',
      run_as_of, later.month, later.as_of
      USING HINT = 'months apply in order; to rebuild from an earlier month run `make reset` (or empty the warehouse) and load every month again in order';
  END IF;
  SELECT l.month, l.as_of INTO latest FROM ingestion_ledger AS l
  WHERE l.status = 'loaded' ORDER BY l.as_of DESC LIMIT 1;
  IF NOT FOUND OR latest.as_of = run_as_of THEN
    RETURN run_as_of;  -- the first month, or a re-run of the latest one
  END IF;
  next_as_of := streamflow_next_as_of(latest.as_of);
  IF run_as_of <> next_as_of THEN
    RAISE EXCEPTION 'refusing to apply as_of % : the latest loaded month is % (as_of %), so the next one is as_of %',
      run_as_of, latest.month, latest.as_of, next_as_of
      USING HINT = 'months apply one after another: load the months in between first';
  END IF;
  SELECT coalesce(array_agg(t ORDER BY position), '{}') INTO unstamped
  FROM unnest(snapshot_tables) WITH ORDINALITY AS wanted (t, position)
  WHERE NOT streamflow_is_stamped(t, latest.as_of);
  IF cardinality(unstamped) > 0 THEN
    RAISE EXCEPTION 'refusing to apply as_of % : % (as_of %) is loaded but not stamped in %',
      run_as_of, latest.month, latest.as_of, array_to_string(unstamped, ', ')
      USING HINT = format('its run failed or is still running: fix it and re-run %s first', latest.month);
  END IF;
  RETURN run_as_of;
END $$;

-- May a run write the snapshot at run_as_of? Only while it is the latest loaded month. After a
-- later month, an as_of already stamped is frozen (false: the run leaves it), and one never
-- stamped cannot be stamped any more from live tables that hold a later state (raises).
CREATE OR REPLACE FUNCTION streamflow_may_stamp(run_as_of DATE, snapshot_table TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql STABLE AS $$
DECLARE
  later RECORD;
BEGIN
  SELECT * INTO later FROM streamflow_later_month(run_as_of);
  IF NOT FOUND THEN
    RETURN TRUE;
  END IF;
  IF streamflow_is_stamped(snapshot_table, run_as_of) THEN
    RETURN FALSE;
  END IF;
  RAISE EXCEPTION 'cannot stamp % at as_of % : % (as_of %) is already loaded and the live tables hold its state',
    snapshot_table, run_as_of, later.month, later.as_of
    USING HINT = 'to rebuild from an earlier month run `make reset` (or empty the warehouse) and load every month again in order';
END $$;

-- The stamp's first step (sql/queries/stamp_snapshot.sql), under its lock: may it write (streamflow_may_stamp),
-- and if so, the as_of's partition exists afterwards.
CREATE OR REPLACE FUNCTION streamflow_begin_stamp(run_as_of DATE, snapshot_table TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
  IF streamflow_may_stamp(run_as_of, snapshot_table) THEN
    PERFORM streamflow_snapshot_partition(snapshot_table, run_as_of);
    RETURN TRUE;
  END IF;
  RETURN FALSE;
END $$;

-- The stamp's last step: statistics the planner can trust for the as_of's partition. A partition
-- that was never analysed (reltuples < 0: just created) or whose row count moved by more than 10 %
-- since is analysed now, in the stamp's transaction, so the next statement on it (a re-stamp, a
-- training build) is planned from its real size and not from autovacuum's timing: without it a
-- re-stamp right after a first stamp was planned as a nested-loop anti join, quadratic in the users.
CREATE OR REPLACE FUNCTION streamflow_analyze_stamp(run_as_of DATE, snapshot_table TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
DECLARE
  stamped RECORD;
  known_rows REAL;
BEGIN
  SELECT * INTO stamped FROM snapshot_stamps AS s
  WHERE s.snapshot_table = streamflow_analyze_stamp.snapshot_table AND s.as_of = run_as_of;
  IF NOT FOUND THEN
    RETURN FALSE;
  END IF;
  SELECT reltuples INTO known_rows FROM pg_class WHERE oid = to_regclass(format('%I', stamped.partition_name));
  IF known_rows >= 0 AND abs(known_rows - stamped.rows) <= 0.1 * greatest(stamped.rows, known_rows) THEN
    RETURN FALSE;
  END IF;
  EXECUTE format('ANALYZE %I', stamped.partition_name);
  RETURN TRUE;
END $$;
