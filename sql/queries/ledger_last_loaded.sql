-- The ledger row of the file a month's table was last loaded from (bound: the month and the table
-- name): its sha256 is what streamflow.ledger.replay_of compares a new file with, so the same file
-- again is a replay. Only rows of status 'loaded' count: a failed or replayed attempt loaded nothing.
SELECT file_sha256, rows_in_file, absent_columns
FROM ingestion_ledger
WHERE month = %(month)s AND table_name = %(table_name)s AND status = 'loaded'
ORDER BY id DESC
LIMIT 1
