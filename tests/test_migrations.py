"""Schema migrations: from empty, and from every earlier version with data in it."""

from __future__ import annotations

import json
import sqlite3

import pytest

from bot.errors import StorageError
from bot.models import AnalysisRequest
from storage import db as db_module
from storage.db import Database, load_migrations, utcnow
from storage.store import Store
from tests.storage_helpers import make_analysis, make_fetch, make_rendered

MIGRATIONS = load_migrations()
HEAD = MIGRATIONS[-1][0]
NOW = utcnow()


def test_versions_are_unique_and_contiguous():
    versions = [v for v, _name, _sql in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1)), [n for _v, n, _s in MIGRATIONS]


async def test_from_empty(tmp_path):
    async with Database(tmp_path / "a.sqlite3") as database:
        assert await database.version() == HEAD
        tables = {r[0] for r in await database.fetchall("SELECT name FROM sqlite_master")}
        for table in ("playlists", "tracks", "playlist_snapshots", "jobs", "analyses"):
            assert table in tables
    # opening again applies nothing and keeps the version
    async with Database(tmp_path / "a.sqlite3") as database:
        assert await database.version() == HEAD


async def seed_v1(conn) -> None:
    """Representative rows in every table of schema v1, with v1 columns only."""
    fetched = make_fetch(12)
    meta = fetched.meta
    await conn.execute(
        "INSERT INTO playlists (id, kind, name, owner_id, owner_name, snapshot_id, total,"
        " meta_json, fetched_at) VALUES (?, 'playlist', ?, 'owner', 'The Owner', 'snap-1', 14,"
        " ?, ?)",
        (meta.id, meta.name, json.dumps(meta.to_dict()), NOW),
    )
    for pos, t in enumerate(fetched.tracks):
        track = {k: v for k, v in t.to_dict().items() if k not in ("added_at",)}
        await conn.execute(
            "INSERT INTO tracks (id, name, album, track_json, updated_at) VALUES (?, ?, ?, ?, ?)",
            (t.id, t.name, t.album, json.dumps(track), NOW),
        )
        await conn.execute(
            "INSERT OR IGNORE INTO artists (id, name) VALUES (?, ?)",
            (t.artist_ids[0], t.artists[0]),
        )
        await conn.execute(
            "INSERT INTO track_artists (track_id, artist_id, position) VALUES (?, ?, 0)",
            (t.id, t.artist_ids[0]),
        )
        await conn.execute(
            "INSERT INTO playlist_tracks (playlist_id, snapshot_id, position, track_id, added_at)"
            " VALUES (?, 'snap-1', ?, ?, ?)",
            (meta.id, pos, t.id, t.added_at),
        )
        await conn.execute(
            "INSERT INTO track_features (track_id, source, features_json, fetched_at)"
            " VALUES (?, 'reccobeats', ?, ?)",
            (t.id, json.dumps({"energy": 0.5}) if pos % 2 else None, NOW),
        )
    analysis = make_analysis(fetched)
    cur = await conn.execute(
        "INSERT INTO analyses (playlist_id, snapshot_id, params_json, params_key, k,"
        " feature_mode, coverage_json, silhouette, requested_by, guild_id, channel_id,"
        " result_json, created_at) VALUES (?, 'snap-1', '{}', 'm1:k=auto', 3, 'audio', '{}',"
        " 0.3, 7, 9, 11, ?, ?)",
        (meta.id, json.dumps(analysis.to_dict()), NOW),
    )
    aid = cur.lastrowid
    await conn.execute(
        "INSERT INTO clusters VALUES (?, 0, 'Cluster 1', 'calm', 12, '{}', '[]')", (aid,)
    )
    await conn.execute("INSERT INTO assignments VALUES (?, ?, 0, 1.0, 2.0)", (aid, "T" * 22))
    await conn.execute("INSERT INTO analysis_files VALUES (?, 'report.md', x'23')", (aid,))
    await conn.execute(
        "INSERT INTO jobs (dedupe_key, state, request_json, user_id, guild_id, analysis_id,"
        " created_at, updated_at) VALUES ('playlist:x|m1:k=auto', 'done', '{}', 7, 9, ?, ?, ?)",
        (aid, NOW, NOW),
    )
    await conn.execute(
        "INSERT INTO jobs (dedupe_key, state, request_json, checkpoint_json, user_id,"
        " created_at, updated_at) VALUES ('demo|m1:k=auto', 'featurizing', ?, ?, 7, ?, ?)",
        (json.dumps({"demo": True}), json.dumps({"fetch": None}), NOW, NOW),
    )
    await conn.execute(
        "INSERT INTO guild_settings (guild_id, links_enabled, updated_at) VALUES (9, 0, ?)", (NOW,)
    )
    await conn.execute(
        "INSERT INTO digest_subscriptions (guild_id, channel_id, playlist_ref, playlist_id,"
        " every, at_time, created_by, next_run_at, last_analysis_id, created_at)"
        " VALUES (9, 11, 'link', ?, 'weekly', '09:00', 7, ?, ?, ?)",
        (meta.id, NOW, aid, NOW),
    )
    await conn.execute(
        "INSERT INTO linked_accounts VALUES (7, 'spot', 'Name', x'00', 'scope', ?, ?)", (NOW, NOW)
    )
    await conn.execute("INSERT INTO oauth_states VALUES ('st', 7, x'00', ?, NULL)", (NOW,))


async def seed_v2(conn) -> None:
    """What v2 writes on top of the v1 rows: snapshot rows, listing columns."""
    meta = make_fetch(12).meta
    await conn.execute(
        "INSERT INTO playlist_snapshots (playlist_id, snapshot_id, meta_json, skipped_json,"
        " n_tracks, fetched_at) VALUES (?, 'snap-1', ?, '{}', 12, ?)",
        (meta.id, json.dumps(meta.to_dict()), NOW),
    )
    await conn.execute("UPDATE analyses SET name = ?, n_tracks = 12", (meta.name,))


# At version v the database holds what seeders 1..v write (in order); a migration whose
# version writes data differently adds its seeder here.
SEEDERS = {1: seed_v1, 2: seed_v2}


@pytest.mark.parametrize("start", [v for v, _n, _s in MIGRATIONS[:-1]] or [1])
async def test_from_every_earlier_version(tmp_path, start):
    path = tmp_path / f"v{start}.sqlite3"
    database = await Database(path).open(migrate=False)
    try:
        assert await database.migrate(target=start) == start
        assert await database.version() == start
        async with database.transaction() as conn:
            for version in sorted(SEEDERS):
                if version <= start:
                    await SEEDERS[version](conn)
        counts = {
            t: (await database.fetchone(f"SELECT count(*) FROM {t}"))[0]
            for t in ("playlists", "tracks", "playlist_tracks", "analyses", "jobs")
        }
        assert await database.migrate() == HEAD
        for table, n in counts.items():
            assert (await database.fetchone(f"SELECT count(*) FROM {table}"))[0] == n
        assert (await database.fetchone("PRAGMA integrity_check"))[0] == "ok"
        assert await database.fetchall("PRAGMA foreign_key_check") == []

        # The data written by the old version is readable through today's Store.
        store = Store(database)
        fetched = await store.snapshots.load(make_fetch(12).meta.id, "snap-1")
        assert fetched is not None and len(fetched.tracks) == 12
        assert fetched.tracks[3].added_at == make_fetch(12).tracks[3].added_at
        listed = await store.analyses.recent(user_id=7)
        assert listed and listed[0].n_tracks == 12 and listed[0].name
        assert (await store.guilds.settings(9)).links_enabled is False
        assert len(await store.jobs.unfinished()) == 1
        got = await store.features.get_many("reccobeats", [t.id for t in fetched.tracks])
        assert len(got) == 12  # the known-missing rows count as cached (until they expire)

        # and new rows can be written next to them
        new = make_fetch(5, playlist_id="n" * 22)
        await store.snapshots.save(new)
        analysis = make_analysis(new, k=2)
        await store.analyses.save(analysis, make_rendered(analysis), AnalysisRequest(user_id=7))
        assert len(await store.analyses.recent(user_id=7)) == 2
    finally:
        await database.close()


async def test_failed_migration_rolls_back(tmp_path, monkeypatch):
    broken = (HEAD + 1, f"{HEAD + 1:04d}_broken.sql", "CREATE TABLE x (a);\nSELECT * FROM nope;")
    monkeypatch.setattr(db_module, "load_migrations", lambda: [*MIGRATIONS, broken])
    path = tmp_path / "broken.sqlite3"
    with pytest.raises(StorageError):
        await Database(path).open()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == HEAD
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "x" not in tables
    finally:
        conn.close()
