-- Every expectation outcome of every validation run, pass or fail (written by the validate tasks).
CREATE TABLE IF NOT EXISTS validation_results (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id TEXT NOT NULL,
  month TEXT NOT NULL,
  as_of DATE NOT NULL,
  table_name TEXT NOT NULL,
  expectation TEXT NOT NULL,
  column_name TEXT,
  kwargs JSONB NOT NULL,
  success BOOLEAN NOT NULL,
  element_count BIGINT,
  unexpected_count BIGINT,
  unexpected_percent NUMERIC,
  samples JSONB NOT NULL DEFAULT '[]',
  error TEXT,
  validated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expectation_type TEXT,
  why TEXT
);
-- Added for the validation view (the GX type and the reason for the bound). Only when missing:
-- ALTER TABLE takes an exclusive lock even when the column exists (see 004).
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'validation_results'
                   AND column_name = 'why') THEN
    ALTER TABLE validation_results ADD COLUMN IF NOT EXISTS expectation_type TEXT, ADD COLUMN IF NOT EXISTS why TEXT;
  END IF;
END $$;
-- Created only when missing: setup must not lock an existing table (see 004).
DO $$ BEGIN
  IF to_regclass('validation_results_run') IS NULL THEN
    CREATE INDEX validation_results_run ON validation_results (run_id, table_name);
  END IF;
END $$;
-- Added for the checks against history (issue 18): a failed row with severity 'warn' does not
-- block the publish; `figures` holds a history check's this-month, previous and bound (NULL for
-- the row rules). Only when missing, as above.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'validation_results'
                   AND column_name = 'figures') THEN
    ALTER TABLE validation_results ADD COLUMN IF NOT EXISTS severity TEXT NOT NULL DEFAULT 'fail' CHECK (severity IN ('fail', 'warn')),
      ADD COLUMN IF NOT EXISTS figures JSONB;
  END IF;
END $$;
