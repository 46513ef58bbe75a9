"""The public embed-page reader (bot.sources.public_page) against the fake's pages."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.errors import NotFound, RateLimited, SpotifyUnavailable
from bot.sources.links import SpotifyRef
from bot.sources.public_page import (
    PAGE_TRACK_CAP,
    PublicPageReader,
    PublicPageRefused,
    PublicPageUnreadable,
    parse_embed_page,
    split_artists,
)
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings
from tests.fakes.spotify_pages import ANON_TOKEN, page_html
from tests.test_spotify_source import RecordingSleep

EDITORIAL = "37i9dQZF1DXcZDD7cfEKhW"  # "Pop Remix" in the TidyTuesday sample


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def reader(fake_spotify: FakeSpotify):
    r = PublicPageReader.from_settings(
        spotify_settings(fake_spotify), sleep=RecordingSleep(), clock=Clock()
    )
    yield r
    await r.close()


def pl_ref(pid: str) -> SpotifyRef:
    return SpotifyRef("playlist", pid)


async def test_reads_a_public_playlist_like_the_api_would(
    fake_spotify: FakeSpotify, reader: PublicPageReader
) -> None:
    pid = fake_spotify.alice_playlist  # type: ignore[attr-defined]
    page = await reader.read(pl_ref(pid))
    fetched = page.fetched
    ids = [e for e in fake_spotify.playlists[pid].entries]
    assert [t.id for t in fetched.tracks] == ids
    first = fake_spotify.tracks[ids[0]]
    t = fetched.tracks[0]
    assert t.name == first["name"]
    assert t.artists == [fake_spotify.artists[a]["name"] for a in first["artist_ids"]]
    assert t.duration_ms == first["duration_ms"]
    assert t.explicit is False and t.album_id is None and t.popularity is None
    meta = fetched.meta
    assert (meta.id, meta.kind, meta.name, meta.owner_name) == (
        pid,
        "playlist",
        "Alice's mix",
        "Alice",
    )
    assert meta.total == 60 and not page.maybe_truncated
    assert meta.image_url and "0640" in meta.image_url  # the largest cover
    assert meta.snapshot_id and meta.snapshot_id.startswith("page:")
    assert meta.url == f"https://open.spotify.com/playlist/{pid}"
    assert fetched.skipped == {}
    assert reader.request_count == 1
    assert fake_spotify.count("/embed/playlist/") == 1
    assert fake_spotify.count("/v1/") == 0  # no token, no API call
    ua = fake_spotify.pages.user_agents[-1]
    assert ua.startswith("Mozilla/5.0") and "Chrome/" in ua


async def test_editorial_playlists_are_readable(
    fake_spotify: FakeSpotify, reader: PublicPageReader
) -> None:
    page = await reader.read(pl_ref(EDITORIAL))
    assert page.fetched.meta.owner_name == "Spotify"
    assert page.fetched.meta.name == "Pop Remix"
    expected = [e for e in fake_spotify.playlists[EDITORIAL].entries]
    assert [t.id for t in page.fetched.tracks] == expected


async def test_long_playlist_lists_the_first_100_and_says_it_may_have_more(
    fake_spotify: FakeSpotify, reader: PublicPageReader
) -> None:
    ids = fake_spotify.track_ids()[:150]
    pl = fake_spotify.add_playlist(ids, name="Long one", owner_id="alice")
    page = await reader.read(pl_ref(pl.id))
    assert page.listed == PAGE_TRACK_CAP == 100
    assert page.maybe_truncated
    assert [t.id for t in page.fetched.tracks] == ids[:100]
    assert page.fetched.meta.total is None  # unknown: the page doesn't say


async def test_odd_entries_are_skipped_and_counted(
    fake_spotify: FakeSpotify, reader: PublicPageReader
) -> None:
    ids = fake_spotify.track_ids()[:6]
    entries = [*ids[:5], {"local": "My demo"}, {"episode": "Ep 1"}, None, ids[0]]
    pl = fake_spotify.add_playlist([*entries, {"unavailable": ids[5]}], owner_id="alice")
    fetched = await reader.fetch(pl_ref(pl.id))
    # isPlayable=false (playback in the bot's own country) is kept: features are looked up by
    # id anyway. Removed (null) items are not on the page at all.
    assert [t.id for t in fetched.tracks] == ids
    assert fetched.skipped == {"local": 1, "episode": 1, "duplicate": 1}


async def test_album_page(fake_spotify: FakeSpotify, reader: PublicPageReader) -> None:
    ids = fake_spotify.track_ids()[:8]
    aid = fake_spotify.add_album(ids, name="An album", release_date="2019-06-14")
    fetched = await reader.fetch(SpotifyRef("album", aid))
    assert fetched.meta.kind == "album" and fetched.meta.name == "An album"
    assert [t.id for t in fetched.tracks] == ids
    t = fetched.tracks[0]
    assert (t.album, t.album_id, t.release_date) == ("An album", aid, "2019-06-14")
    assert t.image_url == fetched.meta.image_url is not None
    assert fetched.meta.owner_name == ", ".join(
        fake_spotify.artists[a]["name"] for a in fake_spotify.albums[aid]["artist_ids"]
    )


def test_artist_names_split_on_the_pages_separator() -> None:
    assert split_artists("Daft\u00a0Punk,\u00a0Pharrell Williams") == [
        "Daft Punk",
        "Pharrell Williams",
    ]
    # with the no-break separator present, a plain ", " inside a name is kept
    assert split_artists("Tyler, The Creator,\u00a0Kali Uchis") == [
        "Tyler, The Creator",
        "Kali Uchis",
    ]
    assert split_artists("A, B") == ["A", "B"]
    assert split_artists("") == []


@pytest.mark.parametrize(
    ("mode", "what"),
    [
        ("no_next_data", "__NEXT_DATA__"),
        ("bad_json", "not valid JSON"),
        ("no_tracklist", "trackList"),
        ("no_uris", "track uri"),
        # was NotFound ("couldn't find that playlist, or it isn't public") and an INFO line
        ("renamed_entity", "no props.pageProps.state.data.entity"),
    ],
)
async def test_a_page_that_does_not_parse_gives_one_clear_error_and_one_warning(
    fake_spotify: FakeSpotify,
    reader: PublicPageReader,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    what: str,
) -> None:
    pid = fake_spotify.alice_playlist  # type: ignore[attr-defined]
    fake_spotify.pages.broken[pid] = mode
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PublicPageUnreadable) as err:
        await reader.read(pl_ref(pid))
    assert "/spotify link" in err.value.user_message and "exportify.net" in err.value.user_message
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert what in warnings[0].getMessage() and pid in warnings[0].getMessage()
    assert warnings[0].exc_info is None  # no traceback
    assert ANON_TOKEN not in caplog.text


async def test_missing_private_and_404_pages_are_not_found(
    fake_spotify: FakeSpotify, reader: PublicPageReader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    private = fake_spotify.add_playlist(fake_spotify.track_ids()[:5], owner_id="alice")
    private.public = False
    gone = fake_spotify.add_playlist(fake_spotify.track_ids()[:5], owner_id="alice")
    fake_spotify.fail_next(f"/embed/playlist/{gone.id}", 404, body="<html>Not found</html>")
    for pid in ("0000000000000000000001", private.id, gone.id):
        with pytest.raises(NotFound) as err:
            await reader.read(pl_ref(pid))
        assert "couldn't find that playlist" in err.value.user_message
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("status", "why"), [(403, "blocked for the server's region"), (451, "for legal reasons")]
)
async def test_a_page_refused_to_the_servers_region_says_so_and_what_to_do(
    fake_spotify: FakeSpotify,
    reader: PublicPageReader,
    caplog: pytest.LogCaptureFixture,
    status: int,
    why: str,
) -> None:
    """A 403 / 451 read "Spotify may have changed it": the page is refused to this server."""
    caplog.set_level(logging.DEBUG)
    pid = fake_spotify.alice_playlist  # type: ignore[attr-defined]
    fake_spotify.fail_next(f"/embed/playlist/{pid}", status, body="<html>Forbidden</html>")
    with pytest.raises(PublicPageRefused) as err:
        await reader.read(pl_ref(pid))
    message = err.value.user_message
    assert "Spotify refused its public page for that playlist to this bot's server" in message
    assert why in message and "exportify.net" in message and "CSV" in message
    assert "changed" not in message
    assert reader.request_count == 1  # not retried: asking again from here gets the same
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"HTTP {status}" in warnings[0].getMessage()
    assert pid in warnings[0].getMessage()


async def test_rate_limits_and_outages_are_handled_like_the_api(
    fake_spotify: FakeSpotify, reader: PublicPageReader
) -> None:
    pid = fake_spotify.alice_playlist  # type: ignore[attr-defined]
    path = f"/embed/playlist/{pid}"
    fake_spotify.fail_next(path, 429, headers={"Retry-After": "3"}, body="slow down")
    fake_spotify.fail_next(path, 503, body="oops")
    page = await reader.read(pl_ref(pid))
    assert len(page.fetched.tracks) == 60
    assert reader._sleep.calls == [3.0, 0.5]  # type: ignore[attr-defined]
    assert reader.request_count == 3

    other = fake_spotify.add_playlist(fake_spotify.track_ids()[:5], owner_id="alice")
    fake_spotify.fail_next(f"/embed/playlist/{other.id}", 429, headers={"Retry-After": "7200"})
    with pytest.raises(RateLimited) as err:
        await reader.read(pl_ref(other.id))
    assert err.value.retry_after == 7200 and "about 2 hours" in err.value.user_message

    fake_spotify.fail_next(f"/embed/playlist/{other.id}", 502, times=3)
    with pytest.raises(SpotifyUnavailable):
        await reader.read(pl_ref(other.id))


async def test_one_request_per_playlist_within_the_ttl(
    fake_spotify: FakeSpotify, reader: PublicPageReader
) -> None:
    pid = fake_spotify.alice_playlist  # type: ignore[attr-defined]
    pages = await asyncio.gather(*(reader.read(pl_ref(pid)) for _ in range(5)))
    assert fake_spotify.count("/embed/") == 1
    pages[0].fetched.meta.total = 1240  # callers may edit what they get...
    again = await reader.read(pl_ref(pid))
    assert again.fetched.meta.total == 60  # ...without changing the cached read
    assert fake_spotify.count("/embed/") == 1
    reader._clock.now += 301  # type: ignore[attr-defined]
    fake_spotify.playlists[pid].entries = fake_spotify.playlists[pid].entries[:59]
    changed = await reader.read(pl_ref(pid))
    assert fake_spotify.count("/embed/") == 2
    assert len(changed.fetched.tracks) == 59
    assert changed.fetched.meta.snapshot_id != again.fetched.meta.snapshot_id


def test_snapshot_hash_is_stable_for_an_unchanged_listing() -> None:
    doc = {"props": {"pageProps": {"state": {"data": {"entity": {
        "name": "X", "trackList": [{"uri": "spotify:track:" + "a" * 22, "uid": "1", "title": "T"}]
    }}}}}}  # fmt: skip
    ref = pl_ref("b" * 22)
    one = parse_embed_page(page_html(doc), ref).fetched.meta.snapshot_id
    two = parse_embed_page(page_html(doc), ref).fetched.meta.snapshot_id
    assert one == two and one and one.startswith("page:")
