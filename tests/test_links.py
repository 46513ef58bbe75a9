"""Parsing every form of Spotify playlist/album reference users paste."""

from __future__ import annotations

import pytest

from bot.errors import InvalidLink
from bot.sources.links import SpotifyRef, find_spotify_links, parse_spotify_link

PID = "37i9dQZF1DXcBWIGoYBM5M"
PID2 = "1h9q8vXXDl2vHOmwdsuXms"
AID = "2oCs0DGTsRO98Gh5ZSl2Cx"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"https://open.spotify.com/playlist/{PID2}", SpotifyRef("playlist", PID2)),
        (f"https://open.spotify.com/playlist/{PID2}?si=abc123def", SpotifyRef("playlist", PID2)),
        (f"http://open.spotify.com/playlist/{PID2}/", SpotifyRef("playlist", PID2)),
        (f"open.spotify.com/playlist/{PID2}", SpotifyRef("playlist", PID2)),
        (f"https://open.spotify.com/intl-de/playlist/{PID2}?si=x", SpotifyRef("playlist", PID2)),
        (f"open.spotify.com/intl-pt/album/{AID}", SpotifyRef("album", AID)),
        (f"https://open.spotify.com/embed/playlist/{PID2}", SpotifyRef("playlist", PID2)),
        (f"https://open.spotify.com/user/bob/playlist/{PID2}", SpotifyRef("playlist", PID2)),
        (f"<https://open.spotify.com/playlist/{PID2}?si=q>", SpotifyRef("playlist", PID2)),
        (f"  spotify:playlist:{PID2}  ", SpotifyRef("playlist", PID2)),
        (f"spotify:user:someone:playlist:{PID2}", SpotifyRef("playlist", PID2)),
        (f"spotify:album:{AID}", SpotifyRef("album", AID)),
        (f"https://open.spotify.com/album/{AID}?si=1", SpotifyRef("album", AID)),
        (f"<spotify:album:{AID}>", SpotifyRef("album", AID)),
        (PID2, SpotifyRef("playlist", PID2)),
        (f"<{PID2}>", SpotifyRef("playlist", PID2)),
        (f"https://open.spotify.com/playlist/{PID}", SpotifyRef("playlist", PID)),
    ],
)
def test_parse_valid_forms(text: str, expected: SpotifyRef) -> None:
    assert parse_spotify_link(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("https://open.spotify.com/track/6f807x0ima9a1j3VPbc7VN", "track"),
        ("spotify:track:6f807x0ima9a1j3VPbc7VN", "track"),
        ("https://open.spotify.com/artist/0LcJLqbBmaGUft1e9Mm8HV", "artist"),
        ("https://open.spotify.com/episode/0LcJLqbBmaGUft1e9Mm8HV", "episode"),
        ("https://open.spotify.com/user/bob", "user profile"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "doesn't look like a Spotify link"),
        ("hello there", "doesn't look like a Spotify link"),
        ("", "no link"),
        ("<>", "no link"),
        ("https://open.spotify.com/playlist/abc", "22 characters"),
        ("spotify:playlist:abc", "22 characters"),
        ("1h9q8vXXDl2vHOmwdsuXm", "22 characters"),
        ("https://open.spotify.com/playlist/1h9q8vXXDl2vHOmwdsu-ms", "characters"),
        ("https://open.spotify.com/playlist/", "no id"),
        ("https://spotify.link/AbCdEf", "open.spotify.com"),
        ("https://open.spotify.com/", "doesn't point to a playlist or album"),
        ("spotify:foo", "URI"),
    ],
)
def test_parse_invalid_forms_have_specific_messages(text: str, fragment: str) -> None:
    with pytest.raises(InvalidLink) as exc:
        parse_spotify_link(text)
    assert fragment in exc.value.user_message


def test_track_link_message_is_exact() -> None:
    with pytest.raises(InvalidLink) as exc:
        parse_spotify_link("https://open.spotify.com/track/6f807x0ima9a1j3VPbc7VN?si=1")
    assert exc.value.user_message == "That's a Spotify link to a track, not a playlist or album."


def test_ref_url_and_uri() -> None:
    ref = SpotifyRef("album", AID)
    assert ref.url == f"https://open.spotify.com/album/{AID}"
    assert ref.uri == f"spotify:album:{AID}"
    assert parse_spotify_link(ref.url) == ref


def test_find_links_in_chat_message_dedup_in_order() -> None:
    msg = (
        f"check this <https://open.spotify.com/playlist/{PID2}?si=abc> and "
        f"open.spotify.com/album/{AID}, also spotify:playlist:{PID2} again, "
        "a track https://open.spotify.com/track/6f807x0ima9a1j3VPbc7VN and "
        "a broken https://open.spotify.com/playlist/short. "
        f"(https://open.spotify.com/intl-fr/playlist/{PID})"
    )
    assert find_spotify_links(msg) == [
        SpotifyRef("playlist", PID2),
        SpotifyRef("album", AID),
        SpotifyRef("playlist", PID),
    ]


def test_find_links_none() -> None:
    assert find_spotify_links("no links here, just spotify talk") == []
    assert find_spotify_links("") == []
