"""One Retry-After parser for every HTTP client (Spotify API, Spotify accounts, ReccoBeats)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from multidict import CIMultiDict

from bot.features.reccobeats import ReccoBeatsClient
from bot.retry_after import parse_retry_after
from tests.fakes.spotify_api import FakeSpotify
from tests.test_spotify_source import RecordingSleep

NOW = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)


def test_delta_seconds_and_http_dates() -> None:
    assert parse_retry_after({"Retry-After": " 42 "}) == 42
    assert parse_retry_after({"retry-after": "7"}) == 7
    assert parse_retry_after(CIMultiDict({"RETRY-AFTER": "5"})) == 5
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after({"Retry-After": date}, now=lambda: NOW) == 30.0
    assert parse_retry_after({"Retry-After": date}, now=lambda: NOW + timedelta(hours=1)) == 0.0
    assert parse_retry_after({"Retry-After": "-3"}) == 0.0


def test_missing_or_unreadable_gives_the_callers_default() -> None:
    assert parse_retry_after(None) == 1.0
    assert parse_retry_after({}, default=60.0) == 60.0
    assert parse_retry_after({"Retry-After": "soon"}, default=60.0) == 60.0
    assert parse_retry_after({"Retry-After": "nan"}, default=5.0) == 5.0


async def test_reccobeats_honours_an_http_date_retry_after(fake_spotify: FakeSpotify) -> None:
    """ReccoBeats used to read an HTTP-date as 60 s (and give up); now it waits until then."""
    sleep = RecordingSleep()
    client = ReccoBeatsClient(fake_spotify.reccobeats_base, sleep=sleep)
    when = datetime.now(UTC) + timedelta(seconds=6)
    fake_spotify.fail_next(
        "/reccobeats/v1/audio-features", 429, headers={"Retry-After": format_datetime(when, True)}
    )
    try:
        found = await client.audio_features(fake_spotify.track_ids()[:5])
    finally:
        await client.close()
    assert len(found) == 5
    assert len(sleep.calls) == 1 and 3 < sleep.calls[0] <= 6
