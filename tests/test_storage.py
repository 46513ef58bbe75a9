"""Store: fetch round trips, feature cache, analyses, guild settings, storage failures."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.codecs import RawJson, encode_parts, parts_text
from bot.codecs import dumps as _dumps
from bot.codecs import dumps_chunked as _dumps_chunked
from bot.errors import StorageError
from bot.models import Analysis, AnalysisRequest, params_key
from storage.analyses import AnalysisListing, AnalysisOwner
from storage.db import Database, load_migrations
from storage.guilds import GuildSettings
from storage.snapshots import snapshot_key
from storage.store import Store
from tests.storage_backends import backend_fixture, current, database, sqlite_only
from tests.storage_helpers import make_analysis, make_fetch, make_rendered, make_tracks

storage_backend = backend_fixture()


@pytest.fixture
async def db(tmp_path):
    opened = await database(tmp_path / "pc.sqlite3").open()
    yield opened
    await opened.close()


@pytest.fixture
def store(db):
    return Store(db)


@sqlite_only
async def test_open_sets_wal_foreign_keys_and_head_version(db):
    assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
    assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
    assert await db.version() == load_migrations()[-1][0]


async def test_fetch_round_trip_is_exact(store):
    fetched = make_fetch(120, features=True)
    key = await store.snapshots.save(fetched)
    assert key == "snap-1"
    loaded = await store.snapshots.load(fetched.meta.id, key)
    assert loaded is not None
    assert loaded.to_dict() == fetched.to_dict()
    assert await store.snapshots.load(fetched.meta.id, "other-snapshot") is None


async def test_empty_snapshot_is_stored(store):
    fetched = make_fetch(0)
    await store.snapshots.save(fetched)
    loaded = await store.snapshots.load(fetched.meta.id, "snap-1")
    assert loaded is not None and loaded.tracks == [] and loaded.skipped == fetched.skipped


async def test_source_without_snapshot_gets_content_key(store):
    a = make_fetch(5, playlist_id="csv:0123456789abcdef", snapshot=None, kind="csv")
    b = make_fetch(5, playlist_id="csv:0123456789abcdef", snapshot=None, kind="csv", start=1)
    key_a, key_b = await store.snapshots.save(a), await store.snapshots.save(b)
    assert key_a.startswith("h:") and key_a != key_b
    assert key_a == snapshot_key(a)
    assert (await store.snapshots.load(a.meta.id, key_a)).to_dict() == a.to_dict()
    assert (await store.snapshots.load(b.meta.id, key_b)).to_dict() == b.to_dict()


async def test_track_upsert_never_erases_known_fields(store):
    rich = make_fetch(3, playlist_id="p" * 22)
    for t in rich.tracks:
        t.popularity, t.label = 55, "Some Label"
    await store.snapshots.save(rich)
    poor = make_fetch(3, playlist_id="q" * 22)  # same track ids, dev-mode: no popularity
    await store.snapshots.save(poor)
    again = await store.snapshots.load("p" * 22, "snap-1")
    assert [t.popularity for t in again.tracks] == [55, 55, 55]
    assert again.tracks[0].label == "Some Label"
    n_tracks = (await store.db.fetchone("SELECT count(*) FROM tracks"))[0]
    assert n_tracks == 3


async def test_artists_and_links_saved(store):
    fetched = make_fetch(20)
    await store.snapshots.save(fetched)
    n_links = (await store.db.fetchone("SELECT count(*) FROM track_artists"))[0]
    assert n_links == sum(len(t.artist_ids) for t in fetched.tracks)
    row = await store.db.fetchone(
        "SELECT name, genres_json FROM artists WHERE id = ?", ("A" + "0" * 21,)
    )
    assert row["name"] == "Artist 0"


async def test_save_10000_tracks(store, capsys):
    fetched = make_fetch(10_000)
    started = time.perf_counter()
    await store.snapshots.save(fetched)
    saved = time.perf_counter() - started
    started = time.perf_counter()
    loaded = await store.snapshots.load(fetched.meta.id, "snap-1")
    read = time.perf_counter() - started
    assert loaded is not None and len(loaded.tracks) == 10_000
    assert loaded.tracks[9_999].to_dict() == fetched.tracks[9_999].to_dict()
    with capsys.disabled():
        print(f"\n[storage] save_fetch 10,000 tracks: {saved:.3f}s, load_fetch: {read:.3f}s")


# --- feature cache ----------------------------------------------------------------------------
async def test_feature_cache_hits_misses_and_known_missing(store):
    await store.features.put_many("reccobeats", {"a": {"energy": 0.5}, "b": None})
    got = await store.features.get_many("reccobeats", ["a", "b", "c"])
    assert got == {"a": {"energy": 0.5}, "b": None}
    assert await store.features.get_many("spotify", ["a", "b"]) == {}
    assert await store.features.get_many("reccobeats", []) == {}


async def test_feature_cache_overwrites(store):
    await store.features.put_many("reccobeats", {"a": None})
    await store.features.put_many("reccobeats", {"a": {"energy": 0.9}})
    assert await store.features.get_many("reccobeats", ["a"]) == {"a": {"energy": 0.9}}


async def test_feature_cache_expiry(db):
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = Store(db, feature_cache_days=90, clock=lambda: now[0])
    await store.features.put_many("reccobeats", {"a": {"energy": 0.5}, "b": None})
    now[0] += timedelta(days=89)
    assert set(await store.features.get_many("reccobeats", ["a", "b"])) == {"a", "b"}
    now[0] += timedelta(days=2)
    assert await store.features.get_many("reccobeats", ["a", "b"]) == {}


async def test_feature_cache_many_ids(store):
    ids = [f"id{i}" for i in range(40_000)]
    await store.features.put_many("reccobeats", {i: {"energy": 0.1} for i in ids[::2]})
    got = await store.features.get_many("reccobeats", ids)
    assert len(got) == 20_000 and "id0" in got and "id1" not in got


# --- analyses ---------------------------------------------------------------------------------
async def test_analysis_round_trip_and_lookup(store):
    fetched = make_fetch(30)
    analysis = make_analysis(fetched)
    rendered = make_rendered(analysis)
    request = AnalysisRequest(link="x", user_id=7, guild_id=9, channel_id=11)
    aid = await store.analyses.save(analysis, rendered, request)
    assert analysis.analysis_id == aid

    again = await store.analyses.get(aid)
    assert again.to_dict() == analysis.to_dict()
    assert await store.analyses.get(aid + 100) is None

    key = params_key(None)
    assert await store.analyses.find(fetched.meta.id, "snap-1", key) == aid
    assert await store.analyses.find(fetched.meta.id, "snap-2", key) is None
    assert await store.analyses.find(fetched.meta.id, "snap-1", params_key(5)) is None

    assert await store.analyses.file(aid, "clusters.png") == rendered.png
    assert (await store.analyses.file(aid, "report.md")).decode() == rendered.markdown
    assert await store.analyses.file(aid, "nope.txt") is None
    assert (await store.analyses.rendered(aid)) == rendered

    n_clusters = (await store.db.fetchone("SELECT count(*) FROM clusters"))[0]
    n_assign = (await store.db.fetchone("SELECT count(*) FROM assignments"))[0]
    assert (n_clusters, n_assign) == (3, 30)

    listed = await store.analyses.recent(user_id=7)
    assert listed == [
        AnalysisListing(
            id=aid,
            playlist_id=fetched.meta.id,
            name=fetched.meta.name,
            k=3,
            n_tracks=30,
            created_at=analysis.created_at,
            requested_by=7,
        )
    ]
    assert await store.analyses.owner(aid) == AnalysisOwner(requested_by=7, guild_id=9)
    assert await store.analyses.owner(aid + 1) is None
    assert await store.analyses.recent(user_id=8) == []
    assert len(await store.analyses.recent(guild_id=9)) == 1


async def test_analysis_stored_in_parts_and_old_rows_still_read(store):
    fetched = make_fetch(1234)  # three parts of 500 tracks
    analysis = make_analysis(fetched)
    request = AnalysisRequest(link="x")
    analysis.created_at = "2026-12-01T09:00:00+00:00"  # the worker's cluster step sets it
    parts = encode_parts(analysis)
    assert len(parts) == 1 + 3
    made = parts_text(parts)  # what the worker process hands over: stored as it is
    aid = await store.analyses.save(analysis, make_rendered(analysis), request, result_text=made)
    text = (await store.db.fetchone("SELECT result_json FROM analyses WHERE id = ?", (aid,)))[0]
    assert text == made
    assert text.count("\n") == 1 + 3 + 1  # one part per line
    # Still one JSON value (json.loads + from_dict read it); the id is the row's.
    expected = analysis.to_dict()
    assert Analysis.from_dict(json.loads(text)).to_dict() == expected | {"analysis_id": None}
    assert (await store.analyses.get(aid)).to_dict() == expected

    # A row written before parts existed: one to_dict() object.
    await store.db.execute(
        "UPDATE analyses SET result_json = ? WHERE id = ?", (_dumps(analysis.to_dict()), aid)
    )
    assert (await store.analyses.get(aid)).to_dict() == analysis.to_dict()

    # Without a text from the worker, the same text is encoded here.
    analysis.analysis_id = None  # a new analysis
    again = await store.analyses.save(analysis, make_rendered(analysis), request)
    text = (await store.db.fetchone("SELECT result_json FROM analyses WHERE id = ?", (again,)))[0]
    assert text == made
    assert (await store.analyses.get(again)).to_dict() == expected | {"analysis_id": again}


@sqlite_only
def test_chunked_json_is_the_same_text():
    values = [
        {"values": {str(i): {"energy": i / 3, "é": [i]} for i in range(1201)}, "n": None},
        {"tracks": [{"id": str(i)} for i in range(1001)], "x": {1: "int keys"}},
        [list(range(600)), {"a": {}}],
        {},
        [],
    ]
    for value in values:
        assert _dumps_chunked(value) == _dumps(value)
    assert _dumps_chunked({"a": RawJson("[1, 2]"), "b": 3}) == '{"a":[1, 2],"b":3}'


async def test_list_analyses_newest_first_and_limit(store):
    ids = []
    for i in range(4):
        fetched = make_fetch(5, playlist_id=f"{i}" * 22)
        analysis = make_analysis(fetched, k=2)
        ids.append(await store.analyses.save(analysis, make_rendered(analysis), AnalysisRequest()))
    listed = await store.analyses.recent(limit=3)
    assert [row.id for row in listed] == ids[::-1][:3]


# --- guild settings ---------------------------------------------------------------------------
async def test_guild_settings(store):
    assert await store.guilds.settings(1) == GuildSettings(links_enabled=True)
    await store.guilds.set_links_enabled(1, False)
    assert (await store.guilds.settings(1)).links_enabled is False
    await store.guilds.set_links_enabled(1, True)
    assert (await store.guilds.settings(1)).links_enabled is True
    assert (await store.guilds.settings(2)).links_enabled is True


# --- failures ---------------------------------------------------------------------------------
@sqlite_only
async def test_corrupted_file_gives_clear_error(tmp_path):
    path = tmp_path / "bad.sqlite3"
    path.write_bytes(b"this is not an sqlite database at all " * 200)
    with pytest.raises(StorageError) as info:
        await Database(path, busy_timeout_s=0.2).open()
    assert "corrupted or not an SQLite file" in info.value.user_message


@sqlite_only
async def test_locked_database_gives_clear_error(tmp_path):
    path = tmp_path / "locked.sqlite3"
    async with Database(path):
        pass
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        db = Database(path, busy_timeout_s=0.2)
        with pytest.raises(StorageError) as info:
            await asyncio.wait_for(db.open(), 30)
        assert "locked" in info.value.user_message
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@sqlite_only
async def test_locked_for_writes_in_wal_mode(tmp_path):
    path = tmp_path / "wal-locked.sqlite3"
    db = await Database(path, busy_timeout_s=0.2).open()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError) as info:
            await asyncio.wait_for(Store(db).guilds.set_links_enabled(1, False), 30)
        assert "locked" in info.value.user_message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await db.close()


@sqlite_only
async def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(StorageError) as info:
        await Database(path).open()
    assert "newer than this version" in info.value.user_message


async def test_failed_write_rolls_back(store):
    fetched = make_fetch(3)
    fetched.tracks.append(make_tracks(1)[0])  # same id twice is fine (entries by position)
    await store.snapshots.save(fetched)
    with pytest.raises(StorageError):
        async with store.db.transaction() as conn:
            await conn.execute("DELETE FROM guild_settings")
            await conn.execute("INSERT INTO nonexistent VALUES (1)")
    # the connection is usable and not left inside a transaction
    if current() == "sqlite":
        assert not store.db.conn.in_transaction
    assert await store.guilds.settings(3) == GuildSettings()
    await store.guilds.set_links_enabled(3, False)


async def test_prune_keeps_recent_and_in_use_snapshots(db):
    now = [datetime(2026, 3, 1, tzinfo=UTC)]
    store = Store(db, clock=lambda: now[0])
    pid = "p" * 22
    for i in range(5):
        await store.snapshots.save(make_fetch(4, playlist_id=pid, snapshot=f"s{i}"))
        now[0] += timedelta(hours=1)
    # an unfinished job still needs snapshot s0
    running = await store.jobs.create("k1", AnalysisRequest(link="x"))
    await store.jobs.set_state(
        running, "featurizing", {"fetch": {"playlist_id": pid, "snapshot": "s0"}}
    )
    old_done = await store.jobs.create("k2", AnalysisRequest(link="x"))
    await store.jobs.fail(old_done, "x", "y")
    now[0] += timedelta(days=40)
    recent_done = await store.jobs.create("k3", AnalysisRequest(link="x"))
    await store.jobs.fail(recent_done, "x", "y")

    assert await store.prune(keep_snapshots=3, job_days=30) == {"snapshots": 1, "jobs": 1}
    for snap, kept in [("s0", True), ("s1", False), ("s2", True), ("s3", True), ("s4", True)]:
        assert (await store.snapshots.load(pid, snap) is not None) == kept, snap
    n_entries = (await db.fetchone("SELECT count(*) FROM playlist_tracks"))[0]
    assert n_entries == 4 * 4
    assert await store.jobs.get(old_done) is None
    assert await store.jobs.get(recent_done) is not None and await store.jobs.get(running)


async def test_finished_jobs_drop_the_csv_text(store):
    job_id = await store.jobs.create("csv:x", AnalysisRequest(csv_text="a,b\n", csv_name="f.csv"))
    assert (await store.jobs.get(job_id)).request.csv_text == "a,b\n"
    await store.jobs.fail(job_id, "invalid_csv", "bad")
    job = await store.jobs.get(job_id)
    assert job.request.csv_text is None and job.request.csv_name == "f.csv"
