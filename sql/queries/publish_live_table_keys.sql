-- Every primary, unique, foreign and exclusion key on or referencing the six live tables (bound:
-- their names, and the key column user_id). Read by streamflow.publish before a first load sets
-- the keys aside: only keys exactly as sql/schema/001_live_tables.sql declares them are dropped
-- and built again after the load, any other shape keeps the row-by-row path.
-- plain: a single-column key on user_id, referencing user_id, NO ACTION, MATCH SIMPLE, not
-- deferrable, validated; owned: we may ALTER the table.
SELECT c.conname, c.conrelid::regclass::text, c.contype, nullif(c.confrelid, 0)::regclass::text AS referenced,
       c.conkey = ARRAY[a.attnum] AND a.attname = %(key)s
         AND (c.contype <> 'f' OR (c.confkey = ARRAY[r.attnum] AND r.attname = %(key)s
              AND c.confupdtype = 'a' AND c.confdeltype = 'a' AND c.confmatchtype = 's'))
         AND NOT c.condeferrable AND c.convalidated AS plain,
       pg_has_role(t.relowner, 'USAGE') AS owned
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
LEFT JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
LEFT JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = c.confkey[1]
WHERE c.contype IN ('p', 'u', 'f', 'x')
  AND (c.conrelid = ANY(%(tables)s::regclass[]) OR c.confrelid = ANY(%(tables)s::regclass[]))
