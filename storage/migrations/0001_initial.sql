-- Playlist Clusters schema, version 1.
-- Applied by storage.db.Database.migrate() inside one transaction; the version lives in
-- PRAGMA user_version. Never edit an applied migration: add 0002_*.sql instead.

CREATE TABLE playlists (
    id              TEXT PRIMARY KEY,          -- Spotify id, or "csv:<sha1>" / "liked:<user>"
    kind            TEXT NOT NULL,             -- playlist | album | liked | csv | demo
    name            TEXT NOT NULL,
    owner_id        TEXT,
    owner_name      TEXT,
    snapshot_id     TEXT,
    total           INTEGER,
    meta_json       TEXT NOT NULL,             -- PlaylistMeta.to_dict()
    fetched_at      TEXT NOT NULL
);

CREATE TABLE artists (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    genres_json     TEXT
);

CREATE TABLE tracks (
    id              TEXT PRIMARY KEY,          -- Spotify track id
    name            TEXT NOT NULL,
    album           TEXT,
    track_json      TEXT NOT NULL,             -- Track.to_dict()
    updated_at      TEXT NOT NULL
);

CREATE TABLE track_artists (
    track_id        TEXT NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    artist_id       TEXT NOT NULL REFERENCES artists(id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    PRIMARY KEY (track_id, artist_id)
);

-- The entries of a playlist at a given snapshot, so an unchanged snapshot needs no refetch.
CREATE TABLE playlist_tracks (
    playlist_id     TEXT NOT NULL REFERENCES playlists(id) ON DELETE CASCADE,
    snapshot_id     TEXT NOT NULL,
    position        INTEGER NOT NULL,
    track_id        TEXT NOT NULL REFERENCES tracks(id),
    added_at        TEXT,
    PRIMARY KEY (playlist_id, snapshot_id, position)
);

-- Per-track audio features; cached across playlists. A row with features_json NULL records
-- "this provider has no features for this id" so it is not asked again until it expires.
CREATE TABLE track_features (
    track_id        TEXT NOT NULL,
    source          TEXT NOT NULL,             -- spotify | reccobeats | csv
    features_json   TEXT,
    fetched_at      TEXT NOT NULL,
    PRIMARY KEY (track_id, source)
);

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key      TEXT NOT NULL,             -- source id + snapshot + parameters
    state           TEXT NOT NULL,             -- queued|fetching|featurizing|clustering|rendering|done|failed
    request_json    TEXT NOT NULL,             -- what to run (source ref, k, requester, ...)
    checkpoint_json TEXT,                      -- results of finished steps, for resume
    user_id         INTEGER,
    guild_id        INTEGER,
    channel_id      INTEGER,
    analysis_id     INTEGER REFERENCES analyses(id),
    error_code      TEXT,
    error_message   TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_dedupe ON jobs(dedupe_key, state);

CREATE TABLE analyses (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    playlist_id     TEXT NOT NULL,
    snapshot_id     TEXT,
    params_json     TEXT NOT NULL,             -- {"k": null, ...}
    params_key      TEXT NOT NULL,
    k               INTEGER NOT NULL,
    feature_mode    TEXT NOT NULL,
    coverage_json   TEXT NOT NULL,
    silhouette      REAL,
    requested_by    INTEGER,
    guild_id        INTEGER,
    channel_id      INTEGER,
    result_json     TEXT NOT NULL,             -- Analysis.to_dict()
    created_at      TEXT NOT NULL
);
CREATE INDEX analyses_lookup ON analyses(playlist_id, snapshot_id, params_key);
CREATE INDEX analyses_user ON analyses(requested_by, created_at);
CREATE INDEX analyses_guild ON analyses(guild_id, created_at);

CREATE TABLE clusters (
    analysis_id     INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    size            INTEGER NOT NULL,
    centroid_json   TEXT NOT NULL,
    representatives_json TEXT NOT NULL,
    PRIMARY KEY (analysis_id, idx)
);

CREATE TABLE assignments (
    analysis_id     INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
    track_id        TEXT NOT NULL,
    cluster_idx     INTEGER NOT NULL,
    x               REAL,
    y               REAL,
    PRIMARY KEY (analysis_id, track_id)
);

CREATE TABLE guild_settings (
    guild_id        INTEGER PRIMARY KEY,
    links_enabled   INTEGER NOT NULL DEFAULT 1,  -- reply to posted playlist links
    settings_json   TEXT NOT NULL DEFAULT '{}',
    updated_at      TEXT NOT NULL
);

CREATE TABLE digest_subscriptions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id        INTEGER NOT NULL,
    channel_id      INTEGER NOT NULL,
    playlist_ref    TEXT NOT NULL,             -- the link as given, parsed again at run time
    playlist_id     TEXT NOT NULL,
    every           TEXT NOT NULL,             -- daily | weekly
    at_time         TEXT NOT NULL,             -- HH:MM local
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    weekday         INTEGER,                   -- 0=Monday, weekly only
    k               INTEGER,
    created_by      INTEGER NOT NULL,
    next_run_at     TEXT NOT NULL,             -- UTC ISO-8601
    last_run_at     TEXT,
    last_analysis_id INTEGER REFERENCES analyses(id),
    last_snapshot_id TEXT,
    paused          INTEGER NOT NULL DEFAULT 0,
    pause_reason    TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX digests_due ON digest_subscriptions(paused, next_run_at);

CREATE TABLE linked_accounts (
    discord_user_id INTEGER PRIMARY KEY,
    spotify_user_id TEXT,
    display_name    TEXT,
    token_blob      BLOB NOT NULL,             -- Fernet-encrypted JSON {access, refresh, expires_at}
    scopes          TEXT NOT NULL,
    linked_at       TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- Pending OAuth authorisations: random state bound to a Discord user, single use.
CREATE TABLE oauth_states (
    state           TEXT PRIMARY KEY,
    discord_user_id INTEGER NOT NULL,
    verifier_blob   BLOB NOT NULL,             -- encrypted PKCE code_verifier
    created_at      TEXT NOT NULL,
    used_at         TEXT
);

-- Rendered artefacts of an analysis (scatter PNG, markdown, CSV, summary JSON), so stored
-- analyses can be re-shown without recomputation.
CREATE TABLE analysis_files (
    analysis_id     INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,             -- clusters.png | report.md | tracks.csv | summary.json
    content         BLOB NOT NULL,
    PRIMARY KEY (analysis_id, name)
);
