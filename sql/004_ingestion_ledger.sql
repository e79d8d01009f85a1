-- One row per (run, table) load attempt: what was read, what it changed, how it ended.
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
  status TEXT NOT NULL CHECK (status IN ('loaded', 'failed')),
  error TEXT,
  started_at TIMESTAMPTZ NOT NULL,
  finished_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS ingestion_ledger_as_of ON ingestion_ledger (as_of) WHERE status = 'loaded';

-- No time travel: loading or stamping month M after a later month was loaded would roll the
-- live tables (or M's snapshot) back to a state that never existed. Raises with the remedy.
CREATE OR REPLACE FUNCTION streamflow_assert_latest_month(run_as_of DATE) RETURNS DATE
LANGUAGE plpgsql AS $$
DECLARE
  latest RECORD;
BEGIN
  SELECT month, as_of INTO latest FROM ingestion_ledger
  WHERE status = 'loaded' AND as_of > run_as_of ORDER BY as_of DESC LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'refusing to apply as_of % : % (as_of %) is already loaded and the live tables hold its state',
      run_as_of, latest.month, latest.as_of
      USING HINT = 'months apply in order; to rebuild from an earlier month run `make reset` (or empty the warehouse) and load every month again in order';
  END IF;
  RETURN run_as_of;
END $$;
