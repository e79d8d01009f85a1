-- One point-in-time snapshot table, rendered once per snapshot table of the registry
-- (streamflow.registry.SNAPSHOTTED) with psycopg.sql: {snapshot_table} its name, {columns} its
-- snapshot columns and their types. One row per (user_id, as_of), as_of = last day of the month a
-- run covers; names, types and key are the snapshot contract (the spec's).
-- Partitioned by as_of, one partition per month, created by the stamp that first writes the month
-- (streamflow_snapshot_partition, sql/functions/002_snapshot_partitions.sql): a stamp, a re-stamp
-- and training_set(as_of) read that month's partition only, so their cost does not grow with the
-- months already stamped.
CREATE TABLE IF NOT EXISTS {snapshot_table} (
  user_id TEXT, as_of DATE,
  {columns},
  PRIMARY KEY (user_id, as_of)
) PARTITION BY RANGE (as_of);
