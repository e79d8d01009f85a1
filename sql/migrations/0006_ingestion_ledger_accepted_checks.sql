-- ingestion_ledger.accepted_checks, added with the checks against history.
-- Written for a warehouse set up before migrations were recorded, at any earlier state: guarded,
-- it changes only what is missing (ALTER TABLE locks the table even when the column exists).
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'ingestion_ledger'
                   AND column_name = 'accepted_checks') THEN
    ALTER TABLE ingestion_ledger ADD COLUMN IF NOT EXISTS accepted_checks TEXT[] NOT NULL DEFAULT '{}';
  END IF;
END $$;
