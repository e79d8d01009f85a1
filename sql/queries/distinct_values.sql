-- Each measured column's distinct non-NULL values, and the text columns' value frequencies, in one
-- scan (streamflow.metrics._distinct_values): GROUP BY GROUPING SETS, one set per column, a hash
-- each (count(DISTINCT) would sort per column). GROUPING over every column tells the sets apart;
-- only the text columns' values are written as text (their GROUPING values are bound: counted).
-- The placeholders are the registry's columns (names, sets), a CASE and a coalesce over them
-- (is_null, value) and the staged table (batch): identifiers only.
SELECT which, count(*) FILTER (WHERE NOT value_is_null),
       jsonb_object_agg(coalesce(value, 'null'), rows) FILTER (WHERE which = ANY(%(counted)s::int[]))
FROM (SELECT GROUPING({names}) AS which, {is_null} AS value_is_null, {value} AS value, count(*) AS rows
      FROM {batch}
      GROUP BY GROUPING SETS ({sets})) AS groups
GROUP BY which
