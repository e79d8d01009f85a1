INSERT INTO schema_migrations (filename, checksum, baselined)
VALUES (%(filename)s, %(checksum)s, %(baselined)s)
