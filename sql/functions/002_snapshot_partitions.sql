-- Monthly partitions of the snapshot tables (sql/schema/002_snapshot_table.sql).
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

