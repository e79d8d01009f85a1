-- Every failing user_id of a failed expectation, with its value, next to its
-- validation_results row: the full list for the extract's owner, where the task log and
-- validation_results.samples keep ten. Bounded per expectation (validation.FAILING_KEYS_LIMIT);
-- validation_results.unexpected_count keeps the true count, so kept < unexpected says "cut".
CREATE TABLE IF NOT EXISTS validation_failing_keys (
  validation_result_id BIGINT NOT NULL REFERENCES validation_results (id) ON DELETE CASCADE,
  user_id TEXT,
  value TEXT
);
-- Created only when missing: setup must not lock an existing table (see 004).
DO $$ BEGIN
  IF to_regclass('validation_failing_keys_result') IS NULL THEN
    CREATE INDEX validation_failing_keys_result ON validation_failing_keys (validation_result_id);
  END IF;
END $$;
