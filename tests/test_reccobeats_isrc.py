"""ReccoBeats by ISRC: tracks it doesn't know under their Spotify id, asked again by ISRC."""

from __future__ import annotations

import pytest

from bot.features.reccobeats import ReccoBeatsClient, normalise_isrc
from tests.fakes.spotify_api import FakeSpotify, fake_isrc
from tests.test_spotify_source import RecordingSleep


@pytest.fixture
async def recco(fake_spotify: FakeSpotify):
    client = ReccoBeatsClient(fake_spotify.reccobeats_base, timeout_s=2, sleep=RecordingSleep())
    yield client
    await client.close()


def test_isrcs_are_normalised_and_checked() -> None:
    assert normalise_isrc("us-um7-21-04140") == "USUM72104140"
    assert normalise_isrc("USUM72104140") == "USUM72104140"
    assert normalise_isrc("FAKE1234") is None
    assert normalise_isrc(None) is None


async def test_tracks_unknown_by_id_are_found_by_isrc(
    fake_spotify: FakeSpotify, recco: ReccoBeatsClient
) -> None:
    ids = fake_spotify.track_ids()[:45]
    relinked, unknown = ids[:42], ids[42:]
    fake_spotify.reccobeats_missing.update(ids)
    fake_spotify.reccobeats_isrc.update(relinked)  # known under another Spotify id

    by_id = await recco.lookup(ids)
    assert by_id.found == {} and by_id.missing == set(ids)

    asked = {t: fake_isrc(t) for t in ids}
    asked["noisrc" + "x" * 16] = "not an isrc"
    before = recco.request_count
    result = await recco.lookup_isrc(asked)
    assert set(result.found) == set(relinked)
    assert result.missing == {*unknown, "noisrc" + "x" * 16}
    assert result.failed == set()
    row = fake_spotify.tracks[relinked[0]]["features"]
    assert result.found[relinked[0]]["tempo"] == row["tempo"]
    assert recco.request_count - before == 2  # 45 valid ISRCs → 40 + 5; the bad one not sent


async def test_isrc_lookup_failures_are_reported_failed(
    fake_spotify: FakeSpotify, recco: ReccoBeatsClient
) -> None:
    ids = fake_spotify.track_ids()[:3]
    fake_spotify.fail_next("/reccobeats/v1/audio-features", 500, times=2)
    result = await recco.lookup_isrc({t: fake_isrc(t) for t in ids})
    assert result.failed == set(ids) and not result.found


async def test_gathering_retries_by_isrc_and_caches_what_it_found(
    fake_spotify: FakeSpotify, recco: ReccoBeatsClient
) -> None:
    from bot.features.cache import MemoryFeatureCache
    from bot.features.gather import gather_features
    from bot.sources.links import SpotifyRef
    from bot.sources.spotify import SpotifyGateway
    from tests.fakes.spotify_fixtures import spotify_settings

    # Development Mode API reads carry external_ids.isrc again (since March 2026).
    gw = SpotifyGateway(spotify_settings(fake_spotify)).with_user_token(fake_spotify.alice_token)
    try:
        fetched = await gw.fetch(SpotifyRef("playlist", fake_spotify.alice_playlist))
    finally:
        gw.close()
    tracks = fetched.tracks[:20]
    assert all(t.isrc == fake_isrc(t.id) for t in tracks)
    ids = [t.id for t in tracks]
    fake_spotify.reccobeats_missing.update(ids[:6])
    fake_spotify.reccobeats_isrc.update(ids[:4])  # 4 found again by ISRC, 2 truly unknown

    cache = MemoryFeatureCache()
    table = await gather_features(tracks, spotify=None, reccobeats=recco, cache=cache)
    assert table.coverage() == {"reccobeats": 18}
    assert set(ids[:4]) <= set(table.values) and not set(ids[4:6]) & set(table.values)
    before = recco.request_count
    again = await gather_features(tracks, spotify=None, reccobeats=recco, cache=cache)
    assert again.coverage() == {"reccobeats": 18} and recco.request_count == before
