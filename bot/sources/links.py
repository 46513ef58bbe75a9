"""Parse the Spotify playlist/album references people paste into Discord.

Accepted: ``https://open.spotify.com/playlist/ID?si=…`` (with or without scheme, ``www.``,
``intl-xx/`` locale segment, ``embed/`` prefix; also the mobile host ``m.spotify.com``),
``spotify:playlist:ID`` (also with ``?si=…`` after it), ``spotify:user:NAME:playlist:ID``, the
app's deep link ``spotify://playlist/ID``, the same for albums, a bare 22-character base62 id
(taken as a playlist), and any of those wrapped in ``<…>`` (Discord's "suppress embed" form).
A track link shared from inside a playlist (``/track/ID?context=spotify:playlist:ID``, the
context possibly percent-encoded) is read as that playlist.
Everything else raises :class:`bot.errors.InvalidLink` with a message saying what is wrong.

Short links (``spotify.link/…``, ``spotify.app.link/…``, ``spoti.fi/…``: what the phone apps
share) carry no id; :func:`resolve_short_link` follows their redirects (at most
:data:`MAX_SHORT_LINK_HOPS`, only ever requesting short-link hosts) to the open.spotify.com link.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

from bot.errors import InvalidLink, SpotifyUnavailable
from bot.models import RefKind, SpotifyRef  # plain data on the ground floor; parsed here

__all__ = [
    "SPOTIFY_ID_RE",
    "RefKind",
    "SpotifyRef",
    "find_spotify_links",
    "parse_spotify_link",
    "resolve_short_link",
    "short_link_via",
]

if TYPE_CHECKING:
    import aiohttp


# A Spotify id: 22 base62 characters (tracks, playlists, albums, artists).
SPOTIFY_ID_RE = re.compile(r"^[0-9A-Za-z]{22}$")
_BASE62_RE = re.compile(r"^[0-9A-Za-z]+$")
_SUPPORTED: tuple[str, ...] = ("playlist", "album")
_SHARE = "(⋯ → Share → Copy link)"
_NO_MUSIC = "there's no music in it to cluster; paste a playlist or album link instead"
_OPEN_ONE = f"open one of its playlists and paste that playlist's link {_SHARE}"
# What a link to anything else points to, and what to paste instead: every such reply says both.
_OTHER_KINDS: dict[str, tuple[str, str]] = {
    "track": ("a track", f"paste the link of a playlist or album it's on {_SHARE}"),
    "artist": (
        "an artist",
        f"paste one of their albums, or a playlist such as “This Is …” {_SHARE}",
    ),
    "episode": ("a podcast episode", _NO_MUSIC),
    "show": ("a podcast", _NO_MUSIC),
    "audiobook": ("an audiobook", _NO_MUSIC),
    "chapter": ("an audiobook chapter", _NO_MUSIC),
    "user": ("a user profile", f"open one of their public playlists and paste its link {_SHARE}"),
    "collection": (
        "your Liked Songs",
        "in Discord, `/cluster liked:true` reads it once you've run `/spotify link`; or "
        "export it with Exportify (https://exportify.net) and attach the CSV file",
    ),
    "genre": ("a genre page", _OPEN_ONE),
    "search": ("a search", _OPEN_ONE),
}


def _not_supported(kind: str) -> InvalidLink:
    """A link to something that isn't a playlist or album: what it is and what to paste."""
    known = _OTHER_KINDS.get(kind)
    if known is None:
        return InvalidLink(
            f"That Spotify link points to “{kind[:40]}”, not a playlist or album. {_HELP}"
        )
    what, how = known
    return InvalidLink(f"That's a Spotify link to {what}, not a playlist or album: {how}.")


_HOSTS = {"open.spotify.com", "play.spotify.com", "m.spotify.com", "spotify.com", "www.spotify.com"}
_SHORT_HOSTS = {"spotify.link", "spotify.app.link", "spoti.fi"}
DEFAULT_WEB_BASE = "https://open.spotify.com"
MAX_SHORT_LINK_HOPS = 5
# Bytes of a short link's HTML answer searched for the open.spotify.com link (no redirect).
_SHORT_BODY_LIMIT = 256 * 1024

# Candidate tokens inside a chat message: URLs (with or without scheme), the app's
# spotify:// deep links and spotify: URIs (with the query after them: it may carry a context).
_FIND_RE = re.compile(
    r"(?:https?://)?(?:open|play|m)\.spotify\.com/[^\s<>|]+|spotify://[^\s<>|]+"
    r"|spotify:[A-Za-z0-9:._-]+(?:\?[^\s<>|]*)?",
    re.IGNORECASE,
)
_FIND_SHORT_RE = re.compile(
    r"(?:https?://)?(?:spotify\.link|spotify\.app\.link|spoti\.fi)/[A-Za-z0-9_-]+",
    re.IGNORECASE,
)

_HELP = (
    "Paste a playlist or album link like https://open.spotify.com/playlist/… , a "
    "spotify:playlist:… URI, or the playlist's 22-character id."
)


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


def _ref(kind: str, raw_id: str, query: str = "") -> SpotifyRef:
    """The playlist/album ``kind``/``raw_id`` names; a link to anything else (a track) read as
    the playlist/album its ``?context=`` names (what the app shares from inside a playlist),
    else refused saying what it is."""
    if kind in _SUPPORTED:
        return SpotifyRef(kind, _check_id(raw_id, kind))  # type: ignore[arg-type]
    # parse_qs takes the percent-encoding off (context=spotify%3Aplaylist%3AID).
    for context in parse_qs(query).get("context", []):
        try:
            return _parse_uri(context.strip())
        except InvalidLink:
            continue  # a context that is no playlist/album (an artist, a search): the track's reply
    raise _not_supported(kind)


def _parse_uri(text: str) -> SpotifyRef:
    if text[len("spotify:") :].startswith("//"):  # the app's deep link: spotify://playlist/ID
        return _parse_url(f"{DEFAULT_WEB_BASE}/{text[len('spotify://') :]}")
    text, _, query = text.partition("?")  # spotify:playlist:ID?si=… (a query after a URI)
    text = text.partition("#")[0]
    parts = text.split(":")
    # spotify:user:NAME:playlist:ID (legacy) → drop the user part
    if len(parts) == 5 and parts[1].lower() == "user" and parts[3].lower() == "playlist":
        return _ref("playlist", parts[4])
    if len(parts) == 3:
        return _ref(parts[1].lower(), parts[2], query)
    if len(parts) >= 2 and parts[1].lower() == "user":
        # spotify:user:NAME (a profile), spotify:user:NAME:collection (their Liked Songs), …
        raise _not_supported(parts[3].lower() if len(parts) > 3 else "user")
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
        if "." in host and not host.endswith("spotify.com"):
            raise InvalidLink(f"That's a link to {host[:60]}, not to Spotify. {_HELP}")
        raise InvalidLink(f"That doesn't look like a Spotify link. {_HELP}")
    # A link whose query was percent-encoded once too often (".../ID%3Fsi%3D…", as some apps
    # re-share it) still carries the id before the encoded "?".
    path = unquote(parts.path).split("?")[0].split("&")[0]
    segments = [s for s in path.split("/") if s]
    # Drop locale (intl-de) and embed prefixes (also the older iframe codes' embed-legacy/,
    # embed-podcast/).
    while segments and segments[0].lower().startswith(("intl-", "embed")):
        segments = segments[1:]
    # /user/NAME/playlist/ID (legacy web player form)
    if len(segments) >= 4 and segments[0] == "user" and segments[2] == "playlist":
        segments = segments[2:]
    if not segments:
        raise InvalidLink(f"That Spotify link doesn't point to a playlist or album. {_HELP}")
    kind = segments[0].lower()
    raw_id = segments[1] if len(segments) > 1 else ""
    if kind == "user" and len(segments) <= 2:
        raise _not_supported("user")
    return _ref(kind, raw_id, parts.query)


def parse_spotify_link(text: str) -> SpotifyRef:
    """Parse one pasted reference. Raises InvalidLink with a specific, user-facing message."""
    s = _one_link(text)
    if not s:
        raise InvalidLink(f"There's no link there. {_HELP}")
    if s.lower().startswith("spotify:"):
        return _parse_uri(s)
    if "/" in s or "." in s:
        return _parse_url(s)
    if _BASE62_RE.match(s):
        return SpotifyRef("playlist", _check_id(s, "playlist"))
    raise InvalidLink(f"That doesn't look like a Spotify link. {_HELP}")


# What a chat client or a copy adds around a link: invisible characters (zero-width spaces,
# joiners, a BOM), Discord markdown wrapped around it (``<…>`` suppresses the embed,
# ``||…||`` is a spoiler, ``**``/``__``/``~~``/``*``/``_``/backticks), brackets and quotes,
# ``[label](url)`` (a masked link), and sentence punctuation after it (also the full-width
# forms typed with a Chinese or Japanese keyboard). A Spotify id, URI or short-link code never
# ends in any of these, so they are taken off.
_INVISIBLE_RE = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
_WRAPPERS: tuple[tuple[str, str], ...] = (
    ("<", ">"), ("||", "||"), ("**", "**"), ("__", "__"), ("~~", "~~"), ("```", "```"),
    ("`", "`"), ("*", "*"), ("_", "_"), ("(", ")"), ("[", "]"), ("{", "}"), ('"', '"'),
    ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("\u00ab", "\u00bb"),
    ("\u300c", "\u300d"), ("\uff08", "\uff09"),
)  # fmt: skip
_MASKED_LINK_RE = re.compile(r"^\[[^\]]*\]\((.+)\)$", re.DOTALL)
_TRAILING = (
    ".,;:!?'\")]}>|*_~`\u2019\u201d\u00bb"
    "\u3002\u3001\uff0c\uff0e\uff01\uff1f\uff09\u300d\u300f\u3011"  # full-width
)


def _unwrap(text: str) -> str:
    s = _INVISIBLE_RE.sub("", text or "").strip()
    while True:
        masked = _MASKED_LINK_RE.match(s)
        if masked:
            s = masked.group(1).strip()
            continue
        for opening, closing in _WRAPPERS:
            wrapped = s.startswith(opening) and s.endswith(closing)
            if wrapped and len(s) >= len(opening) + len(closing):
                s = s[len(opening) : -len(closing)].strip()
                break
        else:  # nothing wrapped around it: take the punctuation after it off, once
            stripped = s.rstrip(_TRAILING).strip()
            if stripped == s:
                return s
            s = stripped


def _one_link(text: str) -> str:
    """The one link in what was pasted, with what surrounds it taken off (see ``_unwrap``).

    Text with spaces in it ("my mix https://open.spotify.com/playlist/… enjoy", an embed's
    ``<iframe …>`` code) is searched: its one Spotify link is used. Two different links raise
    InvalidLink (which one was meant?); no link leaves the text as it is, for the caller's
    message."""
    s = _unwrap(text)
    if not any(c.isspace() for c in s):
        return s
    found: dict[object, str] = {}
    for match in [*_FIND_RE.finditer(s), *_FIND_SHORT_RE.finditer(s)]:
        token = _unwrap(match.group(0))
        try:
            key: object = _parse_one(token)
        except InvalidLink:
            key = token
        found.setdefault(key, token)
    if len(found) > 1:
        raise InvalidLink(
            f"That has {len(found)} different Spotify links in it: give me just one playlist "
            "or album link at a time."
        )
    return next(iter(found.values()), s)


def _parse_one(token: str) -> SpotifyRef:
    """``token`` (one link, unwrapped) parsed; a short link stands for itself."""
    if _short_url(token) is not None:
        raise InvalidLink("short link")
    if token.lower().startswith("spotify:"):
        return _parse_uri(token)
    return _parse_url(token)


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


def _short_url(text: str) -> str | None:
    """``text`` as an https short-link URL, or None when it isn't one."""
    try:
        s = _one_link(text)
    except InvalidLink:
        return None
    if "://" not in s:
        s = "https://" + s
    parts = urlsplit(s)
    if (parts.hostname or "").lower() not in _SHORT_HOSTS or not parts.path.strip("/"):
        return None
    return s


def is_short_link(text: str) -> bool:
    """A ``spotify.link/…`` / ``spotify.app.link/…`` / ``spoti.fi/…`` link (needs resolving)."""
    return _short_url(text) is not None


def find_short_links(text: str) -> list[str]:
    """Every short link in a chat message, as https URLs, de-duplicated, in order."""
    found: list[str] = []
    for match in _FIND_SHORT_RE.finditer(text or ""):
        url = _short_url(match.group(0))
        if url and url not in found:
            found.append(url)
    return found


def short_link_via(web_base: str) -> str | None:
    """Where short links are requested: the link itself (None) with the real web base; with any
    other ``SPOTIFY_WEB_BASE`` (a proxy, the tests' loopback fake) ``<base>/<host>/<code>``."""
    base = (web_base or DEFAULT_WEB_BASE).rstrip("/")
    return None if base == DEFAULT_WEB_BASE else base


def _first_ref(text: str) -> SpotifyRef | InvalidLink | None:
    """The first playlist/album link in a page, else the reason its first Spotify link isn't
    one (e.g. a track), else None."""
    reason: InvalidLink | None = None
    for match in _FIND_RE.finditer(text):
        try:
            return parse_spotify_link(match.group(0).rstrip(".,;:!?)]}'\"\\"))
        except InvalidLink as exc:
            reason = reason or exc
    return reason


async def resolve_short_link(
    url: str,
    session: aiohttp.ClientSession,
    *,
    via: str | None = None,
    max_hops: int = MAX_SHORT_LINK_HOPS,
    on_request: Callable[[], None] | None = None,
) -> SpotifyRef:
    """Follow a short link's redirects (at most ``max_hops`` requests) to the playlist/album.

    Only short-link hosts are ever requested: the first redirect to open.spotify.com ends the
    walk (that link is parsed, not fetched), and a redirect anywhere else is refused. An HTML
    answer (what browsers get) is searched for the open.spotify.com link instead.
    Raises InvalidLink (not a playlist/album, dead link) or SpotifyUnavailable.
    """
    import aiohttp

    current = _short_url(url)
    if current is None:
        return parse_spotify_link(url)
    for _ in range(max_hops):
        parts = urlsplit(current)
        host = (parts.hostname or "").lower()
        if host in _HOSTS:
            return parse_spotify_link(current)
        if host not in _SHORT_HOSTS:
            raise InvalidLink(
                f"That short link leads to {host or 'an unknown site'}, not to a Spotify playlist "
                "or album."
            )
        target = current
        if via is not None:
            target = f"{via}/{host}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        if on_request is not None:
            on_request()
        try:
            async with session.get(target, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status in (301, 302, 303, 307, 308) and location:
                    current = urljoin(current, location)
                    continue
                if resp.status == 200:
                    body = await resp.content.read(_SHORT_BODY_LIMIT)
                    found = _first_ref(body.decode("utf-8", errors="replace"))
                    if isinstance(found, SpotifyRef):
                        return found
                    if isinstance(found, InvalidLink):
                        raise found
                    raise InvalidLink(
                        "That short link doesn't lead to a Spotify playlist or album. Open it "
                        "and paste the open.spotify.com address (Share → Copy link) instead."
                    )
                if resp.status in (404, 410):
                    raise InvalidLink(
                        "That short link doesn't lead anywhere (Spotify says it doesn't exist). "
                        "Check it was copied completely."
                    )
                raise SpotifyUnavailable(
                    f"Couldn't open that short link right now (error {resp.status}). Try again "
                    "later, or paste the open.spotify.com address instead.",
                    detail=f"short link {host}: {resp.status}",
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SpotifyUnavailable(
                "Couldn't open that short link right now (the connection failed). Try again "
                "later, or paste the open.spotify.com address instead.",
                detail=f"short link {host}: {type(exc).__name__}",
            ) from None
    raise InvalidLink(
        "That short link redirects too many times. Open it and paste the open.spotify.com "
        "address (Share → Copy link) instead."
    )
