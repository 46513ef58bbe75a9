-- Digests, schema version 3 (after 0002_snapshots_and_listing): what the last run did, and
-- when the last full digest was posted.
-- last_status: short human-readable outcome of the last run ("posted", "no changes",
--              "skipped: Spotify is rate limiting…"), shown by /digest list.
-- last_posted_at: UTC ISO-8601 time of the last digest that posted the full clusters; the
--              "no changes since <date>" line uses it.
ALTER TABLE digest_subscriptions ADD COLUMN last_status TEXT;
ALTER TABLE digest_subscriptions ADD COLUMN last_posted_at TEXT;
