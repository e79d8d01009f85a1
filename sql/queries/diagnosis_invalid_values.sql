-- The lines of a refused file, staged as text ({raw}: one text column per file column and the line
-- number), whose {column} is not blank yet is not a valid value of the column's type (bound:
-- pg_type, and iso_date, the YYYY-MM-DD pattern a date must also match: PostgreSQL alone would
-- also read "05/02/2022", as DateStyle says). {cell} is the cell as the contract reads it
-- (streamflow.diagnosis.cell: trimmed of its padding, blank as NULL); the line shows it as written.
-- streamflow.diagnosis samples the lines.
SELECT line_no + 1, {column} FROM {raw}
WHERE {cell} IS NOT NULL
  AND (NOT pg_input_is_valid({cell}, %(pg_type)s::text)
       OR (%(pg_type)s::text = 'date' AND {cell} !~ %(iso_date)s::text))
