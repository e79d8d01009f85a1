-- Snapshot tables from before the partitioning (plain tables): each becomes a table partitioned by
-- as_of with the same columns and key, and its rows move into monthly partitions. The setup's
-- CREATE TABLE IF NOT EXISTS (sql/schema/002_snapshot_table.sql) left the old table as it was.
DO $$
DECLARE
  snapshot_table TEXT;
  old_table TEXT;
  old_as_of DATE;
BEGIN
  FOR snapshot_table IN SELECT relname FROM pg_class
                        WHERE relname LIKE '%\_snapshots' AND relkind = 'r'
                          AND relnamespace = current_schema()::regnamespace LOOP
    old_table := snapshot_table || '_unpartitioned';
    EXECUTE format('ALTER TABLE %I RENAME TO %I', snapshot_table, old_table);
    EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', old_table, snapshot_table || '_pkey', old_table || '_pkey');
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL) PARTITION BY RANGE (as_of)', snapshot_table, old_table);
    FOR old_as_of IN EXECUTE format('SELECT DISTINCT as_of FROM %I', old_table) LOOP
      PERFORM streamflow_snapshot_partition(snapshot_table, old_as_of);
    END LOOP;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', snapshot_table, old_table);
    EXECUTE format('DROP TABLE %I', old_table);
  END LOOP;
END $$;
