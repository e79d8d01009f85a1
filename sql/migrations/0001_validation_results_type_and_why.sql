-- validation_results.expectation_type and why, added for the validation view (the GX type and the
-- reason for the bound).
-- Written for a warehouse set up before migrations were recorded, at any earlier state: guarded,
-- it changes only what is missing (ALTER TABLE locks the table even when the column exists).
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'validation_results'
                   AND column_name = 'why') THEN
    ALTER TABLE validation_results ADD COLUMN IF NOT EXISTS expectation_type TEXT, ADD COLUMN IF NOT EXISTS why TEXT;
  END IF;
END $$;
