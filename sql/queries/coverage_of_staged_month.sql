-- Great Expectations' coverage check of a staged month (streamflow.validation.coverage_query): every
-- user of this month's users.csv must have a row in this month's file (a live row from an earlier
-- month does not cover it), and every row must have a user, staged or already live. When users.csv
-- is a replay (staged empty), this month's users are the user_ids kept from the file the month was
-- published from: streamflow_month_users (sql/functions/009) reads either. One hash full join for
-- both directions (not NOT IN, which is quadratic past work_mem). {batch} is left for GX to fill
-- with the table validated; `gap` says which side is missing (validation.COVERAGE_GAP).
-- {staging_schema} is the run's staging schema as a literal (psycopg.sql.Literal), not a bound
-- parameter: GX runs the query text as it is. It is a checked name (streamflow.staging.checked).
-- GX keeps the query as the expectation's kwarg, stored and shown by the Validation view: it is sent
-- on one line, so a comment here takes a line of its own and no string holds a run of spaces.
SELECT coalesce(month_users.user_id, batch_rows.user_id) AS user_id,
       CASE WHEN month_users.user_id IS NULL THEN 'a row without a user' ELSE 'a user without a row' END AS gap
FROM (SELECT user_id FROM streamflow_month_users({staging_schema})) AS month_users
FULL JOIN (SELECT user_id FROM {batch}) AS batch_rows ON batch_rows.user_id = month_users.user_id
WHERE batch_rows.user_id IS NULL
   -- A row whose user is not in this month's users.csv is a gap only when no month knows the user.
   OR (month_users.user_id IS NULL
       AND NOT EXISTS (SELECT FROM users AS live WHERE live.user_id = batch_rows.user_id))
