-- The columns a month's file does not carry, given their live values in its staged table
-- (streamflow.staged_table.fill_from_live), so that validation sees each row as the publish will
-- leave it. {target}: the staged table; {names}: the absent columns; {values}: the same columns of
-- {live}, the live table; {key}: the user_id both are keyed by.
UPDATE {target} AS staged
SET ({names}) = ROW({values})
FROM {live} AS live
WHERE live.{key} = staged.{key}
