-- A warehouse set up before the sets were shared keeps one set per file (validation_keysets.user_hashes):
-- move each into validation_user_sets under its fingerprint, once.
DO $$ BEGIN
  IF EXISTS (SELECT FROM information_schema.columns WHERE table_schema = current_schema()
             AND table_name = 'validation_keysets' AND column_name = 'user_hashes') THEN
    ALTER TABLE validation_keysets ADD COLUMN IF NOT EXISTS fingerprint TEXT,
      ADD COLUMN IF NOT EXISTS previous_fingerprint TEXT;
    UPDATE validation_keysets SET fingerprint = streamflow_user_set_fingerprint(user_hashes);
    INSERT INTO validation_user_sets (run_id, fingerprint, as_of, user_hashes)
      SELECT DISTINCT ON (run_id, fingerprint) run_id, fingerprint, as_of, user_hashes FROM validation_keysets
      ON CONFLICT DO NOTHING;
    ALTER TABLE validation_keysets DROP COLUMN user_hashes;
  END IF;
END $$;
