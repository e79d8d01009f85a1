-- The keys of a refused file, staged as text ({raw}), that are on more than one line: each key
-- ({key}: the user_id cell as the contract reads it, streamflow.diagnosis.cell: trimmed of its
-- padding, blank as NULL) with its first line and every line it is on. streamflow.diagnosis
-- samples them.
SELECT min(line_no) + 1, {key}, string_agg((line_no + 1)::text, ', ' ORDER BY line_no)
FROM {raw}
WHERE {key} IS NOT NULL
GROUP BY {key}
HAVING count(*) > 1
