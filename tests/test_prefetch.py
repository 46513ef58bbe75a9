"""Features asked for while the playlist's pages are still arriving (issue #16), against the
loopback fake: the requests stay at the minimum and the answers are the same."""

from __future__ import annotations

import asyncio
import math

from bot.features.cache import MemoryFeatureCache
from bot.features.prefetch import FeaturePrefetch, start_prefetch
from bot.features.reccobeats import ReccoBeatsClient
from bot.jobs.inline import run_analysis
from bot.models import AnalysisRequest, Progress, Track
from bot.pipeline import PipelineContext
from bot.sources.spotify import SpotifyGateway
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings


async def _no_progress(event: Progress) -> None:
    return None


def _alice_playlist(fake: FakeSpotify, n: int) -> str:
    ids = fake.track_ids()[:n]
    assert len(ids) == n
    return fake.add_playlist(ids, owner_id="alice", name="Big").id


async def _run(fake: FakeSpotify, playlist_id: str, cache: MemoryFeatureCache, **settings_kw):
    settings = spotify_settings(fake, **settings_kw)
    app = SpotifyGateway(settings)
    app.audio_features_available = False  # what start-up's mode detection finds in dev mode
    recco = ReccoBeatsClient(settings.reccobeats_base, timeout_s=5.0)
    ctx = PipelineContext(settings=settings, spotify=app, reccobeats=recco, feature_cache=cache)
    link = f"https://open.spotify.com/playlist/{playlist_id}"

    async def tokens(user_id: int) -> str | None:
        return fake.alice_token

    ctx.user_tokens = tokens
    try:
        analysis, _ = await run_analysis(
            AnalysisRequest(link=link, user_id=1, k=3), ctx, _no_progress
        )
    finally:
        await recco.close()
        app.close()
    return analysis


async def test_features_are_asked_while_pages_arrive(fake_spotify: FakeSpotify) -> None:
    n = 400  # 8 item pages, 10 ReccoBeats calls
    playlist_id = _alice_playlist(fake_spotify, n)
    fake_spotify.latency = 0.02
    fake_spotify.clear_log()
    # One items request at a time: the log then shows whether feature calls went out between.
    analysis = await _run(fake_spotify, playlist_id, MemoryFeatureCache(), spotify_concurrency=1)
    log = [p for _, p, _ in fake_spotify.requests]
    items = [i for i, p in enumerate(log) if p.endswith("/items")]
    features = [i for i, p in enumerate(log) if "reccobeats" in p]
    assert len(items) == math.ceil(n / 50)
    assert len(features) == math.ceil(n / 40)  # still the minimum
    assert features[0] < items[-1], "no feature request before the last page was asked for"
    assert analysis.coverage == {"reccobeats": n}


async def test_cached_ids_are_not_asked_and_batches_stay_full(fake_spotify: FakeSpotify) -> None:
    n = 200
    playlist_id = _alice_playlist(fake_spotify, n)
    ids = fake_spotify.track_ids()[:n]
    cache = MemoryFeatureCache()
    recco = ReccoBeatsClient(fake_spotify.reccobeats_base, timeout_s=5.0)
    try:
        # Every 5th id already known (another playlist): 160 left → 4 full requests, not 5.
        known = await recco.lookup(ids[::5])
        await cache.put_many("reccobeats", known.found)
    finally:
        await recco.close()
    fake_spotify.clear_log()
    analysis = await _run(fake_spotify, playlist_id, cache)
    asked = [q["ids"].split(",") for _, p, q in fake_spotify.requests if "reccobeats" in p]
    assert len(asked) == math.ceil((n - len(ids[::5])) / 40) == 4
    assert not set(ids[::5]) & {i for batch in asked for i in batch}
    assert analysis.coverage == {"reccobeats": n}


async def test_one_job_keeps_at_most_its_share_queued(fake_spotify: FakeSpotify) -> None:
    """A job never has more than ``concurrency`` batches waiting for the shared client, so
    another job's batches are interleaved instead of waiting behind a whole big playlist."""
    ids = fake_spotify.track_ids()[:400]
    recco = ReccoBeatsClient(fake_spotify.reccobeats_base, timeout_s=5.0, concurrency=4)
    fake_spotify.latency = 0.02
    in_client = 0
    most = 0
    real_lookup = recco.lookup

    async def counting_lookup(batch, on_batch=None):
        nonlocal in_client, most
        in_client += 1
        most = max(most, in_client)
        try:
            return await real_lookup(batch, on_batch)
        finally:
            in_client -= 1

    recco.lookup = counting_lookup  # type: ignore[method-assign]
    try:
        big = FeaturePrefetch(recco, concurrency=2)
        big.add_page([Track(id=i, name="") for i in ids])  # 10 batches at once
        big.flush()
        await asyncio.sleep(0.005)
        assert most == 2
        got = await big.collect(ids)
    finally:
        await recco.close()
    assert len(got.found) + len(got.missing) == 400


def test_no_prefetch_while_spotify_may_still_have_features(fake_spotify: FakeSpotify) -> None:
    settings = spotify_settings(fake_spotify)
    app = SpotifyGateway(settings)
    recco = ReccoBeatsClient(settings.reccobeats_base)
    try:
        assert start_prefetch(None, app, None) is None
        assert start_prefetch(recco, app, None) is None  # not yet known: Spotify comes first
        app.audio_features_available = False
        assert isinstance(start_prefetch(recco, app, None), FeaturePrefetch)
        assert isinstance(start_prefetch(recco, None, None), FeaturePrefetch)
    finally:
        app.close()


async def test_a_collected_prefetch_is_freed_without_the_garbage_collector(
    fake_spotify: FakeSpotify,
) -> None:
    """Contexts copied during the fetch (tasks, aiohttp's timers) outlive it holding the page
    sink: it must not hold the prefetch (and every feature found) once the fetch is over.
    Jobs freeze their objects out of the garbage collector's reach, hence no gc here."""
    import gc
    import weakref

    from bot.features.prefetch import feeding
    from bot.sources.page_sink import emit_page

    ids = fake_spotify.track_ids()[:80]
    recco = ReccoBeatsClient(fake_spotify.reccobeats_base, timeout_s=5.0)
    gc.disable()
    try:
        prefetch = FeaturePrefetch(recco)
        with feeding(prefetch):
            emit_page([Track(id=i, name="") for i in ids])  # as the paging code does
        got = await prefetch.collect(ids)
        assert len(got.found) + len(got.missing) == 80
        gone = weakref.ref(prefetch)
        del prefetch
        assert gone() is None
    finally:
        gc.enable()
        await recco.close()
