"""Using a linked account: Spotify as the Discord user (playlists, Liked Songs, 💚, saving).

Why: Development-Mode Spotify apps may only read playlists the *signed-in user* owns or
collaborates on. Linking lets each Discord user analyse their own playlists, Liked Songs, get
💚 marks, and save clusters as playlists in their account.
"""

from __future__ import annotations

import logging

from bot.accounts.link import LinkFlow
from bot.accounts.oauth import RELINK_HINT, SAVE_SCOPES
from bot.accounts.tokens import relink_notice_text
from bot.errors import LinkError, NotLinked, PipelineError, RelinkRequired
from bot.models import FetchResult, PlaylistMeta, ProgressCallback, no_progress
from bot.sources.spotify import SpotifyGateway, gateway_for_user

log = logging.getLogger(__name__)

#: ``my_playlists`` feeds autocomplete (a call per keystroke): answers are reused this long.
PLAYLISTS_CACHE_S = 120.0


class AccountService(LinkFlow):
    """Links Discord users to Spotify accounts (:class:`LinkFlow`), hands out fresh user
    access tokens (:class:`~bot.accounts.tokens.LinkedTokens`) and acts on Spotify as them."""

    async def gateway_for(self, discord_user_id: int) -> SpotifyGateway | None:
        """A Spotify gateway acting as this user; None when not linked."""
        return await gateway_for_user(
            discord_user_id, self.access_token, self.settings, app=self.app_gateway
        )

    async def _require_gateway(self, discord_user_id: int, why: str) -> SpotifyGateway:
        gateway = await self.gateway_for(discord_user_id)
        if gateway is None:
            # The link may have died just now (invalid_grant while refreshing): the member
            # asked for something that needs it, so this answer is where they learn why,
            # privately, instead of "link it" and the reason after their next slash command.
            notice = await self.take_relink_notice(discord_user_id)
            if notice is not None:
                raise RelinkRequired(relink_notice_text(notice))
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
            self._forget(discord_user_id)
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
        self._forget(discord_user_id)  # the new playlist should show up
        return meta
