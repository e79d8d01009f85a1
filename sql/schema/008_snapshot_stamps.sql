-- The catalogue of stamps: one row per (snapshot table, as_of) stamped, written by the stamp
-- itself (sql/queries/stamp_snapshot.sql) in the transaction that writes the rows. What is stamped is
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
