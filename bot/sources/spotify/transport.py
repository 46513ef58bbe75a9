"""How the bot talks HTTP to Spotify: spotipy on its own thread pool, retries, timeouts.

spotipy does the HTTP (it is synchronous), so every call runs in a worker thread while the
event loop keeps going. Around it this module adds what a bot serving many people needs:

* bounded concurrency (``settings.spotify_concurrency`` requests in flight per gateway);
* no hidden sleeping: spotipy's urllib3 retries are disabled (they honour Retry-After and would
  block a thread for hours). 429s are handled here: a short Retry-After is awaited
  (``asyncio.sleep``, never in a thread), a long one or ``reason: QUOTA_EXCEEDED`` fails fast
  with a message saying how long to wait; 5xx/timeouts/connection errors get a small bounded
  retry, then :class:`~bot.errors.SpotifyUnavailable` (messages: :mod:`.errors`);
* the accounts service (``POST /api/token`` for linking) goes through the same threads and the
  same retry-free sessions (:func:`post_form`).

Tokens never reach the logs: the ``spotipy`` logger (which prints request headers at DEBUG) is
kept at INFO or above, and its records are redacted anyway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
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
from bot.errors import AppAuthError, PipelineError
from bot.models import Progress, ProgressCallback
from bot.redact import redact
from bot.sources.page_sink import emit_page
from bot.sources.spotify.errors import (
    NOT_CONFIGURED_MESSAGE,
    Asked,
    HttpFailure,
    Request,
    app_oauth_error,
    garbled,
    retry_after_of,
    sign_in_failed,
    status_error,
    unreachable,
)

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


class _HttpErrorsAreOurs(logging.Filter):
    """spotipy logs every non-2xx answer at ERROR ("HTTP Error for GET to … returned 403"), so
    the start-up mode probe and each not-owner 403 of Development Mode looked like failures.
    Every such answer becomes a typed error here and is logged (or not) at the level it
    deserves, so spotipy's line is kept at DEBUG only, under this module's logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(
            ("HTTP Error for", "Max Retries reached")
        ):
            log.debug("spotipy: %s", redact(record.getMessage()))
            return False
        return True


# spotipy logs full request headers (bearer tokens, Basic client secrets) at DEBUG. Keep its
# loggers at INFO or above even when the root logger is set to DEBUG, and redact anyway in
# case someone turns them down explicitly.
for _name in ("spotipy", "spotipy.client", "spotipy.oauth2"):
    _lg = logging.getLogger(_name)
    if _lg.level == logging.NOTSET or _lg.level < logging.INFO:
        _lg.setLevel(logging.INFO)
    _lg.addFilter(_RedactSecrets())
logging.getLogger("spotipy.client").addFilter(_HttpErrorsAreOurs())

PAGE_LIMIT = 50  # /playlists/{id}/items, /albums/{id}/tracks, /me/tracks, /me/playlists

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _io_executor() -> ThreadPoolExecutor:
    """Threads for spotipy calls (separate from asyncio's small default pool)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="spotify-io")
        return _executor


async def in_thread(fn: Callable[[], Any]) -> Any:
    """Run blocking HTTP ``fn()`` on the Spotify I/O threads."""
    return await asyncio.get_running_loop().run_in_executor(_io_executor(), fn)


def new_session(settings: Settings) -> requests.Session:
    """A requests session with urllib3's retries off (this module decides about retrying)."""
    session = requests.Session()
    retry = Retry(
        total=0, connect=0, read=False, status=0, redirect=0, respect_retry_after_header=False,
        raise_on_status=False,
    )  # fmt: skip
    pool = max(10, settings.spotify_concurrency)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class FormAnswer:
    """An accounts-service answer: status, headers and the JSON object ({} when not one)."""

    status: int
    headers: Any
    body: dict[str, Any]


async def post_form(
    session: requests.Session, url: str, form: dict[str, str], *, timeout_s: float
) -> FormAnswer:
    """``POST`` a form (the accounts service's ``/api/token``) on the I/O threads.

    Raises ``requests`` timeout/connection errors; the caller maps them with
    :func:`.errors.unreachable`.
    """

    def blocking() -> FormAnswer:
        resp = session.post(url, data=form, timeout=timeout_s)
        try:
            body = resp.json()
        except ValueError:
            body = {}
        return FormAnswer(resp.status_code, resp.headers, body if isinstance(body, dict) else {})

    return await in_thread(blocking)


def chunks(seq: Sequence[str], n: int) -> list[list[str]]:
    return [list(seq[i : i + n]) for i in range(0, len(seq), n)]


async def gather_all(coros: list[Awaitable[Any]]) -> None:
    """Run all; on the first failure cancel the rest and re-raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


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
class AppState:
    """Per-app knowledge shared by the app gateway and every user gateway built from it."""

    audio_features_available: bool | None = None
    batch_metadata_available: bool | None = None  # GET /albums?ids=, /artists?ids=
    mode: str | None = None


class SpotifyTransport:
    """One credential's (app token or a user's token) way to call the Web API."""

    def __init__(
        self,
        settings: Settings,
        *,
        access_token: str | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        refresh: Callable[[str], Awaitable[str | None]] | None = None,
        _state: AppState | None = None,
    ) -> None:
        self.settings = settings
        # User tokens: ``refresh(rejected)`` gives a new access token after a 401 (the linked
        # account's token was revoked or expired early); one refresh per call, then AuthError.
        self._refresh = refresh
        self.request_count = 0
        self._sleep = sleep or asyncio.sleep
        self._state = _state or AppState()
        self._user_token = access_token
        self._sem: asyncio.Semaphore | None = None
        self._count_lock = threading.Lock()
        self._ccm: _LockedClientCredentials | None = None
        self._session = new_session(settings)

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
            requests_session=self._session,
            requests_timeout=settings.spotify_timeout_s,
            retries=0,
            status_retries=0,
        )
        prefix = settings.spotify_api_base
        self._sp.prefix = prefix if prefix.endswith("/") else prefix + "/"

    @property
    def has_credentials(self) -> bool:
        return self._user_token is not None or self._ccm is not None

    @property
    def is_user(self) -> bool:
        return self._user_token is not None

    def close(self) -> None:
        self._session.close()

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
            raise HttpFailure(exc.http_status, exc.reason, str(exc.msg), exc.headers) from None

    async def _call(self, method: str, path: str, *, payload: Any = None, **params: Any) -> Any:
        """One API call with Spotify's rules applied; raises PipelineError or HttpFailure.

        HttpFailure is raised for 4xx statuses other than 401/429 so the caller can map them
        with the :class:`~.errors.Asked` that fits (403 on playlist items means something
        different from 403 on audio-features).
        """
        if not self.has_credentials:
            raise AppAuthError(NOT_CONFIGURED_MESSAGE)
        request = Request(Asked.API, path=path, method=method, as_user=self.is_user)
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
                    result = await in_thread(call)
                # spotipy returns None for a 2xx body that is not JSON; every GET of the Web
                # API answers an object or an array, so anything else is Spotify (or a proxy
                # in front of it) in trouble.
                if method == "GET" and not isinstance(result, dict | list):
                    if await retry_transient():
                        continue
                    raise garbled(request)
                return result
            except HttpFailure as exc:
                if exc.status == 429:
                    rate_limits += 1
                    await self._wait_or_raise(exc, request, rate_limits)
                    continue
                if exc.status == 401 and self._ccm is not None and not auth_retried:
                    auth_retried = True  # cached app token rejected: get a fresh one
                    self._ccm.forget_token()
                    continue
                if exc.status == 401 and self._refresh is not None and not auth_retried:
                    auth_retried = True  # the user's token rejected: refresh before giving up
                    if await self._use_refreshed_token():
                        continue
                if exc.status >= 500 and await retry_transient():
                    continue
                if exc.status == 401 or exc.status >= 500:
                    raise status_error(exc, request) from None
                raise
            except SpotifyOauthError as exc:
                error = getattr(exc, "error", None)
                refused = app_oauth_error(error)
                if refused is not None:
                    raise refused from None
                if await retry_transient():
                    continue
                raise sign_in_failed(error) from None
            except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
                if await retry_transient():
                    continue
                raise unreachable(request, exc) from None

    async def _use_refreshed_token(self) -> bool:
        """Swap in a refreshed user token; False when there is no new one."""
        assert self._refresh is not None and self._user_token is not None
        fresh = await self._refresh(self._user_token)  # RelinkRequired when the link is dead
        if not fresh or fresh == self._user_token:
            return False
        log.info("Spotify refused a user token (401): refreshed it and retrying")
        self._user_token = fresh
        self._sp.set_auth(fresh)
        return True

    async def _wait_or_raise(self, exc: HttpFailure, request: Request, attempt: int) -> None:
        """A 429: await a short Retry-After; a long one, a quota or a 4th in a row fails."""
        wait = retry_after_of(exc)
        if (
            exc.reason == "QUOTA_EXCEEDED"
            or wait > self.settings.spotify_max_retry_after_s
            or attempt > 3
        ):
            raise status_error(exc, request)
        log.info("Spotify 429: waiting %.1fs before retrying", wait)
        await self._sleep(wait)

    async def _get(self, path: str, **params: Any) -> Any:
        return await self._call("GET", path, **params)

    async def _paged(
        self,
        path: str,
        progress: ProgressCallback,
        *,
        on_error: Callable[[HttpFailure], PipelineError] | None = None,
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
            except HttpFailure as exc:
                if on_error is not None:
                    raise on_error(exc) from None
                raise

        first_page = first if first is not None else await page(0)
        total = int(first_page.get("total") or 0)
        wanted = total if limit_items is None else min(total, limit_items)
        pages: dict[int, list[Any]] = {0: conv(list(first_page.get("items") or []))}
        emit_page(pages[0])
        done = len(pages[0])
        await progress(Progress(stage="fetching", done=min(done, wanted), total=wanted))
        got_first = len(pages[0]) or PAGE_LIMIT
        offsets = list(range(got_first, wanted, PAGE_LIMIT))
        if offsets and rest_params is not None:
            params = rest_params(first_page)

        # This read's share of the gateway's slots: without it a 6,000-track playlist queued
        # its 119 pages at once ahead of every other job's (the slots are first come, first
        # served); each 1,000-track job submitted with it waited ~2 s more for its pages.
        share = asyncio.Semaphore(max(1, self.settings.spotify_concurrency))

        async def fetch_one(offset: int) -> None:
            nonlocal done
            async with share:
                data = await page(offset)
            pages[offset] = conv(list(data.get("items") or []))
            emit_page(pages[offset])
            done += len(pages[offset])
            await progress(Progress(stage="fetching", done=min(done, wanted), total=wanted))

        if offsets:
            await gather_all([fetch_one(o) for o in offsets])
        items = [it for off in sorted(pages) for it in pages[off]]
        if limit_items is not None:
            items = items[:limit_items]
        return items, total
