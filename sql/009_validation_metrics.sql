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

-- A kept set's fingerprint from its hashes: what metrics.fingerprint makes of the same set.
CREATE OR REPLACE FUNCTION streamflow_user_set_fingerprint(user_hashes BIGINT[]) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
  SELECT count(*) || ':' || coalesce(bit_xor(h), 0) || ':' || coalesce(bit_xor(hashint8extended(h, 1)), 0)
  FROM unnest(user_hashes) AS h
$$;

-- A warehouse set up before the sets were shared keeps one set per file (validation_keysets.user_hashes):
-- move each into validation_user_sets under its fingerprint, once.
DO $$ BEGIN
  IF EXISTS (SELECT FROM information_schema.columns WHERE table_schema = current_schema()
             AND table_name = 'validation_keysets' AND column_name = 'user_hashes') THEN
    ALTER TABLE validation_keysets ADD COLUMN IF NOT EXISTS fingerprint TEXT,
      ADD COLUMN IF NOT EXISTS previous_fingerprint TEXT;
    UPDATE validation_keysets SET fingerprint = streamflow_user_set_fingerprint(user_hashes);
    INSERT INTO validation_user_sets (run_id, fingerprint, as_of, user_hashes)
      SELECT DISTINCT ON (run_id, fingerprint) run_id, fingerprint, as_of, user_hashes FROM validation_keysets
      ON CONFLICT DO NOTHING;
    ALTER TABLE validation_keysets DROP COLUMN user_hashes;
  END IF;
END $$;

-- The run that published table_name in each of the (at most max_months) months before
-- before_as_of, newest first: whose figures are a month's history.
CREATE OR REPLACE FUNCTION streamflow_published_runs(table_name TEXT, before_as_of DATE, max_months INTEGER)
RETURNS TABLE (as_of DATE, run_id TEXT)
LANGUAGE sql STABLE AS $$
  SELECT published.as_of, published.run_id FROM (
    SELECT DISTINCT ON (l.as_of) l.as_of, l.run_id FROM ingestion_ledger AS l
    WHERE l.table_name = streamflow_published_runs.table_name AND l.status = 'loaded'
      AND l.as_of < before_as_of
    ORDER BY l.as_of DESC, l.id DESC
  ) AS published
  ORDER BY published.as_of DESC LIMIT max_months
$$;

-- The users of the month a staging schema holds: its staged users.csv; when that file is a replay
-- (staged empty: the very file the month was published from), the live users whose hash is in the
-- set kept from that file (they are all live: it was published); for a month published before the
-- sets were kept, every live user. What the coverage expectation (validation.coverage_query)
-- requires a row of in each of the month's other files.
CREATE OR REPLACE FUNCTION streamflow_month_users(staging_schema TEXT) RETURNS TABLE (user_id TEXT)
LANGUAGE plpgsql STABLE ROWS 100000 AS $$
DECLARE
  staged_month TEXT;
BEGIN
  RETURN QUERY EXECUTE format('SELECT user_id FROM %I.users', staging_schema);
  IF FOUND THEN
    RETURN;
  END IF;
  EXECUTE format('SELECT month FROM %I.staged_files WHERE table_name = %L', staging_schema, 'users')
    INTO staged_month;
  RETURN QUERY
    SELECT u.user_id FROM users AS u WHERE hashtextextended(u.user_id, 0) IN (
      SELECT unnest(s.user_hashes) FROM validation_keysets AS k
      JOIN validation_user_sets AS s ON s.run_id = k.run_id AND s.fingerprint = k.fingerprint
      WHERE k.table_name = 'users' AND k.run_id = (
        SELECT l.run_id FROM ingestion_ledger AS l
        WHERE l.table_name = 'users' AND l.status = 'loaded' AND l.month = staged_month ORDER BY l.id DESC LIMIT 1));
  IF FOUND THEN
    RETURN;
  END IF;
  RETURN QUERY SELECT u.user_id FROM users AS u;
END $$;
