-- Each table's last ledger row of one run (bound: the run id). streamflow.ledger.published_already
-- reads from them whether the run has published all six tables already (a retried publish task
-- then reports what was published instead of publishing again).
SELECT DISTINCT ON (table_name) table_name, rows_in_file, inserted, updated, unchanged, status
FROM ingestion_ledger
WHERE run_id = %(run_id)s
ORDER BY table_name, id DESC
