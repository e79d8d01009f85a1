-- The record of sql/migrations/: one row per migration file this database has, in the order they
-- were applied (streamflow.schema.apply_schema). checksum: the sha256 of the file as applied; setup
-- refuses to go on when a recorded file has changed since. baselined: the database was created at
-- this migration's shape or later (a fresh one: the schema files already hold what it changes), so
-- the file was recorded without running.
CREATE TABLE IF NOT EXISTS schema_migrations (
  filename TEXT PRIMARY KEY,
  checksum TEXT NOT NULL,
  baselined BOOLEAN NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
