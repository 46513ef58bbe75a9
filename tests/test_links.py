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
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "link to www.youtube.com, not to Spotify"),
        ("https://music.apple.com/us/playlist/x/pl.u-1", "link to music.apple.com, not to Spotify"),
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


# What members really paste into /cluster's option or the CLI: the link as Discord markdown
# shows it (spoiler, masked link, code), inside a sentence or an embed code, with the sentence's
# punctuation (also full-width), or with invisible characters a copy from a chat app carries.
@pytest.mark.parametrize(
    "text",
    [
        f"||https://open.spotify.com/playlist/{PID2}||",
        f"(https://open.spotify.com/playlist/{PID2}?si=x)",
        f"https://open.spotify.com/playlist/{PID2}.",
        f"https://open.spotify.com/playlist/{PID2}?si=abc!!",
        f"[my mix](https://open.spotify.com/playlist/{PID2})",
        f"`https://open.spotify.com/playlist/{PID2}`",
        f"**<https://open.spotify.com/playlist/{PID2}>**",
        f"“https://open.spotify.com/playlist/{PID2}”",
        f"open.spotify.com/playlist/{PID2}。",
        f"https://open.spotify.com/playlist/{PID2}）",
        f"\u200bhttps://open.spotify.com/playlist/{PID2}\u200b",
        f"https://open.spotify.com/playlist/{PID2}%3Fsi%3Dabc",
        f"spotify:playlist:{PID2}.",
        f"{PID2}.",
        f"my summer mix: https://open.spotify.com/playlist/{PID2}?si=1 enjoy!",
        f"https://open.spotify.com/playlist/{PID2} https://open.spotify.com/playlist/{PID2}?si=2",
        f'<iframe src="https://open.spotify.com/embed/playlist/{PID2}?utm_source=generator" '
        'width="100%" height="352"></iframe>',
    ],
)
def test_parse_what_chat_and_copies_wrap_around_a_link(text: str) -> None:
    assert parse_spotify_link(text) == SpotifyRef("playlist", PID2)


@pytest.mark.parametrize("prefix", ["embed", "embed-legacy"])
def test_older_embed_codes_are_read_like_the_current_one(prefix: str) -> None:
    """An <iframe> pasted from an older "Embed playlist" code (embed-legacy/) read "That Spotify
    link points to “embed-legacy”"."""
    code = f'<iframe src="https://open.spotify.com/{prefix}/playlist/{PID2}" width="300"></iframe>'
    assert parse_spotify_link(code) == SpotifyRef("playlist", PID2)


def test_two_different_links_are_refused_not_mixed_up() -> None:
    with pytest.raises(InvalidLink, match="2 different Spotify links"):
        parse_spotify_link(
            f"https://open.spotify.com/playlist/{PID2} and https://open.spotify.com/album/{AID}"
        )


@pytest.mark.parametrize(
    "text", ["||https://spotify.link/AbC12||", "spotify.link/AbC12.", "see spoti.fi/AbC12 :)"]
)
def test_wrapped_short_links_are_short_links(text: str) -> None:
    from bot.sources.links import is_short_link

    assert is_short_link(text)


def test_track_link_message_is_exact() -> None:
    with pytest.raises(InvalidLink) as exc:
        parse_spotify_link("https://open.spotify.com/track/6f807x0ima9a1j3VPbc7VN?si=1")
    assert exc.value.user_message == (
        "That's a Spotify link to a track, not a playlist or album: paste the link of a "
        "playlist or album it's on (⋯ → Share → Copy link)."
    )


@pytest.mark.parametrize(
    ("link", "what", "instead"),
    [
        ("https://open.spotify.com/artist/0OdUWJ0sBjDrqHygGUXeCF", "an artist", "their albums"),
        ("spotify:artist:0OdUWJ0sBjDrqHygGUXeCF", "an artist", "“This Is …”"),
        ("https://open.spotify.com/show/4rOoJ6Egrf8K2IrywzwOMk?si=x", "a podcast", "no music"),
        (
            "https://open.spotify.com/episode/4rOoJ6Egrf8K2IrywzwOMk",
            "a podcast episode",
            "no music",
        ),
        ("spotify:episode:4rOoJ6Egrf8K2IrywzwOMk", "a podcast episode", "album link instead"),
        ("https://open.spotify.com/audiobook/4rOoJ6Egrf8K2IrywzwOMk", "an audiobook", "no music"),
        ("https://open.spotify.com/user/bob", "a user profile", "their public playlists"),
        ("spotify:user:bob", "a user profile", "paste its link"),
        ("https://open.spotify.com/collection/tracks", "your Liked Songs", "/cluster liked:true"),
        ("spotify:user:bob:collection", "your Liked Songs", "Exportify"),
        ("https://open.spotify.com/genre/0JQ5DAqbMKFEC4WFtoNRpw", "a genre page", "its playlists"),
        ("https://open.spotify.com/concert/4rOoJ6Egrf8K2IrywzwOMk", "“concert”", "playlist/…"),
    ],
)
def test_a_link_to_anything_else_says_what_to_paste_instead(
    link: str, what: str, instead: str
) -> None:
    """A member pasting an artist, a podcast or a profile read only "not a playlist or album"
    (or, for spotify:user:…:collection, "isn't a Spotify URI I understand")."""
    with pytest.raises(InvalidLink) as exc:
        parse_spotify_link(link)
    message = exc.value.user_message
    assert what in message and instead in message, message


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


TID = "6f807x0ima9a1j3VPbc7VN"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"spotify:playlist:{PID2}?si=abc123def", SpotifyRef("playlist", PID2)),
        (f"spotify:album:{AID}?si=1#x", SpotifyRef("album", AID)),
        (f"spotify://playlist/{PID2}", SpotifyRef("playlist", PID2)),
        (f"spotify://album/{AID}?si=1", SpotifyRef("album", AID)),
        (f"https://m.spotify.com/playlist/{PID2}?si=x", SpotifyRef("playlist", PID2)),
        (f"m.spotify.com/album/{AID}", SpotifyRef("album", AID)),
    ],
)
def test_uri_with_query_deep_link_and_mobile_host_are_read(text: str, expected: SpotifyRef) -> None:
    """Each was refused: "contains characters a Spotify id never has" (the ?si= after a URI),
    "isn't a Spotify URI I understand" (spotify://), "doesn't look like a Spotify link"
    (m.spotify.com). Also inside a sentence, and found in a chat message."""
    assert parse_spotify_link(text) == expected
    assert parse_spotify_link(f"my mix {text} enjoy") == expected
    assert find_spotify_links(f"look: {text}.") == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"https://open.spotify.com/track/{TID}?si=ab&context=spotify%3Aplaylist%3A{PID2}",
            SpotifyRef("playlist", PID2),
        ),
        (
            f"https://open.spotify.com/track/{TID}?context=spotify:playlist:{PID2}&si=ab",
            SpotifyRef("playlist", PID2),
        ),
        (
            f"https://open.spotify.com/intl-de/track/{TID}?context=spotify%3Aalbum%3A{AID}",
            SpotifyRef("album", AID),
        ),
        (f"spotify:track:{TID}?context=spotify:playlist:{PID2}", SpotifyRef("playlist", PID2)),
        (
            f"spotify://track/{TID}?context=spotify%3Aplaylist%3A{PID2}",
            SpotifyRef("playlist", PID2),
        ),
    ],
)
def test_a_track_shared_from_inside_a_playlist_is_read_as_that_playlist(
    text: str, expected: SpotifyRef
) -> None:
    """What the app shares from inside a playlist: the track's link with the playlist as its
    context. It was refused as a track link."""
    assert parse_spotify_link(text) == expected
    assert find_spotify_links(f"this one {text}") == [expected]


@pytest.mark.parametrize(
    "context", ["spotify:artist:0OdUWJ0sBjDrqHygGUXeCF", "spotify:playlist:short", "", "x"]
)
def test_a_track_whose_context_is_no_playlist_is_still_a_track(context: str) -> None:
    with pytest.raises(InvalidLink, match="link to a track"):
        parse_spotify_link(f"https://open.spotify.com/track/{TID}?context={context}")
