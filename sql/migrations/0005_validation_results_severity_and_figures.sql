-- Added for the checks against history (issue 18): a failed row with severity 'warn' does not
-- block the publish; `figures` holds a history check's this-month, previous and bound (NULL for
-- the row rules).
-- Written for a warehouse set up before migrations were recorded, at any earlier state: guarded,
-- it changes only what is missing (ALTER TABLE locks the table even when the column exists).
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'validation_results'
                   AND column_name = 'figures') THEN
    ALTER TABLE validation_results ADD COLUMN IF NOT EXISTS severity TEXT NOT NULL DEFAULT 'fail' CHECK (severity IN ('fail', 'warn')),
      ADD COLUMN IF NOT EXISTS figures JSONB;
  END IF;
END $$;
