"""/about's source lines come from what calls actually returned (bot.sources.status)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.features.reccobeats import ReccoBeatsClient
from bot.sources.status import SourceStatus, about_lines
from tests.fakes.spotify_api import FakeSpotify
from tests.test_spotify_source import RecordingSleep

T0 = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


class Gateway:
    audio_features_available: bool | None = None


def test_lines_say_what_each_source_last_did() -> None:
    status = SourceStatus(clock=lambda: T0)
    spotify = Gateway()
    reads, feats = about_lines(status, spotify=spotify, reccobeats=object(), linking=True)
    assert reads == [
        "Spotify API (the bot's app): not tried yet",
        "Spotify API (a member's linked account): not tried yet",
        "Spotify public page: not tried yet",
    ]
    assert feats == ["Spotify audio-features: not tried yet", "ReccoBeats: enabled, not tried yet"]

    status.record("app", False, "refused: only playlists its user owns", not_owner=True)
    status.record("page", True)
    spotify.audio_features_available = False
    reads, feats = about_lines(
        status, spotify=spotify, reccobeats=object(), now=T0 + timedelta(minutes=7)
    )
    assert (
        reads[0] == "Spotify API (the bot's app): refused: only playlists its user owns (7 min ago)"
    )
    assert reads[1].endswith("linking not set up")
    assert reads[2] == "Spotify public page: works (7 min ago)"
    assert feats[0] == "Spotify audio-features: not available to this app (403)"

    reads, feats = about_lines(None, spotify=None, reccobeats=None, pages_enabled=False)
    assert reads[0].endswith("not configured (no credentials)")
    assert reads[2].endswith("off (SPOTIFY_PUBLIC_PAGES=false)")
    assert feats == [
        "Spotify audio-features: not configured",
        "ReccoBeats: disabled (RECCOBEATS_ENABLED=false)",
    ]


async def test_reccobeats_records_its_outcomes(fake_spotify: FakeSpotify) -> None:
    status = SourceStatus(clock=lambda: T0)
    client = ReccoBeatsClient(
        fake_spotify.reccobeats_base, timeout_s=2, sleep=RecordingSleep(), status=status
    )
    try:
        await client.lookup(fake_spotify.track_ids()[:3])
        assert status.describe("reccobeats", now=T0) == "works (just now)"
        fake_spotify.fail_next("/reccobeats/v1/audio-features", 503, times=2)
        await client.lookup(fake_spotify.track_ids()[:3])
        assert status.describe("reccobeats", now=T0).startswith("failed")
    finally:
        await client.close()
