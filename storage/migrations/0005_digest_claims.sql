-- A claimed digest run that has not finished yet (issue #14), schema version 5.
-- Claiming a due run moves next_run_at to the next slot and sets claimed_at; recording the
-- run's outcome (posted, unchanged, skipped, paused, failed) clears it. A value found at
-- start-up is a run the previous process was killed in: it is run again at once instead of
-- waiting for the next slot (a week, for a weekly digest).
ALTER TABLE digest_subscriptions ADD COLUMN claimed_at TEXT;
