-- Nothing lost after a dead Spotify link or a crash (issue #14), schema version 6.
--
-- relink_notices: a member whose Spotify link the bot had to drop (Spotify answered
-- invalid_grant to the refresh: the 6-month consent ran out or the member removed the app; or
-- the stored tokens can no longer be decrypted) is told once, privately, on their next
-- command. shown_at is set when that happened (compare-and-set, so two instances never both
-- tell); a new link deletes the row.
CREATE TABLE relink_notices (
    discord_user_id INTEGER PRIMARY KEY,
    reason          TEXT NOT NULL,             -- expired | unreadable
    created_at      TEXT NOT NULL,
    shown_at        TEXT
);

-- jobs.reply_blob: what a resumed job needs to finish the /cluster reply it was asked from
-- (application id, interaction token, original message id, when the token expires), as
-- Fernet-encrypted JSON (the interaction token is a secret, like linked-account tokens).
-- Cleared when the job's end has been announced.
ALTER TABLE jobs ADD COLUMN reply_blob BLOB;
