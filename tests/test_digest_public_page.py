"""Digests read their playlist in the same order as a posted link: a public playlist can be
subscribed without linking (real queue, Development-Mode fake, public page)."""

from __future__ import annotations

from pathlib import Path

from bot.digests import DigestScheduler, Schedule
from bot.jobs import JobQueue
from bot.pipeline import PipelineContext
from bot.sources.public_page import PublicPageReader
from bot.sources.spotify import SpotifyGateway
from bot.sources.status import SourceStatus
from storage.db import Database
from storage.store import Store
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings
from tests.manual_clock import ManualClock
from tests.test_digests import CHANNEL, GUILD, Recorder, _tick, utc

NOBODY = 444  # a member without a linked account


async def test_an_unlinked_members_digest_of_a_public_playlist(
    tmp_path: Path, fake_spotify: FakeSpotify
) -> None:
    fake = fake_spotify
    settings = spotify_settings(fake, worker_processes=0)
    database = await Database(tmp_path / "d.sqlite3").open()
    store = Store(database, feature_cache_days=settings.feature_cache_days)
    pages = PublicPageReader.from_settings(settings, ttl_s=0)  # every run reads the page
    ctx = PipelineContext(
        settings=settings, spotify=SpotifyGateway(settings), feature_cache=store.features,
        pages=pages, status=SourceStatus(),
    )  # fmt: skip
    queue = JobQueue(store, ctx, settings)
    await queue.start()
    clock = ManualClock(utc(2026, 11, 23, 6, 0))
    poster = Recorder()
    sched = DigestScheduler(database, queue, poster=poster, clock=clock)
    other = next(p for p in fake.playlists.values() if p.owner_id == "tidytuesday")
    try:
        await sched.subscribe(
            guild_id=GUILD, channel_id=CHANNEL,
            playlist_ref=f"https://open.spotify.com/playlist/{other.id}", playlist_id=other.id,
            schedule=Schedule.build("daily", "07:00", "UTC"), k=None, created_by=NOBODY,
        )  # fmt: skip
        clock.set(utc(2026, 11, 23, 7, 0))
        assert [r.status for r in await _tick(sched)] == ["posted"]
        first = poster.messages[-1].outcome.analysis
        assert len(first.tracks) == len(other.entries)
        assert first.source.snapshot_id.startswith("page:")

        clock.set(utc(2026, 11, 24, 7, 0))  # the listing didn't change: the analysis is reused
        assert [r.status for r in await _tick(sched)] == ["unchanged"]
        assert fake.count(f"/v1/playlists/{other.id}/items") == 1  # refused once, remembered
        assert poster.kinds() == ["digest", "unchanged"]
    finally:
        await sched.close()
        await queue.close()
        await pages.close()
        await database.close()
