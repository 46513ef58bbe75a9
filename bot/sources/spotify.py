"""Spotify Web API access for the pipeline: playlists, albums, liked songs, audio features.

spotipy does the HTTP (it is synchronous), so every call runs in a worker thread while the
event loop keeps going. Around it this module adds what a bot serving many people needs:

* bounded concurrency (``settings.spotify_concurrency`` requests in flight per gateway),
  concurrent page fetches once a playlist's ``total`` is known, progress reports;
* no hidden sleeping: spotipy's urllib3 retries are disabled (they honour Retry-After and would
  block a thread for hours). 429s are handled here: a short Retry-After is awaited
  (``asyncio.sleep``, never in a thread), a long one or ``reason: QUOTA_EXCEEDED`` fails fast
  with a message saying how long to wait; 5xx/timeouts/connection errors get a small bounded
  retry, then :class:`~bot.errors.SpotifyUnavailable`;
* every failure a user can hit becomes a :mod:`bot.errors` type with a message saying what to do
  (e.g. 403 on playlist items for Development-Mode apps → :class:`~bot.errors.NotOwner`);
* Development vs Extended quota mode: ``audio-features`` and the batch ``/albums`` ``/artists``
  endpoints are tried once; after a 403 they are never called again (state shared by every
  gateway built from the same app via :meth:`SpotifyGateway.with_user_token`).

Tokens never reach the logs: the ``spotipy`` logger (which prints request headers at DEBUG) is
kept at INFO or above.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import requests
import spotipy
from requests.adapters import HTTPAdapter
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials, SpotifyOauthError
from urllib3.util.retry import Retry

from bot.config import Settings
from bot.errors import (
    AuthError,
    EditorialPlaylist,
    EmptyPlaylist,
    NotFound,
    NotOwner,
    PipelineError,
    QuotaExceeded,
    RateLimited,
    SpotifyUnavailable,
    TooLarge,
)
from bot.models import (
    FEATURE_KEYS,
    FetchResult,
    PlaylistMeta,
    Progress,
    ProgressCallback,
    Track,
    no_progress,
)
from bot.redact import redact
from bot.retry_after import parse_retry_after, wait_in_words
from bot.sources.links import SpotifyRef

log = logging.getLogger(__name__)


class _RedactSecrets(logging.Filter):
    """Blank out Authorization header values and token fields in spotipy's log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        redacted = redact(text)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


# spotipy logs full request headers (bearer tokens, Basic client secrets) at DEBUG. Keep its
# loggers at INFO or above even when the root logger is set to DEBUG, and redact anyway in
# case someone turns them down explicitly.
for _name in ("spotipy", "spotipy.client", "spotipy.oauth2"):
    _lg = logging.getLogger(_name)
    if _lg.level == logging.NOTSET or _lg.level < logging.INFO:
        _lg.setLevel(logging.INFO)
    _lg.addFilter(_RedactSecrets())

PAGE_LIMIT = 50  # /playlists/{id}/items, /albums/{id}/tracks, /me/tracks, /me/playlists
AUDIO_FEATURES_BATCH = 100
ALBUMS_BATCH = 20
ARTISTS_BATCH = 50
LIBRARY_CONTAINS_BATCH = 40
ADD_ITEMS_BATCH = 100
EDITORIAL_PREFIX = "37i9dQZF1"
# Well-known track used to probe whether the app still has audio-features (detect_mode).
PROBE_TRACK_ID = "4uLU6hMCjMI75M1A2tKUQC"

_TRACK_FIELDS = (
    "type,id,uri,name,is_local,is_playable,duration_ms,explicit,popularity,"
    "artists(id,name),album(id,name,release_date,images)"
)
_ENTRY_FIELDS = "added_at,added_by.id,is_local"
# First page: ask for both keys (2026 entries carry "item"; older data only "track"). Later
# pages ask only for the key the first page actually used, halving the payload.
ITEMS_FIELDS = f"total,next,items({_ENTRY_FIELDS},item({_TRACK_FIELDS}),track({_TRACK_FIELDS}))"


def items_fields(key: str | None) -> str:
    """The ``fields=`` filter for playlist items carrying the track under ``key``."""
    if key is None:
        return ITEMS_FIELDS
    return f"total,next,items({_ENTRY_FIELDS},{key}({_TRACK_FIELDS}))"


def _rest_item_fields(first_page: dict) -> dict[str, str]:
    return {"fields": items_fields(entry_key(first_page.get("items") or []))}


def entry_key(entries: list[Any]) -> str | None:
    """Which key ("item" or "track") these entries carry their track under, if clear."""
    for e in entries:
        if isinstance(e, dict):
            if e.get("item") is not None:
                return "item"
            if e.get("track") is not None:
                return "track"
    return None


META_FIELDS = (
    "id,name,description,snapshot_id,owner(id,display_name),images,external_urls,"
    "items.total,tracks.total"
)

NOT_OWNER_MESSAGE = (
    "Spotify only lets this bot read playlists that you own or collaborate on (the bot's "
    "Spotify app is in Development Mode). Two ways round it: link your Spotify account with "
    "`/spotify link` and ask again (works for your own and collaborative playlists), or export "
    "the playlist with Exportify (https://exportify.net) and attach the CSV file here."
)
EDITORIAL_MESSAGE = (
    "That's a playlist made by Spotify itself (editorial or personalised, like Today's Top "
    "Hits or Discover Weekly), and Spotify no longer lets apps read those. Copy its songs into "
    "a playlist of your own (select all → Add to playlist) and send that, or attach an "
    "Exportify CSV (https://exportify.net)."
)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _io_executor() -> ThreadPoolExecutor:
    """Threads for spotipy calls (separate from asyncio's small default pool)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="spotify-io")
        return _executor


class FeaturesUnavailable(Exception):
    """The app has no access to Spotify's audio-features (403 once; never asked again)."""


def _chunks(seq: Sequence[str], n: int) -> list[list[str]]:
    return [list(seq[i : i + n]) for i in range(0, len(seq), n)]


class _LockedClientCredentials(SpotifyClientCredentials):
    """Client-credentials manager whose token refresh is safe across worker threads.

    spotipy's manager checks the cache and requests a new token without a lock, so N threads
    could all refresh at once; here exactly one does and the rest reuse its token.
    """

    def __init__(self, *args: Any, token_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.OAUTH_TOKEN_URL = token_url
        self._lock = threading.Lock()

    def get_access_token(self, as_dict: bool = False, check_cache: bool = True) -> Any:
        with self._lock:
            return super().get_access_token(as_dict=as_dict, check_cache=check_cache)

    def forget_token(self) -> None:
        with self._lock:
            self.cache_handler.save_token_to_cache(None)


@dataclass
class _AppState:
    """Per-app knowledge shared by the app gateway and every user gateway built from it."""

    audio_features_available: bool | None = None
    batch_metadata_available: bool | None = None  # GET /albums?ids=, /artists?ids=
    mode: str | None = None


class _HttpFailure(Exception):
    """A non-2xx answer that the caller maps to a user-facing error."""

    def __init__(self, status: int, reason: str | None, message: str, headers: Any) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers


class SpotifyGateway:
    """Async façade over spotipy, one per credential (app token or a user's token)."""

    def __init__(
        self,
        settings: Settings,
        *,
        access_token: str | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        _state: _AppState | None = None,
    ) -> None:
        self.settings = settings
        self.request_count = 0
        self._sleep = sleep or asyncio.sleep
        self._state = _state or _AppState()
        self._user_token = access_token
        self._sem: asyncio.Semaphore | None = None
        self._albums: dict[str, dict] = {}
        self._count_lock = threading.Lock()
        self._ccm: _LockedClientCredentials | None = None

        session = requests.Session()
        retry = Retry(
            total=0, connect=0, read=False, status=0, redirect=0, respect_retry_after_header=False,
            raise_on_status=False,
        )  # fmt: skip
        pool = max(10, settings.spotify_concurrency)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session

        if access_token is None and settings.spotify_configured:
            assert settings.spotify_client_secret is not None
            self._ccm = _LockedClientCredentials(
                client_id=settings.spotify_client_id,
                client_secret=settings.spotify_client_secret.get_secret_value(),
                requests_timeout=settings.spotify_timeout_s,
                cache_handler=MemoryCacheHandler(),
                token_url=settings.spotify_accounts_base.rstrip("/") + "/api/token",
            )
        self._sp = spotipy.Spotify(
            auth=access_token,
            auth_manager=self._ccm,
            requests_session=session,
            requests_timeout=settings.spotify_timeout_s,
            retries=0,
            status_retries=0,
        )
        prefix = settings.spotify_api_base
        self._sp.prefix = prefix if prefix.endswith("/") else prefix + "/"

    # -- construction / state ----------------------------------------------------------------

    def with_user_token(self, access_token: str) -> SpotifyGateway:
        """Same settings and app knowledge, acting as the user who owns ``access_token``."""
        return SpotifyGateway(
            self.settings, access_token=access_token, sleep=self._sleep, _state=self._state
        )

    @property
    def has_credentials(self) -> bool:
        return self._user_token is not None or self._ccm is not None

    @property
    def is_user(self) -> bool:
        return self._user_token is not None

    @property
    def audio_features_available(self) -> bool | None:
        return self._state.audio_features_available

    @audio_features_available.setter
    def audio_features_available(self, value: bool | None) -> None:
        self._state.audio_features_available = value

    def close(self) -> None:
        self._session.close()

    # -- low-level call ------------------------------------------------------------------------

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(max(1, self.settings.spotify_concurrency))
        return self._sem

    def _blocking_call(self, method: str, path: str, payload: Any, params: dict) -> Any:
        with self._count_lock:
            self.request_count += 1
        try:
            return self._sp._internal_call(method, path, payload, params)
        except spotipy.SpotifyException as exc:
            raise _HttpFailure(exc.http_status, exc.reason, str(exc.msg), exc.headers) from None

    async def _call(self, method: str, path: str, *, payload: Any = None, **params: Any) -> Any:
        """One API call with Spotify's rules applied; raises PipelineError or _HttpFailure.

        _HttpFailure is raised for 4xx statuses other than 401/429 so the caller can map them
        (403 on playlist items means something different from 403 on audio-features).
        """
        if not self.has_credentials:
            raise AuthError(
                "Spotify isn't set up on this bot (no SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET)."
                " Attach an Exportify CSV (https://exportify.net) instead, or ask the bot owner."
            )
        loop = asyncio.get_running_loop()
        # A POST that timed out or got a 5xx may still have happened (a playlist created):
        # only GETs are retried after such failures. A 429 means "not processed": retried.
        max_failures = 2 if method == "GET" else 0
        failures = 0
        rate_limits = 0
        auth_retried = False

        async def retry_transient() -> bool:
            """Count one 5xx/timeout/sign-in failure; wait and say whether to try again."""
            nonlocal failures
            failures += 1
            if failures > max_failures:
                return False
            await self._sleep(0.5 * failures)
            return True

        while True:
            call = partial(self._blocking_call, method, path, payload, dict(params))
            try:
                async with self._semaphore():
                    return await loop.run_in_executor(_io_executor(), call)
            except _HttpFailure as exc:
                if exc.status == 429:
                    rate_limits += 1
                    await self._handle_429(exc, rate_limits)
                    continue
                if exc.status == 401:
                    if self._ccm is not None and not auth_retried:
                        auth_retried = True  # cached app token rejected: get a fresh one
                        self._ccm.forget_token()
                        continue
                    raise self._auth_error() from None
                if exc.status >= 500:
                    if await retry_transient():
                        continue
                    raise SpotifyUnavailable(
                        "Spotify is having trouble right now (it answered with an error "
                        f"{exc.status}). Please try again in a few minutes.",
                        detail=f"{method} {path}: {exc.status}",
                    ) from None
                raise
            except SpotifyOauthError as exc:
                if getattr(exc, "error", None) in ("invalid_client", "unauthorized_client"):
                    raise AuthError(
                        "Spotify rejected the bot's app credentials. The bot owner needs to check "
                        "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET.",
                        detail=str(getattr(exc, "error", "")),
                    ) from None
                if await retry_transient():
                    continue
                raise SpotifyUnavailable(
                    "Couldn't sign in to Spotify right now. Please try again in a few minutes.",
                    detail=str(getattr(exc, "error", "oauth")),
                ) from None
            except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
                if await retry_transient():
                    continue
                what = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "failed"
                raise SpotifyUnavailable(
                    f"Spotify isn't responding right now (the connection {what}). "
                    "Please try again in a few minutes.",
                    detail=f"{method} {path}: {type(exc).__name__}",
                ) from None

    def _auth_error(self) -> AuthError:
        if self.is_user:
            return AuthError(
                "Spotify didn't accept your linked account's sign-in. Try again; if it keeps "
                "happening, link your account again with `/spotify link`."
            )
        return AuthError(
            "Spotify rejected the bot's credentials. The bot owner needs to check "
            "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET."
        )

    async def _handle_429(self, exc: _HttpFailure, attempt: int) -> None:
        wait = parse_retry_after(exc.headers)
        if exc.reason == "QUOTA_EXCEEDED":
            raise QuotaExceeded(
                "The bot has used up its Spotify API quota for now; Spotify asked it to wait "
                f"{wait_in_words(wait)}. Please try again later, or attach an Exportify CSV "
                "(https://exportify.net), which needs no Spotify calls.",
                retry_after=wait,
            )
        if wait > self.settings.spotify_max_retry_after_s or attempt > 3:
            raise RateLimited(
                "Spotify is rate-limiting the bot right now and asked it to wait "
                f"{wait_in_words(wait)}. Please try again after that.",
                retry_after=wait,
            )
        log.info("Spotify 429: waiting %.1fs before retrying", wait)
        await self._sleep(wait)

    async def _get(self, path: str, **params: Any) -> Any:
        return await self._call("GET", path, **params)

    # -- playlists / albums ------------------------------------------------------------------

    async def get_meta(self, ref: SpotifyRef) -> PlaylistMeta:
        """Playlist/album metadata in one request (entries excluded); ``total`` set."""
        if ref.kind == "album":
            return await self._album_meta(ref.id)
        if ref.id.startswith(EDITORIAL_PREFIX):
            raise EditorialPlaylist(EDITORIAL_MESSAGE)
        try:
            data = await self._get(f"playlists/{ref.id}", fields=META_FIELDS)
        except _HttpFailure as exc:
            raise self._playlist_error(exc, ref) from None
        return _playlist_meta(data, ref.id)

    def _playlist_error(
        self,
        exc: _HttpFailure,
        ref: SpotifyRef,
        *,
        items: bool = False,
        owner_id: str | None = None,
    ) -> PipelineError:
        if owner_id == "spotify" and exc.status in (403, 404):
            return EditorialPlaylist(EDITORIAL_MESSAGE)
        if exc.status == 404:
            return NotFound(
                f"Spotify couldn't find that {ref.kind}. Check the link is complete; private "
                "playlists can only be read by their owner (after `/spotify link`).",
                detail=f"404 {ref.kind} {ref.id}",
            )
        if exc.status == 403 and (items or ref.kind == "playlist"):
            return NotOwner(NOT_OWNER_MESSAGE, detail=f"403 {ref.kind} {ref.id}")
        if exc.status == 400:
            return NotFound(
                f"Spotify didn't accept that {ref.kind} id. Check the link is complete.",
                detail=f"400 {ref.id}: {exc.message}",
            )
        return _unexpected(exc)

    async def _album_meta(self, album_id: str) -> PlaylistMeta:
        ref = SpotifyRef("album", album_id)
        try:
            data = await self._get(f"albums/{album_id}")
        except _HttpFailure as exc:
            raise self._playlist_error(exc, ref) from None
        self._albums[album_id] = data  # reused by fetch_tracks (its first 50 tracks)
        while len(self._albums) > 32:  # get_meta without fetch_tracks (reused snapshot)
            self._albums.pop(next(iter(self._albums)))
        artists = ", ".join(a.get("name", "") for a in data.get("artists") or [])
        images = data.get("images") or []
        total = data.get("total_tracks") or (data.get("tracks") or {}).get("total")
        return PlaylistMeta(
            id=album_id,
            name=data.get("name") or "Untitled album",
            kind="album",
            owner_id=None,
            owner_name=artists or None,
            # Albums don't change; a stable "snapshot" lets storage reuse earlier fetches.
            snapshot_id=f"album:{data.get('release_date', '')}:{total}",
            total=total,
            url=(data.get("external_urls") or {}).get("spotify") or ref.url,
            image_url=images[0]["url"] if images else None,
            description=data.get("label") or None,
        )

    async def fetch(
        self,
        ref: SpotifyRef,
        progress: ProgressCallback = no_progress,
        *,
        max_tracks: int | None = None,
    ) -> FetchResult:
        """get_meta + size check + fetch_tracks."""
        meta = await self.get_meta(ref)
        limit = max_tracks if max_tracks is not None else self.settings.max_playlist_tracks
        if meta.total is not None and limit and meta.total > limit:
            raise TooLarge(
                f"“{meta.name}” has {meta.total:,} tracks; this bot analyses at most {limit:,}."
                " Try a smaller playlist, or split this one."
            )
        return await self.fetch_tracks(ref, meta, progress)

    async def fetch_tracks(
        self, ref: SpotifyRef, meta: PlaylistMeta, progress: ProgressCallback = no_progress
    ) -> FetchResult:
        """Every entry of the playlist/album; first page, then the rest concurrently."""
        if ref.kind == "album":
            entries, total = await self._album_entries(ref, meta, progress)
            tracks, skipped = self._parse_entries(entries)
        else:
            parsed, total = await self._paged(
                f"playlists/{ref.id}/items",
                progress,
                on_error=lambda exc: self._playlist_error(
                    exc, ref, items=True, owner_id=meta.owner_id
                ),
                fields=ITEMS_FIELDS,
                rest_params=_rest_item_fields,
                convert=_page_tracks,
            )
            tracks, skipped = _collect(parsed)
        if meta.total is None:
            meta.total = total
        if not tracks:
            raise EmptyPlaylist(_empty_message(meta, skipped))
        await self._enrich(tracks)
        return FetchResult(meta=meta, tracks=tracks, skipped=skipped)

    async def _paged(
        self,
        path: str,
        progress: ProgressCallback,
        *,
        on_error: Callable[[_HttpFailure], PipelineError] | None = None,
        first: dict | None = None,
        limit_items: int | None = None,
        rest_params: Callable[[dict], dict] | None = None,
        convert: Callable[[list[Any]], list[Any]] | None = None,
        **params: Any,
    ) -> tuple[list[Any], int]:
        """All items of a paging endpoint: page 0, then the remaining offsets concurrently.

        ``rest_params(first_page)`` may change the query parameters for the later pages.
        ``convert(items)`` maps each page's items as it arrives (one result per item).
        """
        conv = convert or list

        async def page(offset: int) -> dict:
            try:
                return await self._get(path, limit=PAGE_LIMIT, offset=offset, **params)
            except _HttpFailure as exc:
                if on_error is not None:
                    raise on_error(exc) from None
                raise

        first_page = first if first is not None else await page(0)
        total = int(first_page.get("total") or 0)
        wanted = total if limit_items is None else min(total, limit_items)
        pages: dict[int, list[Any]] = {0: conv(list(first_page.get("items") or []))}
        done = len(pages[0])
        await progress(Progress(stage="fetching", done=min(done, wanted), total=wanted))
        got_first = len(pages[0]) or PAGE_LIMIT
        offsets = list(range(got_first, wanted, PAGE_LIMIT))
        if offsets and rest_params is not None:
            params = rest_params(first_page)

        async def fetch_one(offset: int) -> None:
            nonlocal done
            data = await page(offset)
            pages[offset] = conv(list(data.get("items") or []))
            done += len(pages[offset])
            await progress(Progress(stage="fetching", done=min(done, wanted), total=wanted))

        if offsets:
            await _gather_all([fetch_one(o) for o in offsets])
        items = [it for off in sorted(pages) for it in pages[off]]
        if limit_items is not None:
            items = items[:limit_items]
        return items, total

    async def _album_entries(
        self, ref: SpotifyRef, meta: PlaylistMeta, progress: ProgressCallback
    ) -> tuple[list[dict], int]:
        album = self._albums.get(ref.id)
        if album is None:
            await self._album_meta(ref.id)
            album = self._albums[ref.id]
        embedded = album.get("tracks") or {}
        first = embedded if embedded.get("offset", 0) == 0 and "items" in embedded else None
        raw, total = await self._paged(
            f"albums/{ref.id}/tracks",
            progress,
            on_error=lambda exc: self._playlist_error(exc, ref),
            first=first,
        )
        album_info = {
            "id": album.get("id"),
            "name": album.get("name"),
            "release_date": album.get("release_date"),
            "images": album.get("images") or [],
        }
        entries = []
        for t in raw:
            if isinstance(t, dict):
                t = {**t, "album": album_info}
            entries.append({"item": t})
        self._albums.pop(ref.id, None)
        return entries, total

    @staticmethod
    def _parse_entries(entries: Iterable[Any]) -> tuple[list[Track], dict[str, int]]:
        """Playable tracks in order, plus counts of what was skipped and why."""
        return _collect(_page_tracks(list(entries)))

    # -- extended-mode enrichment --------------------------------------------------------------

    async def _enrich(self, tracks: list[Track]) -> None:
        """Labels and artist genres, only for apps that still have the batch endpoints."""
        if not tracks or all(t.popularity is None for t in tracks):
            return  # Development Mode data: the batch endpoints are 403 too
        if self._state.batch_metadata_available is False:
            return
        # Both finish (no request left running in the background) before deciding.
        labels, genres = await asyncio.gather(
            self._album_labels({t.album_id for t in tracks if t.album_id}),
            self._artist_genres({a for t in tracks for a in t.artist_ids if a}),
            return_exceptions=True,
        )
        for res in (labels, genres):
            if isinstance(res, _HttpFailure) and res.status == 403:
                self._state.batch_metadata_available = False
                return
            if isinstance(res, PipelineError | _HttpFailure):
                log.warning("Skipping label/genre enrichment: %s", res)
                return
            if isinstance(res, BaseException):
                raise res
        assert isinstance(labels, dict) and isinstance(genres, dict)
        self._state.batch_metadata_available = True
        for t in tracks:
            if t.album_id and labels.get(t.album_id):
                t.label = labels[t.album_id]
            g: list[str] = []
            for a in t.artist_ids:
                for genre in genres.get(a, []):
                    if genre not in g:
                        g.append(genre)
            if g:
                t.genres = g

    async def _album_labels(self, album_ids: set[str]) -> dict[str, str]:
        out: dict[str, str] = {}

        async def one(chunk: list[str]) -> None:
            data = await self._get("albums", ids=",".join(chunk))
            for al in data.get("albums") or []:
                if al and al.get("label"):
                    out[al["id"]] = al["label"]

        await _gather_all([one(c) for c in _chunks(sorted(album_ids), ALBUMS_BATCH)])
        return out

    async def _artist_genres(self, artist_ids: set[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}

        async def one(chunk: list[str]) -> None:
            data = await self._get("artists", ids=",".join(chunk))
            for ar in data.get("artists") or []:
                if ar and ar.get("genres"):
                    out[ar["id"]] = list(ar["genres"])

        await _gather_all([one(c) for c in _chunks(sorted(artist_ids), ARTISTS_BATCH)])
        return out

    # -- audio features ------------------------------------------------------------------------

    async def audio_features(self, ids: list[str]) -> dict[str, dict[str, float]]:
        """Spotify's audio features (100 ids/call, concurrent). Missing ids are absent.

        Raises FeaturesUnavailable on the first 403 and, without any request, ever after.
        """
        if self._state.audio_features_available is False:
            raise FeaturesUnavailable("audio-features is not available to this app")
        unique = list(dict.fromkeys(i for i in ids if i))
        out: dict[str, dict[str, float]] = {}

        async def one(chunk: list[str]) -> None:
            if self._state.audio_features_available is False:
                return
            try:
                data = await self._get("audio-features", ids=",".join(chunk))
            except _HttpFailure as exc:
                if exc.status == 403:
                    self._state.audio_features_available = False
                    return
                raise SpotifyUnavailable(
                    "Spotify's audio features request failed.", detail=str(exc)
                ) from None
            self._state.audio_features_available = True
            for row in data.get("audio_features") or []:
                if row and row.get("id"):
                    feats = {k: float(row[k]) for k in FEATURE_KEYS if row.get(k) is not None}
                    if feats:
                        out[row["id"]] = feats

        chunks = _chunks(unique, AUDIO_FEATURES_BATCH)
        if chunks and self._state.audio_features_available is None:
            # Unknown access: send one batch first so a Development-Mode app costs one 403.
            await one(chunks.pop(0))
        await _gather_all([one(c) for c in chunks])
        if self._state.audio_features_available is False:
            raise FeaturesUnavailable("audio-features answered 403 (Development Mode app)")
        return out

    # -- user endpoints --------------------------------------------------------------------------

    def _require_user(self, what: str) -> None:
        if not self.is_user:
            raise AuthError(f"{what} needs a linked Spotify account: use `/spotify link` first.")

    async def _user_call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            return await self._call(method, path, **kw)
        except _HttpFailure as exc:
            if exc.status == 403:
                raise AuthError(
                    "Spotify refused that for your linked account (missing permission). Link "
                    "again with `/spotify link` to grant it.",
                    detail=f"403 {path}",
                ) from None
            if exc.status == 404:
                raise NotFound("Spotify couldn't find that.", detail=f"404 {path}") from None
            raise SpotifyUnavailable(
                "Spotify didn't accept that request. Please try again later.",
                detail=f"{exc.status} {path}: {exc.message}",
            ) from None

    async def current_user(self) -> dict:
        """``GET /me`` (user token)."""
        self._require_user("Reading your Spotify profile")
        return await self._user_call("GET", "me")

    async def fetch_liked(
        self, progress: ProgressCallback = no_progress, *, max_tracks: int | None = None
    ) -> FetchResult:
        """The user's Liked Songs, newest first (capped at ``max_tracks``; the rest skipped)."""
        self._require_user("Analysing your Liked Songs")
        me = await self.current_user()
        limit = max_tracks if max_tracks is not None else self.settings.max_playlist_tracks

        def on_error(exc: _HttpFailure) -> Exception:
            if exc.status == 403:
                return AuthError(
                    "Spotify didn't let the bot read your Liked Songs. Link again with "
                    "`/spotify link` and allow access to your library."
                )
            return _unexpected(exc)

        parsed, total = await self._paged(
            "me/tracks",
            progress,
            on_error=on_error,
            limit_items=limit or None,
            convert=_page_tracks,
        )
        tracks, skipped = _collect(parsed)
        if limit and total > limit:
            skipped["over_limit"] = total - limit
        uid = me.get("id") or "me"
        meta = PlaylistMeta(
            id=f"liked:{uid}",
            name=f"{me.get('display_name') or uid}'s Liked Songs",
            kind="liked",
            owner_id=uid,
            owner_name=me.get("display_name") or uid,
            snapshot_id=None,
            total=total,
            url="https://open.spotify.com/collection/tracks",
        )
        if not tracks:
            raise EmptyPlaylist(_empty_message(meta, skipped))
        await self._enrich(tracks)
        return FetchResult(meta=meta, tracks=tracks, skipped=skipped)

    async def my_playlists(self) -> list[PlaylistMeta]:
        """Every playlist the user owns or follows (``GET /me/playlists``, all pages)."""
        self._require_user("Listing your playlists")
        try:
            items, _ = await self._paged("me/playlists", no_progress)
        except _HttpFailure as exc:
            raise AuthError(
                "Spotify didn't let the bot list your playlists. Link again with `/spotify link`.",
                detail=f"{exc.status} me/playlists",
            ) from None
        return [_playlist_meta(p, p["id"]) for p in items if p]

    async def library_contains(self, track_ids: list[str]) -> set[str]:
        """Which of ``track_ids`` the user has saved (``GET /me/library/contains``, ≤40/call)."""
        self._require_user("Checking your Liked Songs")
        unique = list(dict.fromkeys(t for t in track_ids if t))
        saved: set[str] = set()

        async def one(chunk: list[str]) -> None:
            uris = ",".join(f"spotify:track:{t}" for t in chunk)
            flags = await self._user_call("GET", "me/library/contains", uris=uris)
            for tid, flag in zip(chunk, flags or [], strict=False):
                if flag:
                    saved.add(tid)

        await _gather_all([one(c) for c in _chunks(unique, LIBRARY_CONTAINS_BATCH)])
        return saved

    async def create_playlist(
        self, name: str, description: str, track_ids: list[str], *, public: bool = False
    ) -> PlaylistMeta:
        """Create a playlist for the user and add the tracks in order (100 per request)."""
        self._require_user("Saving a playlist")
        body = {"name": name, "description": description, "public": public}
        data = await self._user_call("POST", "me/playlists", payload=body)
        pid = data["id"]
        snapshot = data.get("snapshot_id")
        ids = [t for t in track_ids if t]
        for chunk in _chunks(ids, ADD_ITEMS_BATCH):
            res = await self._user_call(
                "POST",
                f"playlists/{pid}/items",
                payload={"uris": [f"spotify:track:{t}" for t in chunk]},
            )
            snapshot = (res or {}).get("snapshot_id", snapshot)
        owner = data.get("owner") or {}
        return PlaylistMeta(
            id=pid,
            name=data.get("name") or name,
            kind="playlist",
            owner_id=owner.get("id"),
            owner_name=owner.get("display_name") or owner.get("id"),
            snapshot_id=snapshot,
            total=len(ids),
            url=(data.get("external_urls") or {}).get("spotify")
            or f"https://open.spotify.com/playlist/{pid}",
            description=description or None,
        )

    async def detect_mode(self) -> str:
        """ "extended" if the app still has audio-features, "development" if it gets 403,
        "unknown" without credentials or when Spotify can't be reached."""
        if self._state.mode:
            return self._state.mode
        if not self.has_credentials:
            return "unknown"
        try:
            await self.audio_features([PROBE_TRACK_ID])
            mode = "extended"
        except FeaturesUnavailable:
            mode = "development"
        except (PipelineError, _HttpFailure) as exc:
            log.info("Could not detect the Spotify app mode: %s", exc)
            return "unknown"
        self._state.mode = mode
        return mode


def _playlist_meta(data: dict, playlist_id: str) -> PlaylistMeta:
    """A playlist object (``GET /playlists/{id}`` or an item of ``/me/playlists``)."""
    owner = data.get("owner") or {}
    paging = data.get("items") or data.get("tracks") or {}
    images = data.get("images") or []
    return PlaylistMeta(
        id=data.get("id") or playlist_id,
        name=data.get("name") or "Untitled playlist",
        kind="playlist",
        owner_id=owner.get("id"),
        owner_name=owner.get("display_name") or owner.get("id"),
        snapshot_id=data.get("snapshot_id"),
        total=paging.get("total"),
        url=(data.get("external_urls") or {}).get("spotify")
        or SpotifyRef("playlist", playlist_id).url,
        image_url=images[0]["url"] if images else None,
        description=data.get("description") or None,
    )


def _unexpected(exc: _HttpFailure) -> SpotifyUnavailable:
    """A status we have no specific story for (e.g. 400): say so plainly."""
    return SpotifyUnavailable(
        f"Spotify didn't accept the bot's request (error {exc.status}). Please try again later.",
        detail=f"{exc.status}: {exc.message[:200]}",
    )


async def _gather_all(coros: list[Awaitable[Any]]) -> None:
    """Run all; on the first failure cancel the rest and re-raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _entry_track(entry: Any) -> Track | str:
    """An entry's playable Track, or why it is skipped ("null", "local", "episode", ...)."""
    if not isinstance(entry, dict):
        return "null"
    obj = entry.get("item") if "item" in entry else None
    if obj is None:
        obj = entry.get("track")
    if not isinstance(obj, dict):
        return "null"
    uri = obj.get("uri") or ""
    if entry.get("is_local") or obj.get("is_local") or uri.startswith("spotify:local:"):
        return "local"
    if obj.get("type") == "episode" or obj.get("episode") is True:
        return "episode"
    if not obj.get("id") or obj.get("is_playable") is False:
        return "unavailable"
    return _track_from_json(obj, entry)


def _page_tracks(entries: list[Any]) -> list[Track | str]:
    """A page's entries parsed as they arrive (see ``_paged(convert=...)``): the raw JSON of
    a 10,000-entry playlist never piles up (less garbage-collector work), and no single step
    parses all entries at once on the event loop."""
    return [_entry_track(e) for e in entries]


def _collect(parsed: Iterable[Track | str]) -> tuple[list[Track], dict[str, int]]:
    """Tracks in order, first occurrence of each id only, plus the skip counts."""
    skipped = {"local": 0, "episode": 0, "null": 0, "unavailable": 0, "duplicate": 0}
    tracks: list[Track] = []
    seen: set[str] = set()
    for item in parsed:
        if isinstance(item, str):
            skipped[item] += 1
        elif item.id in seen:
            skipped["duplicate"] += 1
        else:
            seen.add(item.id)
            tracks.append(item)
    return tracks, {k: v for k, v in skipped.items() if v}


def _track_from_json(obj: dict, entry: dict) -> Track:
    album = obj.get("album") or {}
    images = album.get("images") or []
    # Prefer the ~300 px image (embeds show it small); fall back to whatever there is.
    image = None
    if images:
        image = min(images, key=lambda im: abs((im.get("width") or 300) - 300)).get("url")
    artists = [a for a in obj.get("artists") or [] if a]
    added_by = entry.get("added_by") or {}
    return Track(
        id=obj["id"],
        name=obj.get("name") or "",
        artists=[a.get("name") or "" for a in artists],
        artist_ids=[a.get("id") or "" for a in artists if a.get("id")],
        album=album.get("name") or "",
        album_id=album.get("id"),
        image_url=image,
        release_date=album.get("release_date"),
        duration_ms=obj.get("duration_ms"),
        explicit=obj.get("explicit"),
        popularity=obj.get("popularity"),
        added_at=entry.get("added_at"),
        added_by=added_by.get("id") if isinstance(added_by, dict) else None,
    )


def _empty_message(meta: PlaylistMeta, skipped: dict[str, int]) -> str:
    labels = {
        "local": "local file",
        "episode": "podcast episode",
        "null": "removed item",
        "unavailable": "unavailable track",
        "duplicate": "duplicate",
    }
    parts = [
        f"{n} {labels.get(k, k)}{'s' if n != 1 else ''}"
        for k, n in skipped.items()
        if n and k in labels
    ]
    why = f" (skipped: {', '.join(parts)})" if parts else ""
    return f"“{meta.name}” has no playable Spotify tracks{why}, so there's nothing to analyse."
