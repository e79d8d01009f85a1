-- A database setup has never touched: neither the migration record nor the first live table.
-- Its migrations are then recorded as baselined (the schema files create the current shape).
SELECT to_regclass('schema_migrations') IS NULL AND to_regclass('users') IS NULL
