-- publish_merge.sql for a staged table ({staged_table}) whose file carried {key} alone: there is
-- nothing to update (an UPDATE of no column is no SQL), so only the users not yet in the live
-- table ({live_table}) are inserted. Rendered by streamflow.publish.merge_statement.
MERGE INTO {live_table} AS live
USING {staged_table} AS staged ON live.{key} = staged.{key}
WHEN NOT MATCHED THEN
  INSERT ({columns}) VALUES ({staged_columns})
