"""The ``/spotify link`` flow: OAuth Authorization Code with PKCE.

1. :meth:`LinkFlow.start_link` makes a random ``state`` (bound to the Discord user, single use,
   valid :data:`~bot.accounts.oauth.STATE_TTL`) and a PKCE ``code_verifier`` (stored
   encrypted), and returns the authorize URL carrying ``code_challenge`` (S256) and ``state``.
2. Spotify redirects the browser to the redirect URI with ``?code=…&state=…``. Either the bot's
   web server receives it (:mod:`bot.web`, when ``PUBLIC_BASE_URL`` is set) and calls
   :meth:`complete_link`, or the user pastes the address-bar URL into a Discord modal
   (:meth:`complete_from_redirect`).
3. The code is exchanged with the verifier for access + refresh tokens, which are stored
   Fernet-encrypted (:mod:`storage.accounts`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.fernet import MultiFernet

from bot.accounts.oauth import (
    STATE_RETENTION,
    STATE_TTL,
    consent_error_message,
    make_pkce_pair,
    redirect_uri_for,
    require_client_id,
    uses_web_callback,
)
from bot.accounts.tokens import LinkedTokens, parse_time
from bot.config import Settings
from bot.errors import LinkError, PipelineError
from bot.sources.spotify import SpotifyGateway, user_gateway
from bot.sources.spotify.errors import Asked
from storage.accounts import UndecryptableTokens
from storage.db import Database

log = logging.getLogger(__name__)

LinkListener = Callable[[int, dict[str, Any]], Awaitable[None]]


class LinkFlow(LinkedTokens):
    """Starts and completes links. ``app_gateway``: the app's :class:`SpotifyGateway` (user
    gateways are built from it, sharing what it learnt); without it one is built from
    ``settings`` when needed. ``cipher``: the key for tokens at rest (default: loaded from
    ``settings``, :func:`storage.accounts.load_cipher`)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        app_gateway: SpotifyGateway | None = None,
        clock: Callable[[], float] = time.time,
        cipher: MultiFernet | None = None,
    ) -> None:
        super().__init__(db, settings, clock=clock, cipher=cipher)
        self.app_gateway = app_gateway
        self._listeners: list[LinkListener] = []

    @property
    def redirect_uri(self) -> str:
        return redirect_uri_for(self.settings)

    @property
    def web_callback(self) -> bool:
        return uses_web_callback(self.settings)

    def add_link_listener(self, listener: LinkListener) -> None:
        """``await listener(discord_user_id, status)`` after every successful link."""
        self._listeners.append(listener)

    def user_gateway(self, access_token: str) -> SpotifyGateway:
        """A gateway acting as the owner of ``access_token`` (caller closes it)."""
        return user_gateway(self.settings, access_token, app=self.app_gateway)

    async def start_link(self, discord_user_id: int) -> str:
        """A fresh authorize URL for this Discord user (PKCE S256, random single-use state)."""
        require_client_id(self.settings)
        await self.store.purge_states(STATE_RETENTION)
        verifier, challenge = make_pkce_pair()
        state = secrets.token_urlsafe(32)
        await self.store.add_state(state, discord_user_id, verifier)
        return self.oauth.authorize_url(challenge=challenge, state=state)

    async def complete_link(
        self, state: str, code: str, *, expected_user: int | None = None
    ) -> dict[str, Any]:
        """Finish a link: check + consume ``state``, exchange ``code``, store the tokens.

        ``expected_user``: when the redirect came through a Discord modal, the user who
        pasted it; a state started by someone else is refused (and left unused).
        """
        require_client_id(self.settings)
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
        if self._now() - parse_time(pending.created_at) > STATE_TTL:
            raise LinkError(
                f"This authorization link expired (links are valid for "
                f"{int(STATE_TTL.total_seconds() // 60)} minutes). Run `/spotify link` again."
            )
        if not await self.store.mark_state_used(state):
            raise LinkError(
                "This authorization link was already used. Run `/spotify link` again for a new one."
            )
        tokens, scopes = await self.oauth.exchange(code, pending.verifier)
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

    async def _profile(self, access: str) -> dict[str, Any]:
        """GET /me with the new token: display name, and the dev-mode allow-list check (403:
        LinkError). Any other failure stores the link without a name."""
        gateway = self.user_gateway(access)
        try:
            profile = await gateway.current_user(asked=Asked.LINK_PROFILE)
        except LinkError:
            raise
        except PipelineError as exc:
            log.warning(
                "GET /me failed after linking (%s); storing the link without a name", exc.code
            )
            return {}
        finally:
            gateway.close()
        return profile if isinstance(profile, dict) else {}

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)
