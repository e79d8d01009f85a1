-- The month figures' functions (tables: sql/schema/009_validation_metrics.sql).

-- A kept set's fingerprint from its hashes: what metrics.fingerprint makes of the same set.
CREATE OR REPLACE FUNCTION streamflow_user_set_fingerprint(user_hashes BIGINT[]) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
  SELECT count(*) || ':' || coalesce(bit_xor(h), 0) || ':' || coalesce(bit_xor(hashint8extended(h, 1)), 0)
  FROM unnest(user_hashes) AS h
$$;

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
