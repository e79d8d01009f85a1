-- One row per (run, table) load attempt: what was read, what it changed, how it ended.
-- status: loaded = applied to the live tables; replayed = an older month re-run from the very
-- files it was loaded from (nothing to apply); failed = refused or rejected, nothing written.
-- snapshot_policy: how the run treats an as_of already stamped ('restamp' or 'immutable').
-- accepted_checks: failed checks against history the run was told to accept (its `accept` param):
-- the month published though they failed, and this says so.
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
  accepted_checks TEXT[] NOT NULL DEFAULT '{}',
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
