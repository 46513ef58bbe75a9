"""Spotify's failures in the user's terms: the ONE place an HTTP status becomes a typed error.

Every Spotify answer that is not a success ends here, whoever asked: the Web API transport
(401/429/5xx/network after its retries), the endpoints (4xx, phrased for what was asked: a
playlist, the user's library, audio features …) and the accounts service (``/api/token`` and
the ``GET /me`` check after linking). :func:`status_error` branches on the status first, then on
:class:`Asked`; a new case is one branch (e.g. the 403 "Active premium subscription required
for the owner of the app", which applies to every call, before the per-request 403s of
:func:`_forbidden`).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

import requests

from bot.errors import (
    AppAuthError,
    AppSuspended,
    AuthError,
    EditorialPlaylist,
    LinkError,
    NotFound,
    NotOwner,
    PipelineError,
    QuotaExceeded,
    RateLimited,
    SpotifyUnavailable,
)
from bot.retry_after import parse_retry_after, wait_in_words
from bot.sources.links import SpotifyRef

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
NOT_CONFIGURED_MESSAGE = (
    "Spotify isn't set up on this bot, so it can't read playlists."
    " Attach an Exportify CSV (https://exportify.net) instead, or ask the bot owner."
)
APP_SUSPENDED_MESSAGE = (
    "The bot's Spotify app is suspended right now (Spotify requires its owner to keep an active "
    "Premium subscription), so the bot can't read Spotify for anyone until its owner renews it. "
    "Exportify CSVs (https://exportify.net) still work."
)
APP_CREDENTIALS_MESSAGE = (
    "Spotify rejected the bot's credentials. The bot owner needs to check "
    "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET."
)


log = logging.getLogger(__name__)
# Spotify's 403 message when the app owner's Premium has lapsed (it applies to every call).
_PREMIUM_LAPSED = "premium subscription required for the owner of the app"
# Spotify's 403 (a plain-text body, not a JSON error) to every call made with the token of a
# user who is not on a Development-Mode app's User Management list: never added, or taken off
# by the app's owner (at most 5 users) after they linked.
_NOT_REGISTERED = "user not registered in the developer dashboard"
NOT_REGISTERED_MESSAGE = (
    "Spotify no longer lets this bot use your linked account: the bot's Spotify app is in "
    "Development Mode, where its owner must list each member's Spotify account under *User "
    "Management* (at most 5 accounts), and yours isn't on that list any more. Ask the bot's "
    "owner to add it back (your Spotify name and e-mail); linking again won't help until then. "
    "Meanwhile public playlists are read from their public page, and an Exportify CSV "
    "(https://exportify.net) works for any playlist; `/spotify unlink` stops the bot trying "
    "your account."
)
_premium_reported = False


class HttpFailure(Exception):
    """A non-2xx answer from Spotify, before it is mapped (see :func:`status_error`).

    ``reason``: Web API ``error.reason`` (e.g. ``QUOTA_EXCEEDED``) or the accounts service's
    OAuth ``error`` (e.g. ``invalid_grant``); ``message``: the human text Spotify sent.
    """

    def __init__(self, status: int, reason: str | None, message: str, headers: Any) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers


class Asked(enum.Enum):
    """What the failed request was for: decides how a status is told to the user."""

    API = "api"  # any Web API call (transport-level statuses: 401, 429, 5xx)
    PLAYLIST = "playlist"  # a playlist's or album's metadata or entries (see ``Request.ref``)
    LIKED = "liked"  # GET /me/tracks
    MY_PLAYLISTS = "my_playlists"  # GET /me/playlists
    USER = "user"  # other calls with the user's token (/me, library, creating playlists)
    AUDIO_FEATURES = "audio_features"
    TOKEN_EXCHANGE = "token_exchange"  # accounts: authorization code → tokens
    TOKEN_REFRESH = "token_refresh"  # accounts: refresh token → tokens
    LINK_PROFILE = "link_profile"  # GET /me right after linking (the allow-list check)


@dataclass(frozen=True)
class Request:
    """The request behind a failure, as far as the message needs it."""

    asked: Asked
    path: str = ""
    method: str = "GET"
    ref: SpotifyRef | None = None
    items: bool = False  # the entries of a playlist (not its metadata)
    owner_id: str | None = None  # the playlist's owner, when already known
    as_user: bool = False  # made with a user's token (not the app's)


class NotRegistered(AuthError):
    """403 "User not registered in the Developer Dashboard" to a linked member's token: their
    Spotify account was taken off the app's User Management list after they linked. Relinking
    can't help (the ``GET /me`` after it gets the same 403); the app's owner must add it back."""

    code = "not_registered"


class InvalidGrant(PipelineError):
    """The refresh token is dead (expired or revoked): the account layer deletes the link."""

    code = "invalid_grant"


def status_error(failure: HttpFailure, request: Request) -> PipelineError:
    """The typed error (with its user message) for a failed Spotify request."""
    asked, status = request.asked, failure.status
    if asked in (Asked.TOKEN_EXCHANGE, Asked.TOKEN_REFRESH):
        return _token_error(failure, asked)
    if status == 429:
        return _rate_limited(failure)
    if status == 401:
        return _unauthorized(request)
    if status >= 500:
        return SpotifyUnavailable(
            "Spotify is having trouble right now (it answered with an error "
            f"{status}). Please try again in a few minutes.",
            detail=f"{request.method} {request.path}: {status}",
        )
    if status == 403 and _PREMIUM_LAPSED in (failure.message or "").lower():
        return _app_suspended(failure)
    if (
        status == 403
        and asked is not Asked.LINK_PROFILE  # linking: that check has its own message
        and _NOT_REGISTERED in (failure.message or "").lower()
    ):
        return NotRegistered(NOT_REGISTERED_MESSAGE, detail=f"403 {request.path}")
    if asked is Asked.PLAYLIST and request.owner_id == "spotify" and status in (403, 404):
        return EditorialPlaylist(EDITORIAL_MESSAGE)
    if status == 403:
        return _forbidden(failure, request)
    if asked is Asked.MY_PLAYLISTS:
        return _my_playlists_refused(failure)
    if asked is Asked.AUDIO_FEATURES:
        return SpotifyUnavailable("Spotify's audio features request failed.", detail=str(failure))
    if asked is Asked.PLAYLIST and request.ref is not None and status in (400, 404):
        ref = request.ref
        if status == 404:
            return NotFound(
                f"Spotify couldn't find that {ref.kind}. Check the link is complete; private "
                "playlists can only be read by their owner (after `/spotify link`).",
                detail=f"404 {ref.kind} {ref.id}",
            )
        return NotFound(
            f"Spotify didn't accept that {ref.kind} id. Check the link is complete.",
            detail=f"400 {ref.id}: {failure.message}",
        )
    if asked is Asked.USER:
        if status == 404:
            return NotFound("Spotify couldn't find that.", detail=f"404 {request.path}")
        return SpotifyUnavailable(
            "Spotify didn't accept that request. Please try again later.",
            detail=f"{status} {request.path}: {failure.message}",
        )
    return _unexpected(failure)


def _app_suspended(failure: HttpFailure) -> AppSuspended:
    """Premium lapsed: one ERROR line for the operator per process, then only the users hear."""
    global _premium_reported
    if not _premium_reported:
        _premium_reported = True
        log.error(
            "Spotify refuses every call: %r. The Spotify account that owns this app (the "
            "developer dashboard's owner) needs an active Premium subscription; reads fall back "
            "to public pages until then.",
            failure.message,
        )
    return AppSuspended(APP_SUSPENDED_MESSAGE, detail=f"403 {failure.message[:200]}")


def _forbidden(failure: HttpFailure, request: Request) -> PipelineError:
    """403: what Spotify refused depends on what was asked."""
    asked = request.asked
    if asked is Asked.PLAYLIST:
        ref = request.ref
        if ref is not None and (request.items or ref.kind == "playlist"):
            return NotOwner(NOT_OWNER_MESSAGE, detail=f"403 {ref.kind} {ref.id}")
        return _unexpected(failure)
    if asked is Asked.LIKED:
        return AuthError(
            "Spotify didn't let the bot read your Liked Songs. Link again with "
            "`/spotify link` and allow access to your library."
        )
    if asked is Asked.MY_PLAYLISTS:
        return _my_playlists_refused(failure)
    if asked is Asked.LINK_PROFILE:
        return LinkError(
            "Spotify accepted the login but refuses this bot access to your account. In "
            "Development Mode the bot owner must first add your Spotify account (name and "
            "e-mail) under *User Management* in the Spotify developer dashboard (at most 5 "
            "users). Ask them, then run `/spotify link` again."
        )
    if asked is Asked.USER:
        return AuthError(
            "Spotify refused that for your linked account (missing permission). Link "
            "again with `/spotify link` to grant it.",
            detail=f"403 {request.path}",
        )
    return _unexpected(failure)


def _my_playlists_refused(failure: HttpFailure) -> AuthError:
    return AuthError(
        "Spotify didn't let the bot list your playlists. Link again with `/spotify link`.",
        detail=f"{failure.status} me/playlists",
    )


def _unauthorized(request: Request) -> AuthError:
    if request.as_user:
        return AuthError(
            "Spotify didn't accept your linked account's sign-in. Try again; if it keeps "
            "happening, link your account again with `/spotify link`."
        )
    return AppAuthError(APP_CREDENTIALS_MESSAGE)


def retry_after_of(failure: HttpFailure) -> float:
    """The wait a 429 asks for (Web API: 1 s when unsaid; accounts service: 60 s)."""
    return parse_retry_after(failure.headers)


def quota_exceeded(wait: float) -> QuotaExceeded:
    """The app's quota is used up for ``wait`` more seconds (a 429 ``QUOTA_EXCEEDED``, or its
    window remembered by :func:`bot.sources.link_reader.read_link`)."""
    return QuotaExceeded(
        "The bot has used up its Spotify API quota for now; Spotify asked it to wait "
        f"{wait_in_words(wait)}. Please try again later, or attach an Exportify CSV "
        "(https://exportify.net), which needs no Spotify calls.",
        retry_after=wait,
    )


def _rate_limited(failure: HttpFailure) -> RateLimited:
    wait = retry_after_of(failure)
    if failure.reason == "QUOTA_EXCEEDED":
        return quota_exceeded(wait)
    return RateLimited(
        "Spotify is rate-limiting the bot right now and asked it to wait "
        f"{wait_in_words(wait)}. Please try again after that.",
        retry_after=wait,
    )


def _token_error(failure: HttpFailure, asked: Asked) -> PipelineError:
    """``POST /api/token`` refused (OAuth ``error`` in ``failure.reason``); never a secret."""
    status, error, description = failure.status, failure.reason or "", failure.message
    if error == "invalid_grant":
        if asked is Asked.TOKEN_REFRESH:
            return InvalidGrant("Your Spotify link has expired.", detail=description)
        return LinkError(
            "Spotify refused the authorization code (codes work once and only for a few "
            "minutes). Run `/spotify link` again.",
            detail=description,
        )
    if error in ("invalid_client", "unauthorized_client") or status == 401:
        return AppAuthError(
            "Spotify rejected this bot's client id. The bot owner should check "
            "SPOTIFY_CLIENT_ID and that the redirect URI is registered in the Spotify app.",
            detail=f"{error}: {description}",
        )
    if status == 429:
        return RateLimited(
            "Spotify is rate-limiting this bot right now. Try again later.",
            retry_after=parse_retry_after(failure.headers, default=60.0),
        )
    if status >= 500:
        return SpotifyUnavailable(
            "Spotify's accounts service is having trouble. Try again in a minute.",
            detail=f"HTTP {status}",
        )
    return LinkError(
        f"Spotify refused the request ({error or f'HTTP {status}'}). Run `/spotify link` again.",
        detail=description,
    )


def app_oauth_error(error: str | None) -> AuthError | None:
    """The app's client-credentials sign-in was refused for good (else None: transient)."""
    if error in ("invalid_client", "unauthorized_client"):
        return AppAuthError(
            "Spotify rejected the bot's app credentials. The bot owner needs to check "
            "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET.",
            detail=str(error),
        )
    return None


def garbled(request: Request) -> SpotifyUnavailable:
    """A 2xx answer to a GET whose body is not the JSON object or array every Web API GET
    returns (an HTML page from a proxy, a cut-off body), after the transport's retries."""
    return SpotifyUnavailable(
        "Spotify is having trouble right now (its answer wasn't readable). Please try again "
        "in a few minutes.",
        detail=f"{request.method} {request.path}: 2xx without a JSON object or array",
    )


def unreachable(request: Request, exc: BaseException) -> SpotifyUnavailable:
    """A timeout or connection failure (after the transport's retries)."""
    if request.asked in (Asked.TOKEN_EXCHANGE, Asked.TOKEN_REFRESH):
        return SpotifyUnavailable(
            "Couldn't reach Spotify's accounts service. Try again in a minute.",
            detail=type(exc).__name__,
        )
    what = "timed out" if _is_timeout(exc) else "failed"
    return SpotifyUnavailable(
        f"Spotify isn't responding right now (the connection {what}). "
        "Please try again in a few minutes.",
        detail=f"{request.method} {request.path}: {type(exc).__name__}",
    )


def sign_in_failed(error: str | None) -> SpotifyUnavailable:
    """The app's token request failed transiently (after retries)."""
    return SpotifyUnavailable(
        "Couldn't sign in to Spotify right now. Please try again in a few minutes.",
        detail=str(error or "oauth"),
    )


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.Timeout | TimeoutError)


def _unexpected(failure: HttpFailure) -> SpotifyUnavailable:
    """A status we have no specific story for (e.g. 400): say so plainly."""
    return SpotifyUnavailable(
        f"Spotify didn't accept the bot's request (error {failure.status}). Please try again "
        "later.",
        detail=f"{failure.status}: {failure.message[:200]}",
    )
