-- Who could read each stored playlist snapshot (issue #13), schema version 4.
-- A stored analysis or stored entries of a snapshot are reused for a requester only when that
-- requester reads the playlist the same way ("user:<discord id>": their linked account) or the
-- snapshot was read publicly ("app": the bot's own credentials, "page": Spotify's public page).
-- Rows are written after a fresh read of a playlist's items; none exist for older snapshots, so
-- their first request after the upgrade reads the playlist again.
CREATE TABLE snapshot_readers (
    playlist_id     TEXT NOT NULL,
    snapshot_id     TEXT NOT NULL,
    reader          TEXT NOT NULL,             -- app | page | user:<discord id>
    read_at         TEXT NOT NULL,
    PRIMARY KEY (playlist_id, snapshot_id, reader)
);
CREATE INDEX snapshot_readers_reader ON snapshot_readers(reader);
