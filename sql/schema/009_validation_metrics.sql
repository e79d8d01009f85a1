-- Month-level figures of every validated table (include/streamflow/metrics.py), one set per run:
-- what the checks against history (expectations.yml, `check:` entries) compare a month with.
-- A month's history is the figures of the run that published it (ingestion_ledger, 'loaded'),
-- so figures of runs that failed are kept for the Validation view but never compared against.
-- One row per table (column_name NULL: rows and the users joined, left and kept against the
-- previous published month) and one per column.
CREATE TABLE IF NOT EXISTS validation_metrics (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id TEXT NOT NULL,
  month TEXT NOT NULL,
  as_of DATE NOT NULL,
  table_name TEXT NOT NULL,
  column_name TEXT,
  rows BIGINT NOT NULL,
  null_fraction DOUBLE PRECISION,
  distinct_count BIGINT,
  min_value TEXT,
  max_value TEXT,
  mean DOUBLE PRECISION,          -- numeric and integer columns; a boolean column: the fraction true
  stddev DOUBLE PRECISION,        -- sample standard deviation, as mean
  frequencies JSONB,              -- text and boolean columns with few values: {value: rows}, NULL as "null"
  users_joined BIGINT,            -- table rows only: user_ids not in the previous published month's file
  users_left BIGINT,              -- in the previous published month's file, not in this one
  users_kept BIGINT,              -- in both
  previous_as_of DATE,            -- the month users_* compare against (NULL: none published before)
  computed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Created only when missing: setup must not lock an existing table (see 004).
DO $$ BEGIN
  IF to_regclass('validation_metrics_run') IS NULL THEN
    CREATE INDEX validation_metrics_run ON validation_metrics (run_id, table_name);
  END IF;
END $$;

-- The user_ids of each validated file, per run, as 64-bit hashes (hashtextextended(user_id, 0)):
-- the next month counts its users joined, left and kept against the run that published the month
-- before. The live tables cannot say it: they keep every user ever loaded. Hashes, not the text:
-- a seventh of the cost to build and to join at 1M users (a collision among 10^6 ids has odds of
-- ~10^-8, and would move a count by one). A month's six files usually hold the same users, so a
-- set is kept once per run and fingerprint (include/streamflow/metrics.py, `fingerprint`) and each
-- file names the set it holds. STORAGE EXTERNAL: hashes do not compress, so do not try. The
-- publish keeps only its own and the previous month's sets.
CREATE TABLE IF NOT EXISTS validation_user_sets (
  run_id TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  as_of DATE NOT NULL,
  user_hashes BIGINT[] STORAGE EXTERNAL NOT NULL,
  PRIMARY KEY (run_id, fingerprint)
);
CREATE TABLE IF NOT EXISTS validation_keysets (
  run_id TEXT NOT NULL,
  as_of DATE NOT NULL,
  table_name TEXT NOT NULL,
  fingerprint TEXT,               -- its user set in validation_user_sets
  previous_fingerprint TEXT,      -- the previous month's set its users_* were counted against
  PRIMARY KEY (run_id, table_name)
);
