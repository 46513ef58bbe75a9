"""Spotify's accounts service for linking: PKCE, the authorize URL, the token endpoint.

The token endpoint (``POST /api/token``) goes through the Spotify transport's threads and
retry-free sessions (:func:`bot.sources.spotify.transport.post_form`) and its failures through
the one status mapper (:func:`bot.sources.spotify.errors.status_error`), like every other
Spotify call. No client secret is needed: PKCE.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from bot.config import Settings
from bot.errors import AppAuthError, SpotifyUnavailable
from bot.sources.spotify.errors import Asked, HttpFailure, Request, status_error, unreachable
from bot.sources.spotify.transport import new_session, post_form
from storage.accounts import TokenSet

# Minimal scopes; the README explains each one.
SCOPES: tuple[str, ...] = (
    "playlist-read-private",  # read your private playlists (and list them for autocomplete)
    "playlist-read-collaborative",  # read playlists you collaborate on
    "user-library-read",  # Liked Songs analysis and the 💚 marks
    "playlist-modify-private",  # "Save as playlist" (created private)
    "playlist-modify-public",  # required by Spotify for POST /me/playlists + adding items
)
SAVE_SCOPES = ("playlist-modify-private", "playlist-modify-public")

STATE_TTL = timedelta(minutes=10)
#: Used states are kept this long so a replay gets "already used" rather than "unknown".
STATE_RETENTION = timedelta(days=1)
#: Refresh an access token this many seconds before Spotify's expiry.
REFRESH_MARGIN_S = 120.0
#: Spotify refresh tokens stop working this long after consent.
CONSENT_LIFETIME = timedelta(days=182)
CALLBACK_PATH = "/spotify/callback"

RELINK_HINT = "Link it again with `/spotify link`."


def make_pkce_pair() -> tuple[str, str]:
    """A PKCE (RFC 7636) ``code_verifier`` and its S256 ``code_challenge``."""
    verifier = secrets.token_urlsafe(64)  # 86 chars from the unreserved set (43..128 allowed)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def redirect_uri_for(settings: Settings) -> str:
    """``SPOTIFY_REDIRECT_URI``, else ``PUBLIC_BASE_URL`` + callback path, else loopback."""
    if settings.spotify_redirect_uri:
        return settings.spotify_redirect_uri
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + CALLBACK_PATH
    return f"http://127.0.0.1:{settings.web_port}{CALLBACK_PATH}"


def uses_web_callback(settings: Settings) -> bool:
    """True when the bot's web server receives the redirect; False: users paste the URL."""
    return bool(settings.public_base_url)


def consent_error_message(error: str) -> str:
    if error == "access_denied":
        return (
            "You declined the Spotify authorization, so nothing was linked. Run "
            "`/spotify link` again if you change your mind."
        )
    return f"Spotify reported an error ({error}). Run `/spotify link` again."


def require_client_id(settings: Settings) -> str:
    if not settings.spotify_client_id:
        raise AppAuthError(
            "Spotify account linking is not set up on this bot: the owner must set "
            "SPOTIFY_CLIENT_ID (see the README, 'Linking Spotify accounts').",
            member_text="Spotify account linking isn't set up on this bot. You can still "
            "attach an Exportify CSV (https://exportify.net) of a playlist.",
        )
    return settings.spotify_client_id


class TokenEndpoint:
    """The accounts service: authorize URLs and ``POST /api/token`` (exchange, refresh)."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self._session: requests.Session | None = None

    @property
    def base(self) -> str:
        return self.settings.spotify_accounts_base.rstrip("/")

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.close()

    def authorize_url(self, *, challenge: str, state: str) -> str:
        query = urlencode(
            {
                "client_id": require_client_id(self.settings),
                "response_type": "code",
                "redirect_uri": redirect_uri_for(self.settings),
                "code_challenge_method": "S256",
                "code_challenge": challenge,
                "state": state,
                "scope": " ".join(SCOPES),
            }
        )
        return f"{self.base}/authorize?{query}"

    async def exchange(self, code: str, verifier: str) -> tuple[TokenSet, list[str]]:
        """Authorization code + PKCE verifier → tokens and the granted scopes."""
        data = await self._request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri_for(self.settings),
                "client_id": require_client_id(self.settings),
                "code_verifier": verifier,
            },
            Asked.TOKEN_EXCHANGE,
        )
        scopes = (data.get("scope") or " ".join(SCOPES)).split()
        return self._tokens_from(data, previous_refresh=None), scopes

    async def refresh(self, old: TokenSet) -> TokenSet:
        """New tokens; raises :class:`~bot.sources.spotify.errors.InvalidGrant` when dead."""
        data = await self._request(
            {
                "grant_type": "refresh_token",
                "refresh_token": old.refresh,
                "client_id": require_client_id(self.settings),
            },
            Asked.TOKEN_REFRESH,
        )
        # PKCE refresh tokens rotate: keep the new one when Spotify sends it.
        return self._tokens_from(data, previous_refresh=old.refresh)

    def _tokens_from(self, data: dict[str, Any], *, previous_refresh: str | None) -> TokenSet:
        access = data.get("access_token")
        refresh = data.get("refresh_token") or previous_refresh
        if not access or not refresh:
            raise SpotifyUnavailable(
                "Spotify's accounts service sent an incomplete answer. Try again in a minute.",
                detail="token response without access_token/refresh_token",
            )
        expires_in = float(data.get("expires_in") or 3600)
        return TokenSet(access=access, refresh=refresh, expires_at=self.clock() + expires_in)

    async def _request(self, form: dict[str, str], asked: Asked) -> dict[str, Any]:
        """POST /api/token; failures become typed errors (never carrying secrets)."""
        if self._session is None:
            self._session = new_session(self.settings)
        request = Request(asked, path="api/token", method="POST")
        try:
            answer = await post_form(
                self._session,
                f"{self.base}/api/token",
                form,
                timeout_s=self.settings.spotify_timeout_s,
            )
        except requests.exceptions.RequestException as exc:
            raise unreachable(request, exc) from None
        if answer.status == 200:
            return answer.body
        error = str(answer.body.get("error") or "") or None
        description = str(answer.body.get("error_description") or "")
        failure = HttpFailure(answer.status, error, description, answer.headers)
        raise status_error(failure, request)
