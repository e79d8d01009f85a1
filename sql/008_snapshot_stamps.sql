-- The catalogue of stamps: one row per (snapshot table, as_of) stamped, written by the stamp
-- itself (sql/stamp_snapshot.sql) in the transaction that writes the rows. What is stamped is
-- looked up here (the stamp, streamflow_may_stamp, streamflow_assert_loadable), never by scanning
-- snapshot data, so those checks cost the same at month 36 as at month 2.
-- rows: the partition's row count after the latest stamp.
CREATE TABLE IF NOT EXISTS snapshot_stamps (
  snapshot_table TEXT NOT NULL,
  as_of DATE NOT NULL,
  partition_name TEXT NOT NULL,
  rows BIGINT NOT NULL,
  first_stamped_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  last_stamped_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (snapshot_table, as_of)
);

-- A warehouse stamped before the catalogue existed: catalogue what its partitions hold, once.
DO $$
DECLARE
  stamped RECORD;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM snapshot_stamps) THEN
    FOR stamped IN
      SELECT parent.relname AS snapshot_table, child.relname AS partition_name
      FROM pg_inherits JOIN pg_class AS parent ON parent.oid = inhparent JOIN pg_class AS child ON child.oid = inhrelid
      WHERE parent.relname LIKE '%\_snapshots' AND parent.relnamespace = current_schema()::regnamespace LOOP
      EXECUTE format('INSERT INTO snapshot_stamps (snapshot_table, as_of, partition_name, rows)'
                     ' SELECT %L, as_of, %L, count(*) FROM %I GROUP BY as_of',
                     stamped.snapshot_table, stamped.partition_name, stamped.partition_name);
    END LOOP;
  END IF;
END $$;
