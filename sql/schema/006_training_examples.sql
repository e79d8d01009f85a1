-- Materialised training sets: training_set(as_of) frozen into a table, one row per (as_of, user_id),
-- written by the training_set DAG when the five snapshot assets of an as_of are updated.
-- Its columns are training_set()'s own (sql/functions/005), in its order: one definition, and the build's
-- INSERT ... SELECT * cannot map a column to the wrong place.
CREATE TABLE IF NOT EXISTS training_examples AS SELECT * FROM training_set(NULL) WITH NO DATA;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'training_examples'::regclass AND contype = 'p') THEN
    ALTER TABLE training_examples ADD PRIMARY KEY (as_of, user_id);
  END IF;
END $$;

-- One row per build: what was written and from which snapshot as_of. content_md5 is the md5 of the
-- as_of's rows in user_id byte order (COLLATE "C": the same hash whatever the database's collation):
-- two builds of one as_of with equal hashes wrote identical rows.
CREATE TABLE IF NOT EXISTS training_set_manifest (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  as_of DATE NOT NULL,
  snapshot_as_of DATE NOT NULL,
  rows BIGINT NOT NULL,
  churners BIGINT NOT NULL,
  content_md5 TEXT NOT NULL,
  run_id TEXT NOT NULL,
  built_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
