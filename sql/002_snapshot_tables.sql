-- Point-in-time snapshot tables: one row per (user_id, as_of), as_of = last day of the month
-- a run covers. Column names, types and key are the snapshot contract (the spec's).
-- Partitioned by as_of, one partition per month, created by the stamp that first writes the month
-- (streamflow_snapshot_partition): a stamp, a re-stamp and training_set(as_of) read that month's
-- partition only, so their cost does not grow with the months already stamped.
-- Tables from before the partitioning are converted once (below): their rows move into monthly partitions.
DO $$
DECLARE
  snapshot_table TEXT;
BEGIN
  FOREACH snapshot_table IN ARRAY ARRAY['subscriptions_profile_snapshots', 'usage_agg_30d_snapshots',
      'payments_agg_90d_snapshots', 'support_agg_90d_snapshots', 'labels_snapshots'] LOOP
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass(snapshot_table)) = 'r' THEN
      EXECUTE format('ALTER TABLE %I RENAME TO %I', snapshot_table, snapshot_table || '_unpartitioned');
      EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', snapshot_table || '_unpartitioned',
                     snapshot_table || '_pkey', snapshot_table || '_unpartitioned_pkey');
    END IF;
  END LOOP;
END $$;
CREATE TABLE IF NOT EXISTS subscriptions_profile_snapshots (
  user_id TEXT, as_of DATE,
  months_active INT, monthly_fee NUMERIC, paperless_billing BOOLEAN,
  plan_stream_tv BOOLEAN, plan_stream_movies BOOLEAN, net_service TEXT,
  PRIMARY KEY (user_id, as_of)
) PARTITION BY RANGE (as_of);
CREATE TABLE IF NOT EXISTS usage_agg_30d_snapshots (
  user_id TEXT, as_of DATE,
  watch_hours_30d NUMERIC, avg_session_mins_7d NUMERIC, unique_devices_30d INT,
  skips_7d INT, rebuffer_events_7d INT,
  PRIMARY KEY (user_id, as_of)
) PARTITION BY RANGE (as_of);
CREATE TABLE IF NOT EXISTS payments_agg_90d_snapshots (
  user_id TEXT, as_of DATE,
  failed_payments_90d INT,
  PRIMARY KEY (user_id, as_of)
) PARTITION BY RANGE (as_of);
CREATE TABLE IF NOT EXISTS support_agg_90d_snapshots (
  user_id TEXT, as_of DATE,
  support_tickets_90d INT, ticket_avg_resolution_hrs_90d NUMERIC,
  PRIMARY KEY (user_id, as_of)
) PARTITION BY RANGE (as_of);
-- Added by this project: labels change every month and the live table keeps only the latest.
CREATE TABLE IF NOT EXISTS labels_snapshots (
  user_id TEXT, as_of DATE,
  churn_label BOOLEAN,
  PRIMARY KEY (user_id, as_of)
) PARTITION BY RANGE (as_of);

-- The name of the partition of snapshot_table that holds as_of's month: <snapshot_table>_YYYY_MM.
CREATE OR REPLACE FUNCTION streamflow_snapshot_partition_name(snapshot_table TEXT, stamp_as_of DATE) RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT snapshot_table || to_char(stamp_as_of, '"_"YYYY"_"MM')
$$;

-- The partition of snapshot_table that holds as_of's month, created when missing; returns its name.
-- Created apart, then attached: ATTACH PARTITION takes a SHARE UPDATE EXCLUSIVE lock on the parent,
-- so readers of the other months (training builds) are not blocked, where CREATE TABLE ...
-- PARTITION OF would take an ACCESS EXCLUSIVE one.
-- Callers serialise per table (the stamp's advisory lock).
CREATE OR REPLACE FUNCTION streamflow_snapshot_partition(snapshot_table TEXT, stamp_as_of DATE) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
  month_start DATE := date_trunc('month', stamp_as_of)::date;
  partition_name TEXT := streamflow_snapshot_partition_name(snapshot_table, stamp_as_of);
BEGIN
  IF to_regclass(format('%I', partition_name)) IS NULL THEN
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', partition_name, snapshot_table);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', snapshot_table,
                   partition_name, month_start, (month_start + interval '1 month')::date);
  END IF;
  RETURN partition_name;
END $$;

-- The one-time conversion, second half: every month of an old table into its partition.
DO $$
DECLARE
  old_table TEXT;
  snapshot_table TEXT;
  old_as_of DATE;
BEGIN
  FOR old_table IN SELECT relname FROM pg_class
                   WHERE relname LIKE '%\_snapshots\_unpartitioned' AND relkind = 'r'
                     AND relnamespace = current_schema()::regnamespace LOOP
    snapshot_table := left(old_table, -length('_unpartitioned'));
    FOR old_as_of IN EXECUTE format('SELECT DISTINCT as_of FROM %I', old_table) LOOP
      PERFORM streamflow_snapshot_partition(snapshot_table, old_as_of);
    END LOOP;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', snapshot_table, old_table);
    EXECUTE format('DROP TABLE %I', old_table);
  END LOOP;
END $$;
