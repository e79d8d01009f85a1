-- Record one migration as had (sql/schema/000_schema_migrations.sql), with the sha256 of its file:
-- a later setup stops if the file has changed. baselined: a new database, created at the current
-- shape, had it recorded without running it.
INSERT INTO schema_migrations (filename, checksum, baselined)
VALUES (%(filename)s, %(checksum)s, %(baselined)s)
