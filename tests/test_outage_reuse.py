"""An analysis made during a ReccoBeats outage is not reused as "unchanged" afterwards.

Real pipeline (fetch, features, clustering, charts inline) against the fake Spotify and
ReccoBeats servers: alice's 60-track playlist, read with her token.
"""

from __future__ import annotations

import asyncio

from bot.features.reccobeats import ReccoBeatsClient
from bot.models import AnalysisRequest
from bot.pipeline import PipelineContext
from bot.render import coverage_sentence
from bot.sources.spotify import SpotifyGateway
from cogs.utils.embeds import overview_embed
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings
from tests.jobs_fakes import open_queue


async def _no_sleep(_seconds: float) -> None:
    return None


async def _queue(tmp_path, fake: FakeSpotify):
    settings = spotify_settings(fake, worker_processes=0)

    async def user_tokens(_uid: int) -> str:
        return fake.alice_token

    ctx = PipelineContext(
        settings=settings,
        spotify=SpotifyGateway(settings),
        reccobeats=ReccoBeatsClient(fake.reccobeats_base, timeout_s=5, sleep=_no_sleep),
        user_tokens=user_tokens,
    )
    return ctx, *await open_queue(tmp_path / "outage.sqlite3", settings, ctx)


async def _analyse(queue, fake: FakeSpotify):
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    handle = await queue.submit(AnalysisRequest(link=link, user_id=1))
    return await asyncio.wait_for(handle.result(), 120)


async def test_outage_analysis_is_redone_once_reccobeats_is_back(tmp_path, fake_spotify):
    ctx, db, _store, queue = await _queue(tmp_path, fake_spotify)
    try:
        outage = fake_spotify.fail_next("/reccobeats/", 503, times=10_000)
        during = await _analyse(queue, fake_spotify)
        assert during.analysis.coverage == {"metadata": 60}
        # the reply says why the sound is missing and that a later run asks again
        assert during.analysis.unanswered == 60
        overview = overview_embed(during.analysis).description or ""
        assert "No sound: ReccoBeats did not answer (try later)." in overview
        assert "ReccoBeats did not answer for 60 tracks" in coverage_sentence(during.analysis)

        outage.times = 0  # ReccoBeats is back
        fake_spotify.clear_log()
        after = await _analyse(queue, fake_spotify)
        assert not after.reused and after.analysis_id != during.analysis_id
        assert after.analysis.coverage.get("reccobeats", 0) == 60
        assert after.analysis.unanswered == 0
        assert "did not answer" not in (overview_embed(after.analysis).description or "")
        assert fake_spotify.count(f"playlists/{fake_spotify.alice_playlist}/items") == 0
        assert fake_spotify.count("/reccobeats/") > 0  # asked for the 60 it lacked

        fake_spotify.clear_log()
        again = await _analyse(queue, fake_spotify)
        assert again.reused and again.analysis_id == after.analysis_id
        assert fake_spotify.count("/reccobeats/") == 0
    finally:
        await queue.close()
        await ctx.reccobeats.close()
        await db.close()


async def test_tracks_known_to_have_no_features_do_not_prevent_reuse(tmp_path, fake_spotify):
    ctx, db, _store, queue = await _queue(tmp_path, fake_spotify)
    entries = fake_spotify.playlists[fake_spotify.alice_playlist].entries
    fake_spotify.reccobeats_missing.update(entries[:5])  # ReccoBeats answers: not known
    try:
        first = await _analyse(queue, fake_spotify)
        assert first.analysis.coverage == {"reccobeats": 55, "metadata": 5}
        assert first.analysis.unanswered == 0  # ReccoBeats answered: it has none for them
        fake_spotify.clear_log()
        again = await _analyse(queue, fake_spotify)
        assert again.reused and again.analysis_id == first.analysis_id
        assert fake_spotify.count("/reccobeats/") == 0
    finally:
        await queue.close()
        await ctx.reccobeats.close()
        await db.close()
