"""Short links (spotify.link / spotify.app.link / spoti.fi) followed to the playlist they name."""

from __future__ import annotations

import pytest

from bot.errors import InvalidLink, SpotifyUnavailable
from bot.sources.links import (
    SpotifyRef,
    find_short_links,
    is_short_link,
    parse_spotify_link,
    short_link_via,
)
from bot.sources.public_page import PublicPageReader
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings

PID = "37i9dQZF1DXcZDD7cfEKhW"


@pytest.fixture
async def reader(fake_spotify: FakeSpotify):
    r = PublicPageReader.from_settings(spotify_settings(fake_spotify))
    yield r
    await r.close()


def test_short_links_are_recognised_in_text() -> None:
    text = (
        "try https://spotify.link/AbC123xyz and spotify.app.link/Q9_z-1 "
        "(again https://spotify.link/AbC123xyz) not https://spotify.linked.com/x"
    )
    assert find_short_links(text) == [
        "https://spotify.link/AbC123xyz",
        "https://spotify.app.link/Q9_z-1",
    ]
    assert is_short_link("<https://spoti.fi/3xYz>")
    assert not is_short_link("https://open.spotify.com/playlist/" + PID)
    assert not is_short_link("https://spotify.link/")
    with pytest.raises(InvalidLink):  # the sync parser still can't read them
        parse_spotify_link("https://spotify.link/AbC123xyz")


def test_short_links_go_to_their_own_host_unless_the_web_base_is_changed() -> None:
    assert short_link_via("https://open.spotify.com") is None
    assert short_link_via("https://open.spotify.com/") is None
    assert short_link_via("http://127.0.0.1:9/") == "http://127.0.0.1:9"


async def test_redirects_are_followed_to_the_playlist(
    fake_spotify: FakeSpotify, reader: PublicPageReader
) -> None:
    target = f"https://open.spotify.com/playlist/{PID}?si=abc&utm_source=copy-link"
    fake_spotify.pages.short_links["hop2"] = target
    fake_spotify.pages.short_links["hop1"] = "https://spotify.app.link/hop2?_p=1"
    ref = await reader.resolve_short_link("https://spotify.link/hop1")
    assert ref == SpotifyRef("playlist", PID)
    # two short-link requests; open.spotify.com itself is parsed, never fetched
    assert reader.request_count == 2
    assert [p for _, p, _ in fake_spotify.requests] == [
        "/spotify.link/hop1",
        "/spotify.app.link/hop2",
    ]
    assert all(ua.startswith("Mozilla/5.0") for ua in fake_spotify.pages.user_agents)


async def test_an_html_answer_is_searched_for_the_link(
    fake_spotify: FakeSpotify, reader: PublicPageReader
) -> None:
    fake_spotify.pages.short_links["page"] = f"https://open.spotify.com/album/{PID}"
    fake_spotify.pages.short_link_html.add("page")
    assert await reader.resolve_short_link("spotify.link/page") == SpotifyRef("album", PID)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("https://open.spotify.com/track/" + PID, "a track"),
        ("https://evil.example/steal", "leads to evil.example"),
    ],
)
async def test_links_to_anything_else_are_refused(
    fake_spotify: FakeSpotify, reader: PublicPageReader, target: str, message: str
) -> None:
    fake_spotify.pages.short_links["x"] = target
    with pytest.raises(InvalidLink) as err:
        await reader.resolve_short_link("https://spotify.link/x")
    assert message in err.value.user_message
    assert reader.request_count == 1  # the foreign host was never requested


async def test_dead_looping_and_failing_links(
    fake_spotify: FakeSpotify, reader: PublicPageReader
) -> None:
    with pytest.raises(InvalidLink) as err:
        await reader.resolve_short_link("https://spotify.link/nothing")
    assert "doesn't lead anywhere" in err.value.user_message

    fake_spotify.pages.short_links["a"] = "https://spotify.link/b"
    fake_spotify.pages.short_links["b"] = "https://spotify.link/a"
    before = reader.request_count
    with pytest.raises(InvalidLink) as err:
        await reader.resolve_short_link("https://spotify.link/a")
    assert "too many times" in err.value.user_message
    assert reader.request_count - before == 5

    fake_spotify.fail_next("/spotify.link/c", 503, body="down")
    fake_spotify.pages.short_links["c"] = f"https://open.spotify.com/playlist/{PID}"
    with pytest.raises(SpotifyUnavailable):
        await reader.resolve_short_link("https://spotify.link/c")
