-- Point-in-time training set: every feature snapshot and the label at one as_of, per user.
-- Reads snapshot tables only, so what it returns for a date never changes when later months load.
-- Inner joins: a user missing from one snapshot at that as_of is left out rather than given NULLs
-- (validation makes every table cover every user, and a month is stamped whole before the next).
-- Rendered with psycopg.sql from the registry (streamflow.schema.training_set_function): the
-- snapshot tables of streamflow.registry.SNAPSHOTTED, in its order, and their snapshot columns, so
-- churn_label (labels_snapshots, the last) comes last. Its columns are training_examples' too.
-- Example: SELECT count(*) FILTER (WHERE churn_label) FROM training_set('2024-01-31');  -- 1869
CREATE OR REPLACE FUNCTION training_set(snapshot_as_of DATE)
RETURNS TABLE (
  user_id TEXT, as_of DATE,
  {columns}
)
LANGUAGE sql STABLE AS $$
  SELECT {first}.user_id, {first}.as_of,
         {selected}
  FROM {first}
  {joins}
  WHERE {first}.as_of = snapshot_as_of
$$;
