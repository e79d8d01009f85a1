-- Great Expectations' coverage check of a live table (streamflow.validation.coverage_query): its
-- rows without a user and the users without a row, one hash full join for both directions (not
-- NOT IN, which is quadratic past work_mem). {batch} is left for GX to fill with the table
-- validated; `gap` says which side is missing (validation.COVERAGE_GAP).
-- GX keeps the query as the expectation's kwarg, stored and shown by the Validation view: it is sent
-- on one line, so a comment here takes a line of its own and no string holds a run of spaces.
SELECT coalesce(known.user_id, batch_rows.user_id) AS user_id,
       CASE WHEN known.user_id IS NULL THEN 'a row without a user' ELSE 'a user without a row' END AS gap
FROM users AS known
FULL JOIN (SELECT user_id FROM {batch}) AS batch_rows ON batch_rows.user_id = known.user_id
WHERE known.user_id IS NULL OR batch_rows.user_id IS NULL
