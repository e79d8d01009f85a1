-- The keys of a refused file, staged as text ({raw}), that are on more than one line: each key
-- ({key} read as the contract reads a cell, streamflow.diagnosis.cell: trimmed, blank as NULL)
-- with its first line and every line it is on. streamflow.diagnosis samples them.
SELECT min(line_no) + 1, NULLIF(btrim({key}), ''), string_agg((line_no + 1)::text, ', ' ORDER BY line_no)
FROM {raw}
WHERE NULLIF(btrim({key}), '') IS NOT NULL
GROUP BY NULLIF(btrim({key}), '')
HAVING count(*) > 1
