-- Schema version 2.
-- * playlist_snapshots: one row per saved (playlist, snapshot) with the source metadata and
--   skipped counts, so Store.load_fetch can rebuild a FetchResult exactly (and knows the
--   snapshot was saved completely, even when it has no playable tracks).
-- * playlist_tracks.entry_json: per-entry fields that are not properties of the track itself
--   (added_by, audio features carried by a CSV row).
-- * analyses.name / n_tracks: what listings show, without parsing result_json per row.
-- * jobs(user_id/guild_id, state) indices for the concurrent-job limits.

CREATE TABLE playlist_snapshots (
    playlist_id     TEXT NOT NULL REFERENCES playlists(id) ON DELETE CASCADE,
    snapshot_id     TEXT NOT NULL,             -- Spotify snapshot_id, or "h:<content hash>"
    meta_json       TEXT NOT NULL,             -- PlaylistMeta.to_dict() as fetched
    skipped_json    TEXT NOT NULL DEFAULT '{}',
    n_tracks        INTEGER NOT NULL,
    fetched_at      TEXT NOT NULL,
    PRIMARY KEY (playlist_id, snapshot_id)
);

-- Snapshots saved by v1 (entries only): rebuild their rows from what is there.
INSERT INTO playlist_snapshots (playlist_id, snapshot_id, meta_json, skipped_json, n_tracks, fetched_at)
SELECT pt.playlist_id, pt.snapshot_id, p.meta_json, '{}', count(*), p.fetched_at
FROM playlist_tracks pt JOIN playlists p ON p.id = pt.playlist_id
GROUP BY pt.playlist_id, pt.snapshot_id, p.meta_json, p.fetched_at;

ALTER TABLE playlist_tracks ADD COLUMN entry_json TEXT;

ALTER TABLE analyses ADD COLUMN name TEXT;
ALTER TABLE analyses ADD COLUMN n_tracks INTEGER;
UPDATE analyses
SET name = json_extract(result_json, '$.source.name'),
    n_tracks = json_array_length(result_json, '$.tracks');

CREATE INDEX jobs_user_state ON jobs(user_id, state);
CREATE INDEX jobs_guild_state ON jobs(guild_id, state);
CREATE INDEX track_artists_artist ON track_artists(artist_id);
