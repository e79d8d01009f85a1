-- Replace the training examples of one as_of (and only that one) from training_set(), record the
-- manifest, return it. Everything in the caller's transaction: readers see the old rows or the new.
-- Refuses an as_of without a complete set of snapshots (training_set() would return no row).
CREATE OR REPLACE FUNCTION streamflow_build_training_examples(build_as_of DATE, build_run_id TEXT)
RETURNS SETOF training_set_manifest
LANGUAGE plpgsql AS $$
DECLARE
  built training_set_manifest;
BEGIN
  -- Two builds of one as_of at a time would interleave their DELETE and INSERT.
  PERFORM pg_advisory_xact_lock(hashtext('streamflow_training:' || build_as_of::text));
  DELETE FROM training_examples WHERE as_of = build_as_of;
  INSERT INTO training_examples SELECT * FROM training_set(build_as_of);
  INSERT INTO training_set_manifest (as_of, snapshot_as_of, rows, churners, content_md5, run_id)
  SELECT build_as_of, build_as_of, count(*), count(*) FILTER (WHERE t.churn_label),
         md5(coalesce(string_agg(t::text, E'\n' ORDER BY t.user_id COLLATE "C"), '')), build_run_id
  FROM training_examples AS t WHERE t.as_of = build_as_of
  RETURNING * INTO built;
  IF built.rows = 0 THEN
    RAISE EXCEPTION 'no training examples at as_of % : its five snapshots are not all stamped', build_as_of
      USING HINT = 'a training set is built only from a month whose snapshot tasks all succeeded';
  END IF;
  RETURN NEXT built;
END $$;
