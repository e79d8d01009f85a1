-- A run's staging area (schema {schema}, named from the run id by streamflow.staging): the
-- month's files as typed UNLOGGED tables, one per live table, plus this manifest of what each
-- upsert task staged. The publish task applies them all to the live tables in one transaction
-- and drops the schema in that same transaction.
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE UNLOGGED TABLE IF NOT EXISTS {schema}.staged_files (
  table_name TEXT PRIMARY KEY,
  month TEXT NOT NULL,
  run_id TEXT NOT NULL,
  file_path TEXT NOT NULL,
  file_sha256 TEXT NOT NULL,
  rows_in_file BIGINT NOT NULL,
  columns TEXT[] NOT NULL,
  absent_columns TEXT[] NOT NULL,
  method TEXT NOT NULL,
  staged_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
