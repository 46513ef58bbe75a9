"""Parse the Spotify playlist/album references people paste into Discord.

Accepted: ``https://open.spotify.com/playlist/ID?si=…`` (with or without scheme, ``www.``,
``intl-xx/`` locale segment, ``embed/`` prefix), ``spotify:playlist:ID``,
``spotify:user:NAME:playlist:ID``, the same for albums, a bare 22-character base62 id (taken as
a playlist), and any of those wrapped in ``<…>`` (Discord's "suppress embed" form).
Everything else raises :class:`bot.errors.InvalidLink` with a message saying what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from bot.errors import InvalidLink

RefKind = Literal["playlist", "album"]

# A Spotify id: 22 base62 characters (tracks, playlists, albums, artists).
SPOTIFY_ID_RE = re.compile(r"^[0-9A-Za-z]{22}$")
_BASE62_RE = re.compile(r"^[0-9A-Za-z]+$")
_SUPPORTED: tuple[str, ...] = ("playlist", "album")
_OTHER_KINDS = {
    "track": "a track",
    "artist": "an artist",
    "episode": "a podcast episode",
    "show": "a podcast",
    "user": "a user profile",
    "audiobook": "an audiobook",
    "chapter": "an audiobook chapter",
    "collection": "your Liked Songs",
    "genre": "a genre page",
    "search": "a search",
}
_HOSTS = {"open.spotify.com", "play.spotify.com", "spotify.com", "www.spotify.com"}
_SHORT_HOSTS = {"spotify.link", "spoti.fi"}

# Candidate tokens inside a chat message: URLs (with or without scheme) and spotify: URIs.
_FIND_RE = re.compile(
    r"(?:https?://)?(?:open|play)\.spotify\.com/[^\s<>|]+|spotify:[A-Za-z0-9:._-]+",
    re.IGNORECASE,
)

_HELP = (
    "Paste a playlist or album link like https://open.spotify.com/playlist/… , a "
    "spotify:playlist:… URI, or the playlist's 22-character id."
)


@dataclass(frozen=True)
class SpotifyRef:
    """A playlist or album reference (``id`` is the 22-char base62 Spotify id)."""

    kind: RefKind
    id: str

    @property
    def url(self) -> str:
        return f"https://open.spotify.com/{self.kind}/{self.id}"

    @property
    def uri(self) -> str:
        return f"spotify:{self.kind}:{self.id}"


def _check_id(raw: str, kind: str) -> str:
    if SPOTIFY_ID_RE.match(raw):
        return raw
    if not raw:
        raise InvalidLink(f"That {kind} link has no id after /{kind}/. {_HELP}")
    if _BASE62_RE.match(raw):
        raise InvalidLink(
            f"The {kind} id must be 22 characters (letters and digits); "
            f"“{raw[:40]}” has {len(raw)}. Check that the link was copied completely."
        )
    raise InvalidLink(
        f"The {kind} id “{raw[:40]}” contains characters a Spotify id never has "
        "(only letters and digits, 22 of them)."
    )


def _ref(kind: str, raw_id: str) -> SpotifyRef:
    if kind in _SUPPORTED:
        return SpotifyRef(kind, _check_id(raw_id, kind))  # type: ignore[arg-type]
    what = _OTHER_KINDS.get(kind)
    if what:
        raise InvalidLink(f"That's a Spotify link to {what}, not a playlist or album.")
    raise InvalidLink(f"That Spotify link points to “{kind}”, not a playlist or album.")


def _parse_uri(text: str) -> SpotifyRef:
    parts = text.split(":")
    # spotify:user:NAME:playlist:ID (legacy) → drop the user part
    if len(parts) == 5 and parts[1].lower() == "user" and parts[3].lower() == "playlist":
        return _ref("playlist", parts[4])
    if len(parts) == 3:
        return _ref(parts[1].lower(), parts[2])
    if len(parts) >= 2 and parts[1].lower() == "user" and len(parts) <= 3:
        raise InvalidLink("That's a Spotify link to a user profile, not a playlist or album.")
    raise InvalidLink(f"“{text[:60]}” isn't a Spotify URI I understand. {_HELP}")


def _parse_url(text: str) -> SpotifyRef:
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    if host in _SHORT_HOSTS:
        raise InvalidLink(
            "Short spotify.link / spoti.fi links can't be read directly: open the link and "
            "paste the open.spotify.com address (Share → Copy link) instead."
        )
    if host not in _HOSTS:
        raise InvalidLink(f"That doesn't look like a Spotify link. {_HELP}")
    segments = [s for s in parts.path.split("/") if s]
    # Drop locale (intl-de) and embed prefixes.
    while segments and (segments[0].lower().startswith("intl-") or segments[0] == "embed"):
        segments = segments[1:]
    # /user/NAME/playlist/ID (legacy web player form)
    if len(segments) >= 4 and segments[0] == "user" and segments[2] == "playlist":
        segments = segments[2:]
    if not segments:
        raise InvalidLink(f"That Spotify link doesn't point to a playlist or album. {_HELP}")
    kind = segments[0].lower()
    raw_id = segments[1] if len(segments) > 1 else ""
    if kind == "user" and len(segments) <= 2:
        raise InvalidLink("That's a Spotify link to a user profile, not a playlist or album.")
    return _ref(kind, raw_id)


def parse_spotify_link(text: str) -> SpotifyRef:
    """Parse one pasted reference. Raises InvalidLink with a specific, user-facing message."""
    s = (text or "").strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    if not s:
        raise InvalidLink(f"There's no link there. {_HELP}")
    if s.lower().startswith("spotify:"):
        return _parse_uri(s)
    if "/" in s or "." in s:
        return _parse_url(s)
    if _BASE62_RE.match(s):
        return SpotifyRef("playlist", _check_id(s, "playlist"))
    raise InvalidLink(f"That doesn't look like a Spotify link. {_HELP}")


def find_spotify_links(text: str) -> list[SpotifyRef]:
    """Every playlist/album reference in a chat message, de-duplicated, in order.

    Track/artist/etc. links and malformed ones are ignored (a chat message is not a command).
    """
    found: list[SpotifyRef] = []
    for match in _FIND_RE.finditer(text or ""):
        token = match.group(0).rstrip(".,;:!?)]}'\"")
        try:
            ref = parse_spotify_link(token)
        except InvalidLink:
            continue
        if ref not in found:
            found.append(ref)
    return found
