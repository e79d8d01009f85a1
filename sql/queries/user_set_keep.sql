-- Keep a staged file's user_ids as one array of 64-bit hashes under (run, fingerprint)
-- (streamflow.user_sets.keep): the figures of a later month count who joined, left and stayed
-- against it. The key column and the staged table are identifiers; the run, fingerprint and
-- as_of are bound. An empty file keeps an empty array, not NULL.
INSERT INTO validation_user_sets (run_id, fingerprint, as_of, user_hashes)
SELECT %(run_id)s, %(fingerprint)s, %(as_of)s, coalesce(array_agg(hashtextextended({key}, 0)), '{{}}')
FROM {batch}
