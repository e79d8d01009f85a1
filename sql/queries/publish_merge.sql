-- Publish a staged table ({staged_table}) into its live table ({live_table}) when that has rows.
-- Rendered by streamflow.publish.merge_statement with the file's columns: {columns} all of them,
-- {non_key_columns} all but {key}. A MERGE, not INSERT ... ON CONFLICT DO UPDATE ... WHERE (which
-- locks, and so rewrites, every conflicting row): a row is updated only where a value IS DISTINCT
-- FROM the stored one, a row that did not change is not touched, and a new user is inserted. A
-- column the file left out is not named, so it keeps its live value.
MERGE INTO {live_table} AS live
USING {staged_table} AS staged ON live.{key} = staged.{key}
WHEN MATCHED AND ({live_non_key_columns}) IS DISTINCT FROM ({staged_non_key_columns}) THEN
  UPDATE SET ({non_key_columns}) = ROW({staged_non_key_columns})
WHEN NOT MATCHED THEN
  INSERT ({columns}) VALUES ({staged_columns})
