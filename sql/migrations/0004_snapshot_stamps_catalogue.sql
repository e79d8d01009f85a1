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
