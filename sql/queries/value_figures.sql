-- One staged column's figures taken over its values' groups (streamflow.metrics._value_figures): its
-- non-NULL cells, distinct non-NULL values, min and max and, for a text column, its value frequencies
-- (NULL as "null"), by a GROUP BY of its own. A column of a few values has a few groups: its figures
-- cost nothing beyond the grouping, where the aggregate scan would take them over every row. The
-- measured columns' queries are joined by UNION ALL into one statement, which PostgreSQL runs as a
-- Parallel Append (GROUP BY GROUPING SETS, one scan for every column, runs in one process and cost
-- three times as much on a column with a million values). The placeholders are code constants and
-- identifiers: the column's place in the list (position), its ordering (collate: byte order for
-- text), whether its frequencies are kept (frequencies, true or false), the column and the staged
-- table (batch).
SELECT {position} AS position, sum(rows) FILTER (WHERE value IS NOT NULL)::bigint AS non_null,
       count(value) AS distinct_values, min(value{collate})::text AS min_value,
       max(value{collate})::text AS max_value,
       jsonb_object_agg(coalesce(value::text, 'null'), rows) FILTER (WHERE {frequencies}) AS frequencies
FROM (SELECT {column} AS value, count(*) AS rows FROM {batch} GROUP BY {column}) AS groups
