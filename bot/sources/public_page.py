"""Spotify's public embed pages: the listing of any public playlist or album, no token needed.

``{SPOTIFY_WEB_BASE}/embed/playlist/{id}`` and ``/embed/album/{id}`` are server-rendered by
Next.js and carry the listing as JSON in ``<script id="__NEXT_DATA__" type="application/json">``
at ``props.pageProps.state.data.entity``: ``name``, ``subtitle`` (owner / artists),
``coverArt.sources[]`` and ``trackList[]`` with ``uri`` (``spotify:track:<id>``), ``uid``,
``title``, ``subtitle`` (artist names joined by ", "), ``duration`` (ms), ``isExplicit``. The
page lists about the first 100 tracks (measured live in 2026: Rock Classics 100 of 150+, Today's
Top Hits 50 of 50) and says nothing about the rest. It works for Spotify's own editorial
playlists (``37i9dQZF1…``), which the Web API refuses to apps.

What this module adds around one ``GET``:

* a browser-like User-Agent (the page is made for browsers);
* 429 handled like the Web API's (a short Retry-After is awaited, a long one fails fast saying
  how long), 5xx / timeouts / connection errors retried twice, then
  :class:`~bot.errors.SpotifyUnavailable`;
* a missing or private playlist (HTTP 404, or HTTP 200 whose ``pageProps`` has no ``state``,
  which is how the real site answers an unknown id) → :class:`~bot.errors.NotFound`;
* a page that no longer parses (Spotify changed it) → :class:`PublicPageUnreadable` with a clear
  user message, and one WARNING naming what was missing, never a traceback;
* HTTP 403 / 451 (Spotify blocks the page for the server's region or network, or it is
  unavailable there for legal reasons) → :class:`PublicPageRefused` saying so, and what to do
  instead (an Exportify CSV), with one WARNING naming the status;
* one request per playlist: results are kept for :data:`PAGE_TTL_S` seconds and concurrent
  reads of the same page share one request. A page has no ``snapshot_id``, so the result's
  ``snapshot_id`` is a hash of the listing (``page:<sha1>``): storage reuses an analysis of an
  unchanged listing exactly as it does for API snapshots.

The page's JSON also carries an anonymous web-player access token; nothing here logs page text.

Why one module (~520 lines): one source end to end (the page's JSON shape, its parsing, the
reader with its cache and retries) changes together when Spotify changes the page.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import aiohttp

from bot.config import Settings
from bot.errors import NotFound, PipelineError, RateLimited, SpotifyUnavailable
from bot.models import FetchResult, PlaylistMeta, Track
from bot.retry_after import parse_retry_after, wait_in_words
from bot.sources.links import SPOTIFY_ID_RE, SpotifyRef, resolve_short_link, short_link_via
from bot.sources.normalise import first_of_each

log = logging.getLogger(__name__)

# What the page lists at most (the rest of a longer playlist is not on it).
PAGE_TRACK_CAP = 100
# How long a read page is reused without asking again: long enough that a burst of people posting
# the same link (or a digest run over many channels) costs one request, short enough that an
# edited playlist is seen within minutes.
PAGE_TTL_S = 300.0
_CACHE_MAX = 128
_MAX_ATTEMPTS_5XX = 3
_MAX_429 = 3
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
}

UNREADABLE_MESSAGE = (
    "Spotify's public page for that {kind} couldn't be read (Spotify may have changed it), so "
    "the bot can't list its tracks that way right now. Link your Spotify account with "
    "`/spotify link` (works for playlists you own or collaborate on), or export it with "
    "Exportify (https://exportify.net) and attach the CSV file here."
)
NOT_FOUND_MESSAGE = (
    "Spotify couldn't find that {kind}, or it isn't public. Check the link is complete; a private "
    "playlist can only be read by its owner (after `/spotify link`) or from an Exportify CSV "
    "(https://exportify.net)."
)


REFUSED_MESSAGE = (
    "Spotify refused its public page for that {kind} to this bot's server ({why}), so the bot "
    "can't list its tracks that way from here. Export it with Exportify (https://exportify.net) "
    "and attach the CSV file here, or link your Spotify account with `/spotify link` (works for "
    "playlists you own or collaborate on)."
)
# Why a page was refused, by HTTP status: 451 is "Unavailable For Legal Reasons" (RFC 7725).
_REFUSED_WHY = {
    403: "the page is blocked for the server's region or network",
    451: "the page is unavailable in the server's region for legal reasons",
}


class PublicPageUnreadable(PipelineError):
    """The public page answered but did not carry a listing the bot understands."""

    code = "page_unreadable"


class PublicPageRefused(PipelineError):
    """Spotify refused the public page to this server (HTTP 403 / 451): its region or network,
    not the page's shape, so not :class:`PublicPageUnreadable` ("Spotify may have changed it")."""

    code = "page_refused"


@dataclass
class PublicPage:
    """One read of a public page: the tracks it lists, and how many entries it listed."""

    fetched: FetchResult
    listed: int  # entries in trackList, playable or not

    @property
    def maybe_truncated(self) -> bool:
        """The page listed as many entries as it ever does: the playlist may have more."""
        return self.listed >= PAGE_TRACK_CAP


# ------------------------------------------------------------------------------------------------
# Parsing (pure)
# ------------------------------------------------------------------------------------------------


class _NextDataFinder(HTMLParser):
    """The text of the first ``<script id="__NEXT_DATA__">`` (attribute order and quoting as the
    HTML spec allows; a regex on the raw page would depend on Next.js's exact serialisation)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self._inside = False
        self._parts: list[str] = []
        self.found = False
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.done and tag == "script" and ("id", "__NEXT_DATA__") in attrs:
            self._inside = self.found = True

    def handle_endtag(self, tag: str) -> None:
        if self._inside and tag == "script":
            self._inside = False
            self.done = True

    def handle_data(self, data: str) -> None:
        if self._inside:
            self._parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self._parts)


def next_data(html: str) -> str | None:
    """The raw JSON text of the page's ``__NEXT_DATA__`` script, or None when there is none."""
    finder = _NextDataFinder()
    finder.feed(html)
    finder.close()
    return finder.text if finder.found else None


class _Missing(Exception):
    """What the page lacked, for the operator's log line."""


def _unreadable(ref: SpotifyRef, what: str) -> PublicPageUnreadable:
    log.warning(
        "Spotify public page for %s %s could not be read: %s (has the page changed?)",
        ref.kind,
        ref.id,
        what,
    )
    return PublicPageUnreadable(UNREADABLE_MESSAGE.format(kind=ref.kind), detail=what)


def _refused(ref: SpotifyRef, status: int) -> PublicPageRefused:
    log.warning(
        "Spotify public page for %s %s: HTTP %d (refused to this server's region or network)",
        ref.kind,
        ref.id,
        status,
    )
    message = REFUSED_MESSAGE.format(kind=ref.kind, why=_REFUSED_WHY[status])
    return PublicPageRefused(message, detail=f"page {ref.kind} {ref.id}: {status}")


def _not_found(ref: SpotifyRef, why: str) -> NotFound:
    log.info("Spotify public page for %s %s: not found (%s)", ref.kind, ref.id, why)
    return NotFound(NOT_FOUND_MESSAGE.format(kind=ref.kind), detail=f"page {why}")


def split_artists(subtitle: str) -> list[str]:
    """``"A,\\u00a0B"`` / ``"A, B"`` → ``["A", "B"]``.

    The page joins artist names with ",\\u00a0" (a no-break space); when that separator is
    there, only it splits, so a name with a plain ", " in it ("Tyler, The Creator") survives.
    """
    text = subtitle or ""
    parts = text.split(",\u00a0") if ",\u00a0" in text else text.split(", ")
    return [" ".join(p.replace("\u00a0", " ").split()) for p in parts if p.strip()]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _cover(entity: dict) -> str | None:
    """The largest cover image (``coverArt.sources``, else ``visualIdentity.image``)."""
    candidates: list[tuple[int, str]] = []
    cover = entity.get("coverArt")
    for src in (cover.get("sources") if isinstance(cover, dict) else None) or []:
        if isinstance(src, dict) and isinstance(src.get("url"), str):
            candidates.append((_int(src.get("width")) or 0, src["url"]))
    if not candidates:
        ident = entity.get("visualIdentity")
        for img in (ident.get("image") if isinstance(ident, dict) else None) or []:
            if isinstance(img, dict) and isinstance(img.get("url"), str):
                candidates.append((_int(img.get("maxWidth")) or 0, img["url"]))
    return max(candidates, key=lambda c: c[0])[1] if candidates else None


def _entity(ref: SpotifyRef, raw: str | None) -> dict:
    if raw is None:
        raise _Missing('no <script id="__NEXT_DATA__"> on the page')
    try:
        data = json.loads(raw)
    except ValueError:
        raise _Missing("__NEXT_DATA__ is not valid JSON") from None
    props = data.get("props") if isinstance(data, dict) else None
    page_props = props.get("pageProps") if isinstance(props, dict) else None
    if not isinstance(page_props, dict):
        raise _Missing("no props.pageProps in __NEXT_DATA__")
    state = page_props.get("state")
    if state is None:
        # The real site answers an unknown or private id with HTTP 200 and a pageProps holding
        # only {"status": 404 | 500, "title": "Page not found", ...}.
        if "status" in page_props or "title" in page_props:
            raise _not_found(ref, f"status {page_props.get('status')!r}")
        raise _Missing("no props.pageProps.state in __NEXT_DATA__")
    data_obj = state.get("data") if isinstance(state, dict) else None
    if not isinstance(data_obj, dict):
        raise _Missing("no props.pageProps.state.data in __NEXT_DATA__")
    if "entity" not in data_obj:
        # Renamed (Spotify changed the page): said as such, not as "couldn't find that
        # playlist" for every link with only an INFO line for the operator.
        raise _Missing("no props.pageProps.state.data.entity in __NEXT_DATA__")
    entity = data_obj["entity"]
    if entity is None:
        raise _not_found(ref, "no entity")
    if not isinstance(entity, dict):
        raise _Missing("props.pageProps.state.data.entity is not an object")
    return entity


def _page_track(item: Any, ref: SpotifyRef, album: str, release: str | None, image: str | None):
    """A trackList entry as a Track, or why it is skipped (the API path's skip reasons)."""
    if not isinstance(item, dict):
        return "null"
    uri = item.get("uri")
    if not isinstance(uri, str):
        return "bad"
    if uri.startswith("spotify:local:"):
        return "local"
    if item.get("entityType") == "episode" or uri.startswith("spotify:episode:"):
        return "episode"
    parts = uri.split(":")
    if len(parts) != 3 or parts[1] != "track" or not SPOTIFY_ID_RE.match(parts[2]):
        return "bad"
    title = item.get("title")
    if not isinstance(title, str):
        return "bad"
    subtitle = item.get("subtitle")
    explicit = item.get("isExplicit")
    # isPlayable is not used as a skip reason: it describes playback for the bot's own
    # country, and audio features are looked up by id regardless.
    return Track(
        id=parts[2],
        name=title,
        artists=split_artists(subtitle) if isinstance(subtitle, str) else [],
        album=album,
        album_id=ref.id if ref.kind == "album" else None,
        image_url=image,
        release_date=release,
        duration_ms=_int(item.get("duration")),
        explicit=explicit if isinstance(explicit, bool) else None,
    )


def listing_hash(entries: list[Any]) -> str:
    """A stable id of a page's listing (its track uris and row uids, in order)."""
    h = hashlib.sha1()
    for item in entries:
        if isinstance(item, dict):
            h.update(f"{item.get('uri')}\x1f{item.get('uid')}\x1e".encode())
        else:
            h.update(b"\x00\x1e")
    return h.hexdigest()[:20]


def parse_embed_page(html: str, ref: SpotifyRef) -> PublicPage:
    """The listing of one embed page. Raises NotFound or PublicPageUnreadable (logged)."""
    try:
        entity = _entity(ref, next_data(html))
        entries = entity.get("trackList")
        if not isinstance(entries, list):
            raise _Missing("entity has no trackList list")
    except _Missing as exc:
        raise _unreadable(ref, str(exc)) from None
    name = entity.get("name") or entity.get("title")
    name = " ".join(name.split()) if isinstance(name, str) and name.strip() else None
    subtitle = entity.get("subtitle")
    owner = subtitle.replace("\u00a0", " ").strip() if isinstance(subtitle, str) else None
    if not owner:
        authors = entity.get("authors")
        first = authors[0] if isinstance(authors, list) and authors else None
        owner = first.get("name") if isinstance(first, dict) else None
    image = _cover(entity)
    release = None
    if ref.kind == "album":
        rd = entity.get("releaseDate")
        iso = rd.get("isoString") if isinstance(rd, dict) else rd
        release = iso[:10] if isinstance(iso, str) and iso else None
    album_name = (name or "") if ref.kind == "album" else ""
    track_image = image if ref.kind == "album" else None

    tracks, skipped = first_of_each(
        _page_track(item, ref, album_name, release, track_image) for item in entries
    )
    bad = skipped.pop("bad", 0)
    if bad and not tracks:
        raise _unreadable(ref, f"none of the {bad} trackList entries has a track uri and title")
    if bad:
        log.warning(
            "Spotify public page for %s %s: %d of %d trackList entries had no track uri/title",
            ref.kind,
            ref.id,
            bad,
            len(entries),
        )
        skipped["unavailable"] = skipped.get("unavailable", 0) + bad
    description = entity.get("description")
    meta = PlaylistMeta(
        id=ref.id,
        name=name or f"Untitled {ref.kind}",
        kind=ref.kind,
        owner_id=None,
        owner_name=owner or None,
        snapshot_id=f"page:{listing_hash(entries)}",
        # A listing shorter than the cap is the whole playlist; at the cap the size is unknown.
        total=len(entries) if len(entries) < PAGE_TRACK_CAP else None,
        url=ref.url,
        image_url=image,
        description=description if isinstance(description, str) and description else None,
    )
    return PublicPage(FetchResult(meta=meta, tracks=tracks, skipped=skipped), len(entries))


def _copy(page: PublicPage) -> PublicPage:
    """Callers may edit what they get (e.g. ``meta.total``); the cached read stays as read."""
    return PublicPage(FetchResult.from_dict(page.fetched.to_dict()), page.listed)


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------


class PublicPageReader:
    """Reads embed pages (and resolves short links) with one aiohttp session, made on first use."""

    def __init__(
        self,
        web_base: str = "https://open.spotify.com",
        *,
        timeout_s: float = 10.0,
        max_retry_after_s: float = 30.0,
        ttl_s: float = PAGE_TTL_S,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.web_base = web_base.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retry_after_s = max_retry_after_s
        self.ttl_s = ttl_s
        self.request_count = 0
        self._sleep = sleep or asyncio.sleep
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._cache: dict[tuple[str, str], tuple[float, PublicPage]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[PublicPage]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> PublicPageReader:
        return cls(
            settings.spotify_web_base,
            timeout_s=settings.spotify_timeout_s,
            max_retry_after_s=settings.spotify_max_retry_after_s,
            **kw,
        )

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s), headers=_HEADERS
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def page_url(self, ref: SpotifyRef) -> str:
        return f"{self.web_base}/embed/{ref.kind}/{ref.id}"

    async def resolve_short_link(self, url: str) -> SpotifyRef:
        """``spotify.link/…`` / ``spotify.app.link/…`` → the playlist or album it points to."""
        session = await self._get_session()

        def count() -> None:
            self.request_count += 1

        return await resolve_short_link(
            url, session, via=short_link_via(self.web_base), on_request=count
        )

    async def read(self, ref: SpotifyRef) -> PublicPage:
        """The page's listing: from the cache when read less than ``ttl_s`` ago, else one GET
        (shared by every caller asking for the same page meanwhile)."""
        key = (ref.kind, ref.id)
        hit = self._cache.get(key)
        if hit is not None and self._clock() - hit[0] < self.ttl_s:
            return _copy(hit[1])
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._read_and_store(ref))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(key, None))
        return _copy(await asyncio.shield(pending))

    async def fetch(self, ref: SpotifyRef) -> FetchResult:
        """:meth:`read`'s FetchResult."""
        return (await self.read(ref)).fetched

    async def _read_and_store(self, ref: SpotifyRef) -> PublicPage:
        html = await self._get_html(ref)
        page = await asyncio.to_thread(parse_embed_page, html, ref)
        self._cache[(ref.kind, ref.id)] = (self._clock(), page)
        while len(self._cache) > _CACHE_MAX:
            self._cache.pop(next(iter(self._cache)))
        return page

    async def _get_html(self, ref: SpotifyRef) -> str:
        url = self.page_url(ref)
        failures = 0
        rate_limits = 0
        while True:
            self.request_count += 1
            try:
                session = await self._get_session()
                async with session.get(url, max_redirects=3) as resp:
                    if resp.status == 200:
                        return await resp.text(errors="replace")
                    if resp.status == 404:
                        raise _not_found(ref, "HTTP 404")
                    if resp.status in _REFUSED_WHY:
                        raise _refused(ref, resp.status)
                    if resp.status == 429:
                        rate_limits += 1
                        wait = parse_retry_after(resp.headers)
                        if wait > self.max_retry_after_s or rate_limits > _MAX_429:
                            raise RateLimited(
                                "Spotify is rate-limiting the bot's reads of its public pages "
                                f"and asked it to wait {wait_in_words(wait)}. Please try again "
                                "after that.",
                                retry_after=wait,
                            )
                        log.info("Spotify public page 429: waiting %.1fs before retrying", wait)
                        await self._sleep(wait)
                        continue
                    if resp.status >= 500:
                        failures += 1
                        if failures < _MAX_ATTEMPTS_5XX:
                            await self._sleep(0.5 * failures)
                            continue
                        raise SpotifyUnavailable(
                            "Spotify is having trouble right now (it answered with an error "
                            f"{resp.status}). Please try again in a few minutes.",
                            detail=f"page {ref.kind} {ref.id}: {resp.status}",
                        )
                    raise _unreadable(ref, f"HTTP {resp.status} from the page")
            except (TimeoutError, aiohttp.ClientError) as exc:
                failures += 1
                if failures < _MAX_ATTEMPTS_5XX:
                    await self._sleep(0.5 * failures)
                    continue
                what = "timed out" if isinstance(exc, TimeoutError) else "failed"
                raise SpotifyUnavailable(
                    f"Spotify isn't responding right now (the connection {what}). "
                    "Please try again in a few minutes.",
                    detail=f"page {ref.kind} {ref.id}: {type(exc).__name__}",
                ) from None
