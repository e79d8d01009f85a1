-- Replace the training examples of one as_of (bound: the as_of and the run id) and return the
-- build's manifest row. The work is streamflow_build_training_examples
-- (sql/functions/006_training_examples.sql): it refuses, raising, an as_of whose snapshots are not
-- all stamped, so streamflow.training runs this in a transaction of its own.
SELECT as_of::text, snapshot_as_of::text, rows, churners, content_md5, run_id
FROM streamflow_build_training_examples(%(as_of)s::date, %(run_id)s)
