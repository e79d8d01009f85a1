-- Every expectation outcome of every validation run, pass or fail (written by the validate tasks).
-- expectation_type, why: the GX type and the reason for the bound (the validation view).
-- severity: a failed row with 'warn' does not block the publish (checks against history, issue 18);
-- figures: a history check's this-month, previous and bound (NULL for the row rules).
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
  why TEXT,
  severity TEXT NOT NULL DEFAULT 'fail' CHECK (severity IN ('fail', 'warn')),
  figures JSONB
);
-- Created only when missing: setup must not lock an existing table (see 004).
DO $$ BEGIN
  IF to_regclass('validation_results_run') IS NULL THEN
    CREATE INDEX validation_results_run ON validation_results (run_id, table_name);
  END IF;
END $$;
