"""A 2xx Spotify answer that is not JSON (an HTML page from a proxy, a cut-off body).

spotipy turns such a body into ``None``; the bot then failed with an AttributeError and an
incident id, the CLI with a traceback. Now it is retried like a 5xx, then "Spotify is having
trouble" (SpotifyUnavailable): a sentence in the bot, one line and exit code 2 in the CLI.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import cli
from bot.errors import SpotifyUnavailable
from bot.sources.links import parse_spotify_link
from bot.sources.spotify import SpotifyGateway
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings

HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"


async def _nothing(*_args) -> None:
    return None


async def _fetch(fake: FakeSpotify):
    gw = SpotifyGateway(spotify_settings(fake), sleep=_nothing).with_user_token(fake.alice_token)
    ref = parse_spotify_link(f"https://open.spotify.com/playlist/{fake.alice_playlist}")
    return await gw.fetch(ref, _nothing)


@pytest.mark.parametrize("body", [HTML, "", '"just a string"', "null"])
async def test_unreadable_2xx_is_spotify_trouble(fake_spotify: FakeSpotify, body: str) -> None:
    fake_spotify.fail_next(f"playlists/{fake_spotify.alice_playlist}", 200, body=body, times=9)
    with pytest.raises(SpotifyUnavailable) as exc:
        await _fetch(fake_spotify)
    assert exc.value.user_message.startswith("Spotify is having trouble right now")
    assert fake_spotify.count(f"playlists/{fake_spotify.alice_playlist}") == 3  # 2 retries


async def test_one_unreadable_answer_is_retried(fake_spotify: FakeSpotify) -> None:
    fake_spotify.fail_next(f"playlists/{fake_spotify.alice_playlist}", 200, body=HTML)
    result = await _fetch(fake_spotify)
    assert len(result.tracks) == 60


async def test_cli_says_it_in_one_line(fake_spotify: FakeSpotify, tmp_path: Path, capsys) -> None:
    fake_spotify.fail_next("playlists/", 200, body=HTML, times=99)
    link = f"https://open.spotify.com/playlist/{fake_spotify.alice_playlist}"
    settings = spotify_settings(fake_spotify, spotify_public_pages=False)
    rc = await asyncio.to_thread(
        cli.main, ["analyze", link, "--out", str(tmp_path / "o")], settings=settings
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: Spotify is having trouble right now"), err
    assert "Traceback" not in "\n".join(err)
