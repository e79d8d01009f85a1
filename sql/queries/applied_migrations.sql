-- The migrations this database has (sql/schema/000_schema_migrations.sql), in the order applied.
SELECT filename, checksum, applied_at FROM schema_migrations ORDER BY applied_at, filename
