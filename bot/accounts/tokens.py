"""Linked accounts at rest: fresh access tokens on demand, link status, unlinking.

:meth:`LinkedTokens.access_token` refreshes a token about to expire, one refresh at a time per
user. A link that stopped working — ``invalid_grant`` (refresh token older than 6 months, or the
member removed the app) or tokens that can no longer be decrypted — is dropped and the member
left a relink notice (:meth:`storage.accounts.AccountStore.drop_account`); from then on they
are simply not linked (reads fall back to the app and public pages), and the notice tells them
once, privately, what happened and how to link again (:func:`relink_notice_text`, shown by the
Spotify cog on their next command). Tokens are stored Fernet-encrypted (:mod:`storage.accounts`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import MultiFernet

from bot.accounts.oauth import (
    CONSENT_LIFETIME,
    REFRESH_MARGIN_S,
    RELINK_HINT,
    SCOPES,
    TokenEndpoint,
)
from bot.config import Settings
from bot.models import PlaylistMeta
from bot.sources.spotify.errors import InvalidGrant
from storage.accounts import (
    AccountStore,
    LinkedAccount,
    RelinkNotice,
    UndecryptableTokens,
    load_cipher,
)
from storage.db import Database

log = logging.getLogger(__name__)


def parse_time(iso: str) -> datetime:
    dt = datetime.fromisoformat(iso)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


#: Why a link was dropped (``relink_notices.reason``).
EXPIRED = "expired"  # Spotify refused the refresh token: invalid_grant
UNREADABLE = "unreadable"  # the stored tokens can't be decrypted: the key changed


def relink_notice_text(notice: RelinkNotice, *, linking: bool = False) -> str:
    """What the member is told, once and privately, after their link was dropped (``linking``:
    as the opening of their ``/spotify link`` reply, without the advice to link again)."""
    when = parse_time(notice.created_at)
    stamp = f"<t:{int(when.timestamp())}:f>"
    if notice.reason == UNREADABLE:
        why = (
            f"your stored Spotify link couldn't be read any more on {stamp} (the bot's owner "
            "changed its token encryption key), so I removed it."
        )
    else:
        why = (
            f"Spotify stopped accepting your link on {stamp}, so I removed it. Spotify ends a "
            "link 6 months after you approve it, or at once when you remove the app at "
            "<https://www.spotify.com/account/apps/>."
        )
    if linking:
        return f"🔗 Your previous Spotify link ended: {why}"
    return (
        f"🔗 **Your Spotify account is no longer linked**: {why} Until you link again, your "
        "Liked Songs, 💚 marks and *Save as playlist* don't work and your playlists are read "
        f"as anyone's (public ones still work). {RELINK_HINT}"
    )


class LinkedTokens:
    """The stored links and their tokens. ``clock`` returns UNIX time (tests move it forward
    instead of sleeping)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        cipher: MultiFernet | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.store = AccountStore(db, cipher or load_cipher(settings))
        self.clock = clock
        self.oauth = TokenEndpoint(settings, clock)
        self.refresh_count = 0  # token refreshes performed (tests, diagnostics)
        self._locks: dict[int, asyncio.Lock] = {}
        # Per-user answers of GET /me/playlists (see AccountService.my_playlists); dropped
        # whenever the link changes.
        self._playlists: dict[int, tuple[float, list[PlaylistMeta]]] = {}

    async def close(self) -> None:
        self.oauth.close()

    def _forget(self, discord_user_id: int) -> None:
        self._playlists.pop(discord_user_id, None)

    async def access_token(
        self, discord_user_id: int, *, rejected: str | None = None
    ) -> str | None:
        """A valid access token for the user, refreshed if needed; None when not linked.

        ``rejected``: a token Spotify just answered 401 to (revoked or expired early): it is
        refreshed even though it has not reached its expiry time (unless another caller
        already replaced it). A dead refresh token (``invalid_grant``) drops the link and
        leaves the member a notice: None, as for a member who never linked.
        """
        account = await self._account(discord_user_id)
        if account is None:
            return None
        if not self._stale(account, rejected):
            return account.tokens.access
        lock = self._locks.setdefault(discord_user_id, asyncio.Lock())
        async with lock:
            # Another caller may have refreshed while we waited for the lock.
            account = await self._account(discord_user_id)
            if account is None:
                return None
            if not self._stale(account, rejected):
                return account.tokens.access
            try:
                tokens = await self.oauth.refresh(account.tokens)
            except InvalidGrant as exc:
                await self._drop(discord_user_id, EXPIRED)
                log.info(
                    "Spotify link of Discord user %s expired or was revoked (%s); the member "
                    "will be told on their next command",
                    discord_user_id,
                    exc.detail or exc.code,
                )
                return None
            self.refresh_count += 1
            await self.store.update_tokens(discord_user_id, tokens)
            return tokens.access

    def _stale(self, account: LinkedAccount, rejected: str | None) -> bool:
        expiring = account.tokens.expires_at - REFRESH_MARGIN_S <= self.clock()
        return expiring or (rejected is not None and account.tokens.access == rejected)

    async def refreshed_token(self, discord_user_id: int, rejected: str) -> str | None:
        """A new access token after Spotify answered 401 to ``rejected`` (see access_token)."""
        return await self.access_token(discord_user_id, rejected=rejected)

    async def _account(self, discord_user_id: int) -> LinkedAccount | None:
        """The member's link; None when not linked, or when its tokens can no longer be
        decrypted (the encryption key changed): then it is dropped with a notice."""
        try:
            return await self.store.get_account(discord_user_id)
        except UndecryptableTokens:
            await self._drop(discord_user_id, UNREADABLE)
            log.warning(
                "The stored Spotify link of Discord user %s can't be decrypted (was "
                "TOKEN_ENCRYPTION_KEY changed?); dropped it, the member will be told",
                discord_user_id,
            )
            return None

    async def _drop(self, discord_user_id: int, reason: str) -> None:
        await self.store.drop_account(discord_user_id, reason)
        self._forget(discord_user_id)

    async def take_relink_notice(self, discord_user_id: int) -> RelinkNotice | None:
        """The member's pending relink notice, now marked shown (None: nothing to tell).
        Whoever takes it tells the member privately, or gives it back with
        :meth:`return_relink_notice` when that failed."""
        return await self.store.claim_notice(discord_user_id)

    async def return_relink_notice(self, notice: RelinkNotice) -> None:
        await self.store.release_notice(notice)

    async def is_linked(self, discord_user_id: int) -> bool:
        """Whether the member has a stored link (no refresh, nothing decrypted)."""
        return await self.store.has_account(discord_user_id)

    async def status(self, discord_user_id: int) -> dict[str, Any] | None:
        """Link details (no secrets), None when not linked."""
        account = await self._account(discord_user_id)
        if account is None:
            return None
        remaining = account.tokens.expires_at - self.clock()
        linked_at = parse_time(account.linked_at)
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
        self._forget(discord_user_id)
        async with self._locks.setdefault(discord_user_id, asyncio.Lock()):
            removed = await self.store.delete_account(discord_user_id)
        if removed:
            log.info("Discord user %s unlinked their Spotify account", discord_user_id)
        return removed
