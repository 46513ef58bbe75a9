"""Several bot processes (gateway shards) on one database: a digest fires exactly once."""

from __future__ import annotations

import asyncio

import pytest

from bot.digests import DigestScheduler, Schedule
from bot.errors import StorageError
from storage.digests import iso
from tests.manual_clock import ManualClock
from tests.storage_backends import backend_fixture, current, database, sqlite_only
from tests.test_digests import Recorder, ScriptedQueue, _by_playlist, _snapshot, _subscribe, utc

storage_backend = backend_fixture()


async def test_a_due_digest_fires_once_across_processes(tmp_path) -> None:
    """Two schedulers (two processes' connections to the same database) see the same due row
    at the same moment: the compare-and-set claim lets exactly one of them run it."""
    path = tmp_path / "shared.sqlite3"
    first_db = await database(path).open()
    second_db = await database(path).open()
    tracks = _by_playlist()["Neo-Soul"][:30]
    try:
        clock = ManualClock(utc(2026, 11, 20, 12, 0))
        queues = [ScriptedQueue(db, [_snapshot(tracks, "s1")]) for db in (first_db, second_db)]
        posters = [Recorder(), Recorder()]
        scheds = [
            DigestScheduler(db, queue, poster=poster, clock=clock)
            for db, queue, poster in zip((first_db, second_db), queues, posters, strict=True)
        ]
        await _subscribe(scheds[0], Schedule.build("daily", "18:00", "UTC"))
        clock.set(utc(2026, 11, 20, 18, 0, 5))
        # Both processes read the due row before either claims it (the race the claim is
        # for), then each starts its run as tick() does.
        now = clock.now()
        due = [await sched.subs.due(iso(now)) for sched in scheds]
        assert [len(d) for d in due] == [1, 1]
        started = [[sched._spawn(d[0], claim_at=now)] for sched, d in zip(scheds, due, strict=True)]
        results = await asyncio.gather(*(t for tasks in started for t in tasks))
        assert [r.status for r in results].count("posted") == 1
        assert all(r.status in ("posted", "skipped") for r in results)
        assert sum(len(q.requests) for q in queues) == 1
        assert sum(len(p.messages) for p in posters) == 1
    finally:
        await first_db.close()
        await second_db.close()


@sqlite_only
async def test_sharded_bot_identifies_its_shards_and_answers_another_process_buttons(
    fake_discord, make_services, start_bot, monkeypatch
) -> None:
    """A message sent by one bot process; its persistent button clicked on a process that
    runs shard 1 of 2 (AutoShardedBot): the DynamicItem carries the analysis id and the
    database is shared, so the other process answers it. The fake Discord sends a guild's
    events only to the connection of the guild's shard, as Discord does."""
    from bot import app
    from bot.models import AnalysisRequest
    from tests.fakes.discord_fixtures import demo_outcome

    guild, channel = fake_discord.add_guild("Shard one", shard=1, shard_count=2)
    services = await make_services(shard_count=2, shard_ids="1")
    analysis, rendered = demo_outcome(2)
    owner = int(fake_discord.owner_user["id"])
    request = AnalysisRequest(demo=True, k=2, user_id=owner, guild_id=guild, channel_id=channel)
    aid = await services.store.analyses.save(analysis, rendered, request)
    async with start_bot(services, manage_services=False):  # "process A", not sharded
        it = await fake_discord.slash("clusters show", {"id": aid}, channel_id=channel)
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
    assert fake_discord.identified_shards[-1] in (None, [0, 1])

    monkeypatch.setattr(app, "PlaylistClustersBot", app.ShardedPlaylistClustersBot)
    async with start_bot(services, shard_count=2, shard_ids=[1]) as bot:  # "process B"
        assert isinstance(bot, app.ShardedPlaylistClustersBot)
        assert fake_discord.identified_shards[-1] == [1, 2]
        assert isinstance(app.make_bot(services), app.ShardedPlaylistClustersBot)
        dl = await fake_discord.click(first, f"pc:dl:{aid}:md")
        [doc] = await fake_discord.wait_response(dl)
        with pytest.raises(RuntimeError, match="for this guild"):  # shard 0's guild: not here
            await fake_discord.slash("about")
    assert doc.ephemeral and doc.files[0].filename.endswith("report.md")


async def test_one_bot_process_per_shard_on_postgres(tmp_path) -> None:
    """SQLite's one-instance flock, on PostgreSQL: bot processes may share the database when
    they run other shards; a second process for the same shard (or an unsharded one beside
    sharded ones) is refused, and a closed (or killed) holder frees its shards."""
    if current() != "postgresql":
        pytest.skip(
            "advisory locks: PostgreSQL only (SQLite has its flock, tests/test_instance_lock)"
        )
    path = tmp_path / "gateway"
    dbs = [await database(path).open() for _ in range(4)]
    try:
        await dbs[0].hold_gateway_lock([0], 2)
        await dbs[1].hold_gateway_lock([1], 2)  # the other shard: fine
        with pytest.raises(StorageError) as info:
            await dbs[2].hold_gateway_lock([0], 2)
        assert "shard(s) 0" in info.value.user_message
        with pytest.raises(StorageError):
            await dbs[3].hold_gateway_lock(None, None)  # unsharded beside sharded ones
        await dbs[0].close()
        await dbs[2].hold_gateway_lock([0], 2)  # freed with its connection
    finally:
        for db in dbs:
            await db.close()
