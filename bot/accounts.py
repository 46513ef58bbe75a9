"""Spotify account linking: OAuth Authorization Code with PKCE, tokens encrypted at rest.

Why: Development-Mode Spotify apps may only read playlists the *signed-in user* owns or
collaborates on. Linking lets each Discord user analyse their own playlists, Liked Songs, get
💚 marks, and save clusters as playlists in their account.

Flow (``/spotify link``):

1. :meth:`AccountService.start_link` makes a random ``state`` (bound to the Discord user, single
   use, valid :data:`STATE_TTL`) and a PKCE ``code_verifier`` (stored encrypted), and returns
   the authorize URL carrying ``code_challenge`` (S256) and ``state``.
2. Spotify redirects the browser to the redirect URI with ``?code=…&state=…``. Either the bot's
   web server receives it (:mod:`bot.web`, when ``PUBLIC_BASE_URL`` is set) and calls
   :meth:`complete_link`, or the user pastes the address-bar URL into a Discord modal
   (:meth:`complete_from_redirect`).
3. The code is exchanged with the verifier (no client secret needed: PKCE) for access +
   refresh tokens, which are stored Fernet-encrypted (:mod:`storage.accounts`).

:meth:`access_token` refreshes a token about to expire, one refresh at a time per user; an
``invalid_grant`` (refresh token older than 6 months, or access revoked) deletes the dead tokens
and raises :class:`bot.errors.RelinkRequired`.

The OAuth calls are plain aiohttp (async, with timeouts) rather than spotipy's synchronous
``SpotifyPKCE``, which would need a thread per call and caches tokens in clear-text files.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from bot.config import Settings
from bot.errors import (
    AuthError,
    PipelineError,
    RateLimited,
    RelinkRequired,
    SpotifyUnavailable,
)
from bot.models import FetchResult, PlaylistMeta, ProgressCallback, no_progress
from bot.retry_after import parse_retry_after
from storage.accounts import AccountStore, TokenSet, UndecryptableTokens, load_cipher
from storage.db import Database

if TYPE_CHECKING:
    from bot.sources.spotify import SpotifyGateway

log = logging.getLogger(__name__)

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
#: ``my_playlists`` feeds autocomplete (a call per keystroke): answers are reused this long.
PLAYLISTS_CACHE_S = 120.0

RELINK_HINT = "Link it again with `/spotify link`."


class LinkError(PipelineError):
    """A failed ``/spotify link`` step (bad/expired/replayed state, refused consent, bad code)."""

    code = "link"


class NotLinked(AuthError):
    """The user has no linked Spotify account but the action needs one."""

    code = "not_linked"


LinkListener = Callable[[int, dict[str, Any]], Awaitable[None]]


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


def _parse_time(iso: str) -> datetime:
    dt = datetime.fromisoformat(iso)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class AccountService:
    """Links Discord users to Spotify accounts and hands out fresh user access tokens.

    ``app_gateway``: the app's :class:`SpotifyGateway` (its ``with_user_token`` builds user
    gateways); without it one is constructed from ``settings``. ``clock`` returns UNIX time
    (tests move it forward instead of sleeping).
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        app_gateway: SpotifyGateway | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.store = AccountStore(db, load_cipher(settings))
        self.app_gateway = app_gateway
        self.clock = clock
        self.refresh_count = 0  # token refreshes performed (tests, diagnostics)
        self._locks: dict[int, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None
        self._listeners: list[LinkListener] = []
        self._playlists: dict[int, tuple[float, list[PlaylistMeta]]] = {}

    # --- plumbing -------------------------------------------------------------------------
    @property
    def redirect_uri(self) -> str:
        return redirect_uri_for(self.settings)

    @property
    def web_callback(self) -> bool:
        return uses_web_callback(self.settings)

    @property
    def _accounts_base(self) -> str:
        return self.settings.spotify_accounts_base.rstrip("/")

    def _session_get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.spotify_timeout_s)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def add_link_listener(self, listener: LinkListener) -> None:
        """``await listener(discord_user_id, status)`` after every successful link."""
        self._listeners.append(listener)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _require_client_id(self) -> str:
        if not self.settings.spotify_client_id:
            raise AuthError(
                "Spotify account linking is not set up on this bot: the owner must set "
                "SPOTIFY_CLIENT_ID (see the README, 'Linking Spotify accounts')."
            )
        return self.settings.spotify_client_id

    # --- linking ----------------------------------------------------------------------------
    async def start_link(self, discord_user_id: int) -> str:
        """A fresh authorize URL for this Discord user (PKCE S256, random single-use state)."""
        client_id = self._require_client_id()
        await self.store.purge_states(STATE_RETENTION)
        verifier, challenge = make_pkce_pair()
        state = secrets.token_urlsafe(32)
        await self.store.add_state(state, discord_user_id, verifier)
        query = urlencode(
            {
                "client_id": client_id,
                "response_type": "code",
                "redirect_uri": self.redirect_uri,
                "code_challenge_method": "S256",
                "code_challenge": challenge,
                "state": state,
                "scope": " ".join(SCOPES),
            }
        )
        return f"{self._accounts_base}/authorize?{query}"

    async def complete_link(
        self, state: str, code: str, *, expected_user: int | None = None
    ) -> dict[str, Any]:
        """Finish a link: check + consume ``state``, exchange ``code``, store the tokens.

        ``expected_user``: when the redirect came through a Discord modal, the user who
        pasted it; a state started by someone else is refused (and left unused).
        """
        client_id = self._require_client_id()
        try:
            pending = await self.store.get_state(state)
        except UndecryptableTokens:
            pending = None
        if pending is None:
            raise LinkError(
                "This authorization link is unknown or too old. Run `/spotify link` again "
                "and use the new link."
            )
        if expected_user is not None and pending.discord_user_id != expected_user:
            raise LinkError(
                "That authorization was started by another Discord user. Run `/spotify link` "
                "yourself and paste the URL you are sent to."
            )
        if pending.used_at is not None:
            raise LinkError(
                "This authorization link was already used. Run `/spotify link` again for a new one."
            )
        if self._now() - _parse_time(pending.created_at) > STATE_TTL:
            raise LinkError(
                f"This authorization link expired (links are valid for "
                f"{int(STATE_TTL.total_seconds() // 60)} minutes). Run `/spotify link` again."
            )
        if not await self.store.mark_state_used(state):
            raise LinkError(
                "This authorization link was already used. Run `/spotify link` again for a new one."
            )
        data = await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "client_id": client_id,
                "code_verifier": pending.verifier,
            },
            purpose="exchange",
        )
        tokens = self._tokens_from(data, previous_refresh=None)
        scopes = (data.get("scope") or " ".join(SCOPES)).split()
        profile = await self._profile(tokens.access)
        await self.store.save_account(
            pending.discord_user_id,
            spotify_user_id=profile.get("id"),
            display_name=profile.get("display_name") or profile.get("id"),
            tokens=tokens,
            scopes=scopes,
        )
        log.info("Discord user %s linked a Spotify account", pending.discord_user_id)
        info = await self.status(pending.discord_user_id) or {}
        info["discord_user_id"] = pending.discord_user_id
        for listener in list(self._listeners):
            try:
                await listener(pending.discord_user_id, info)
            except Exception:
                log.exception("link listener failed")
        return info

    async def complete_from_redirect(self, discord_user_id: int, url: str) -> dict[str, Any]:
        """Finish a link from the redirected URL a user pasted (loopback redirect mode)."""
        text = url.strip().strip("<>")
        query = urlsplit(text).query if "?" in text else text
        params = {k: v[0] for k, v in parse_qs(query).items() if v}
        if "error" in params:
            raise LinkError(consent_error_message(params["error"]))
        if "code" not in params or "state" not in params:
            raise LinkError(
                "That doesn't look like the address Spotify sent you to. After approving, copy "
                f"the whole URL from the browser's address bar (it starts with "
                f"`{self.redirect_uri}?code=`) and paste it here."
            )
        return await self.complete_link(
            params["state"], params["code"], expected_user=discord_user_id
        )

    # --- tokens -----------------------------------------------------------------------------
    async def access_token(self, discord_user_id: int) -> str | None:
        """A valid access token for the user, refreshed if needed; None when not linked.

        Raises RelinkRequired when the refresh token is dead (tokens are then deleted).
        """
        account = await self._account(discord_user_id)
        if account is None:
            return None
        if account.tokens.expires_at - REFRESH_MARGIN_S > self.clock():
            return account.tokens.access
        lock = self._locks.setdefault(discord_user_id, asyncio.Lock())
        async with lock:
            # Another caller may have refreshed while we waited for the lock.
            account = await self._account(discord_user_id)
            if account is None:
                return None
            if account.tokens.expires_at - REFRESH_MARGIN_S > self.clock():
                return account.tokens.access
            tokens = await self._refresh(discord_user_id, account.tokens)
            await self.store.update_tokens(discord_user_id, tokens)
            return tokens.access

    async def _refresh(self, discord_user_id: int, old: TokenSet) -> TokenSet:
        try:
            data = await self._token_request(
                {
                    "grant_type": "refresh_token",
                    "refresh_token": old.refresh,
                    "client_id": self._require_client_id(),
                },
                purpose="refresh",
            )
        except _InvalidGrant as exc:
            await self.store.delete_account(discord_user_id)
            self._playlists.pop(discord_user_id, None)
            log.info("Spotify link of Discord user %s expired or was revoked", discord_user_id)
            raise RelinkRequired(
                "Your Spotify link has expired or was revoked (Spotify ends links 6 months "
                f"after you approve them). {RELINK_HINT}",
                detail=exc.description,
            ) from None
        self.refresh_count += 1
        # PKCE refresh tokens rotate: keep the new one when Spotify sends it.
        return self._tokens_from(data, previous_refresh=old.refresh)

    async def _account(self, discord_user_id: int):
        try:
            return await self.store.get_account(discord_user_id)
        except UndecryptableTokens:
            await self.store.delete_account(discord_user_id)
            self._playlists.pop(discord_user_id, None)
            raise RelinkRequired(
                "Your stored Spotify link can no longer be read (the bot's token encryption "
                f"key changed). {RELINK_HINT}"
            ) from None

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

    async def _token_request(self, form: dict[str, str], *, purpose: str) -> dict[str, Any]:
        """POST /api/token; maps failures to user-facing errors (never includes secrets)."""
        url = f"{self._accounts_base}/api/token"
        try:
            async with self._session_get().post(url, data=form) as resp:
                status = resp.status
                headers = resp.headers
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = {}
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SpotifyUnavailable(
                "Couldn't reach Spotify's accounts service. Try again in a minute.",
                detail=type(exc).__name__,
            ) from None
        body = body if isinstance(body, dict) else {}
        if status == 200:
            return body
        error = str(body.get("error") or "")
        description = str(body.get("error_description") or "")
        if error == "invalid_grant":
            if purpose == "refresh":
                raise _InvalidGrant(description)
            raise LinkError(
                "Spotify refused the authorization code (codes work once and only for a few "
                "minutes). Run `/spotify link` again.",
                detail=description,
            )
        if error in ("invalid_client", "unauthorized_client") or status == 401:
            raise AuthError(
                "Spotify rejected this bot's client id. The bot owner should check "
                "SPOTIFY_CLIENT_ID and that the redirect URI is registered in the Spotify app.",
                detail=f"{error}: {description}",
            )
        if status == 429:
            wait = parse_retry_after(headers, default=60.0)
            raise RateLimited(
                "Spotify is rate-limiting this bot right now. Try again later.",
                retry_after=wait,
            )
        if status >= 500:
            raise SpotifyUnavailable(
                "Spotify's accounts service is having trouble. Try again in a minute.",
                detail=f"HTTP {status}",
            )
        raise LinkError(
            f"Spotify refused the request ({error or f'HTTP {status}'}). "
            "Run `/spotify link` again.",
            detail=description,
        )

    async def _profile(self, access: str) -> dict[str, Any]:
        """GET /me with the new token: display name, and the dev-mode allow-list check."""
        url = self.settings.spotify_api_base.rstrip("/") + "/me"
        try:
            async with self._session_get().get(
                url, headers={"Authorization": f"Bearer {access}"}
            ) as resp:
                status = resp.status
                body = await resp.json(content_type=None) if status == 200 else None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            log.warning("GET /me failed after linking; storing the link without a name")
            return {}
        if status == 403:
            raise LinkError(
                "Spotify accepted the login but refuses this bot access to your account. In "
                "Development Mode the bot owner must first add your Spotify account (name and "
                "e-mail) under *User Management* in the Spotify developer dashboard (at most 5 "
                "users). Ask them, then run `/spotify link` again."
            )
        return body if isinstance(body, dict) else {}

    # --- status / unlink ----------------------------------------------------------------
    async def status(self, discord_user_id: int) -> dict[str, Any] | None:
        """Link details (no secrets), None when not linked."""
        account = await self._account(discord_user_id)
        if account is None:
            return None
        remaining = account.tokens.expires_at - self.clock()
        linked_at = _parse_time(account.linked_at)
        return {
            "spotify_user_id": account.spotify_user_id,
            "display_name": account.display_name,
            "linked_at": account.linked_at,
            "updated_at": account.updated_at,
            "scopes": list(account.scopes),
            "missing_scopes": [s for s in SCOPES if s not in account.scopes],
            "token_state": "valid" if remaining > REFRESH_MARGIN_S else "expired",
            "token_expires_in_s": max(0, int(remaining)),
            "consent_expires_at": (linked_at + CONSENT_LIFETIME).isoformat(timespec="seconds"),
        }

    async def unlink(self, discord_user_id: int) -> bool:
        """Delete the user's stored tokens. True if there was a link."""
        self._playlists.pop(discord_user_id, None)
        async with self._locks.setdefault(discord_user_id, asyncio.Lock()):
            removed = await self.store.delete_account(discord_user_id)
        if removed:
            log.info("Discord user %s unlinked their Spotify account", discord_user_id)
        return removed

    # --- using the link -----------------------------------------------------------------
    async def gateway_for(self, discord_user_id: int) -> SpotifyGateway | None:
        """A Spotify gateway acting as this user; None when not linked."""
        token = await self.access_token(discord_user_id)
        if token is None:
            return None
        from bot.sources.spotify import user_gateway

        return user_gateway(self.settings, token, app=self.app_gateway)

    async def _require_gateway(self, discord_user_id: int, why: str) -> SpotifyGateway:
        gateway = await self.gateway_for(discord_user_id)
        if gateway is None:
            raise NotLinked(f"{why} needs your Spotify account: link it with `/spotify link`.")
        return gateway

    async def my_playlists(
        self, discord_user_id: int, *, fresh: bool = False
    ) -> list[PlaylistMeta]:
        """The user's own and followed playlists; [] when not linked.

        Autocomplete calls this on every keystroke, so answers are cached per user for
        :data:`PLAYLISTS_CACHE_S` (``fresh=True`` bypasses the cache).
        """
        cached = self._playlists.get(discord_user_id)
        if cached is not None and not fresh and self.clock() - cached[0] < PLAYLISTS_CACHE_S:
            return list(cached[1])
        gateway = await self.gateway_for(discord_user_id)
        if gateway is None:
            self._playlists.pop(discord_user_id, None)
            return []
        try:
            playlists = await gateway.my_playlists()
        finally:
            gateway.close()
        self._playlists[discord_user_id] = (self.clock(), playlists)
        return list(playlists)

    async def fetch_liked(
        self,
        discord_user_id: int,
        progress: ProgressCallback = no_progress,
        *,
        max_tracks: int | None = None,
    ) -> FetchResult:
        """The user's Liked Songs (GET /me/tracks)."""
        gateway = await self._require_gateway(discord_user_id, "Analysing your Liked Songs")
        try:
            return await gateway.fetch_liked(progress, max_tracks=max_tracks)
        finally:
            gateway.close()

    async def liked_among(
        self, discord_user_id: int, track_ids: list[str], *, strict: bool = False
    ) -> set[str]:
        """Which of ``track_ids`` the user saved (💚), ≤40 URIs per request. Empty when not
        linked. The marks are decoration: failures are logged and give an empty set unless
        ``strict``."""
        unique = list(dict.fromkeys(t for t in track_ids if t))
        if not unique:
            return set()
        try:
            gateway = await self.gateway_for(discord_user_id)
            if gateway is None:
                return set()
            try:
                return set(await gateway.library_contains(unique))
            finally:
                gateway.close()
        except PipelineError as exc:
            if strict:
                raise
            log.warning("Liked-songs check failed for a user: %s", exc.code)
            return set()

    async def save_cluster(
        self, discord_user_id: int, name: str, description: str, track_ids: list[str]
    ) -> PlaylistMeta:
        """Create a private playlist from a cluster in the clicking user's account
        (POST /me/playlists, then the tracks in batches of 100)."""
        account = await self._account(discord_user_id)
        if account is not None and not any(s in account.scopes for s in SAVE_SCOPES):
            raise RelinkRequired(
                "Your Spotify link predates playlist saving and lacks permission to create "
                f"playlists. {RELINK_HINT}"
            )
        ids = list(dict.fromkeys(t for t in track_ids if t))
        if not ids:
            raise LinkError("This cluster has no Spotify tracks to save.")
        gateway = await self._require_gateway(discord_user_id, "Saving a cluster as a playlist")
        try:
            meta = await gateway.create_playlist(name[:100], description[:300], ids)
        finally:
            gateway.close()
        self._playlists.pop(discord_user_id, None)  # the new playlist should show up
        return meta


class _InvalidGrant(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def consent_error_message(error: str) -> str:
    if error == "access_denied":
        return (
            "You declined the Spotify authorization, so nothing was linked. Run "
            "`/spotify link` again if you change your mind."
        )
    return f"Spotify reported an error ({error}). Run `/spotify link` again."
