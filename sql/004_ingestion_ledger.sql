-- One row per (run, table) load attempt: what was read, what it changed, how it ended.
-- status: loaded = applied to the live tables; replayed = an older month re-run from the very
-- files it was loaded from (nothing to apply); failed = refused or rejected, nothing written.
-- snapshot_policy: how the run treats an as_of already stamped ('restamp' or 'immutable').
CREATE TABLE IF NOT EXISTS ingestion_ledger (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id TEXT NOT NULL,
  month TEXT NOT NULL,
  as_of DATE NOT NULL,
  table_name TEXT NOT NULL,
  file_path TEXT NOT NULL,
  file_sha256 TEXT,
  rows_in_file BIGINT,
  inserted BIGINT,
  updated BIGINT,
  unchanged BIGINT,
  absent_columns TEXT[] NOT NULL DEFAULT '{}',
  status TEXT NOT NULL CHECK (status IN ('loaded', 'replayed', 'failed')),
  error TEXT,
  snapshot_policy TEXT,
  started_at TIMESTAMPTZ NOT NULL,
  finished_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
-- Setup runs before every DAG run: nothing here may lock a table that already exists (an open
-- reader would block the pipeline), so indexes are created only when missing.
DO $$ BEGIN
  IF to_regclass('ingestion_ledger_as_of') IS NULL THEN
    CREATE INDEX ingestion_ledger_as_of ON ingestion_ledger (as_of) WHERE status = 'loaded';
  END IF;
END $$;

-- The latest month loaded after run_as_of, if any: the live tables then hold a later state.
CREATE OR REPLACE FUNCTION streamflow_later_month(run_as_of DATE) RETURNS TABLE (month TEXT, as_of DATE)
LANGUAGE sql STABLE AS $$
  SELECT l.month, l.as_of FROM ingestion_ledger AS l
  WHERE l.status = 'loaded' AND l.as_of > run_as_of ORDER BY l.as_of DESC LIMIT 1
$$;

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
  unstamped TEXT[] := '{}';
  snapshot_table TEXT;
  stamped BOOLEAN;
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
  next_as_of := (date_trunc('month', latest.as_of) + interval '2 months' - interval '1 day')::date;
  IF run_as_of <> next_as_of THEN
    RAISE EXCEPTION 'refusing to apply as_of % : the latest loaded month is % (as_of %), so the next one is as_of %',
      run_as_of, latest.month, latest.as_of, next_as_of
      USING HINT = 'months apply one after another: load the months in between first';
  END IF;
  FOREACH snapshot_table IN ARRAY snapshot_tables LOOP
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE as_of = $1)', snapshot_table) INTO stamped USING latest.as_of;
    IF NOT stamped THEN
      unstamped := unstamped || snapshot_table;
    END IF;
  END LOOP;
  IF cardinality(unstamped) > 0 THEN
    RAISE EXCEPTION 'refusing to apply as_of % : % (as_of %) is loaded but not stamped in %',
      run_as_of, latest.month, latest.as_of, array_to_string(unstamped, ', ')
      USING HINT = format('its run failed or is still running: fix it and re-run %s first', latest.month);
  END IF;
  RETURN run_as_of;
END $$;
DROP FUNCTION IF EXISTS streamflow_assert_latest_month(DATE);

-- May a run write the snapshot at run_as_of? Only while it is the latest loaded month. After a
-- later month, an as_of already stamped is frozen (false: the run leaves it), and one never
-- stamped cannot be stamped any more from live tables that hold a later state (raises).
CREATE OR REPLACE FUNCTION streamflow_may_stamp(run_as_of DATE, snapshot_table TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql STABLE AS $$
DECLARE
  later RECORD;
  stamped BOOLEAN;
BEGIN
  SELECT * INTO later FROM streamflow_later_month(run_as_of);
  IF NOT FOUND THEN
    RETURN TRUE;
  END IF;
  EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE as_of = $1)', snapshot_table) INTO stamped USING run_as_of;
  IF stamped THEN
    RETURN FALSE;
  END IF;
  RAISE EXCEPTION 'cannot stamp % at as_of % : % (as_of %) is already loaded and the live tables hold its state',
    snapshot_table, run_as_of, later.month, later.as_of
    USING HINT = 'to rebuild from an earlier month run `make reset` (or empty the warehouse) and load every month again in order';
END $$;
