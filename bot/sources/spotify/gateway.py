"""The bot's Spotify gateway: the catalogue reads plus what a linked user's token allows
(Liked Songs, their playlists, 💚 checks, saving playlists), and the one factory for a
gateway acting as a user (:func:`user_gateway`), reached from a Discord user id through
:func:`gateway_for_user`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.config import Settings
from bot.errors import AuthError
from bot.models import FetchResult, PlaylistMeta, ProgressCallback, no_progress
from bot.sources.normalise import first_of_each
from bot.sources.spotify import parse
from bot.sources.spotify.catalog import CatalogReads
from bot.sources.spotify.errors import Asked, HttpFailure, Request, status_error
from bot.sources.spotify.transport import chunks, gather_all

LIBRARY_CONTAINS_BATCH = 40
ADD_ITEMS_BATCH = 100

#: ``discord_user_id -> access token`` of their linked Spotify account, or None (not linked).
UserTokens = Callable[[int], Awaitable[str | None]]


class SpotifyGateway(CatalogReads):
    """Async façade over spotipy, one per credential (app token or a user's token)."""

    def with_user_token(
        self, access_token: str, *, refresh: Callable[[str], Awaitable[str | None]] | None = None
    ) -> SpotifyGateway:
        """Same settings and app knowledge, acting as the user who owns ``access_token``
        (``refresh(rejected)``: a new token after a 401, see SpotifyTransport)."""
        return SpotifyGateway(
            self.settings,
            access_token=access_token,
            sleep=self._sleep,
            refresh=refresh,
            _state=self._state,
        )

    # -- user endpoints --------------------------------------------------------------------------

    def _require_user(self, what: str) -> None:
        if not self.is_user:
            raise AuthError(f"{what} needs a linked Spotify account: use `/spotify link` first.")

    async def _user_call(
        self, method: str, path: str, *, asked: Asked = Asked.USER, **kw: Any
    ) -> Any:
        try:
            return await self._call(method, path, **kw)
        except HttpFailure as exc:
            raise status_error(exc, Request(asked, path=path, method=method)) from None

    async def current_user(self, *, asked: Asked = Asked.USER) -> dict:
        """``GET /me`` (user token). ``asked=Asked.LINK_PROFILE`` right after linking, where a
        403 means the account is not on the app's allow-list."""
        self._require_user("Reading your Spotify profile")
        return await self._user_call("GET", "me", asked=asked)

    async def fetch_liked(
        self, progress: ProgressCallback = no_progress, *, max_tracks: int | None = None
    ) -> FetchResult:
        """The user's Liked Songs, newest first (capped at ``max_tracks``; the rest skipped)."""
        self._require_user("Analysing your Liked Songs")
        me = await self.current_user()
        limit = max_tracks if max_tracks is not None else self.settings.max_playlist_tracks
        parsed, total = await self._paged(
            "me/tracks",
            progress,
            on_error=lambda exc: status_error(exc, Request(Asked.LIKED, path="me/tracks")),
            limit_items=limit or None,
            convert=parse.page_tracks,
        )
        tracks, skipped = first_of_each(parsed)
        if limit and total > limit:
            skipped["over_limit"] = total - limit
        return await self._result(parse.liked_meta(me, total), tracks, skipped)

    async def my_playlists(self) -> list[PlaylistMeta]:
        """Every playlist the user owns or follows (``GET /me/playlists``, all pages)."""
        self._require_user("Listing your playlists")
        try:
            items, _ = await self._paged("me/playlists", no_progress)
        except HttpFailure as exc:
            raise status_error(exc, Request(Asked.MY_PLAYLISTS, path="me/playlists")) from None
        return [parse.playlist_meta(p, p["id"]) for p in items if p]

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

        await gather_all([one(c) for c in chunks(unique, LIBRARY_CONTAINS_BATCH)])
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
        for chunk in chunks(ids, ADD_ITEMS_BATCH):
            res = await self._user_call(
                "POST",
                f"playlists/{pid}/items",
                payload={"uris": [f"spotify:track:{t}" for t in chunk]},
            )
            snapshot = (res or {}).get("snapshot_id", snapshot)
        return parse.created_playlist_meta(
            data, name=name, description=description, snapshot=snapshot, total=len(ids)
        )


def user_gateway(
    settings: Settings,
    access_token: str,
    *,
    app: SpotifyGateway | None = None,
    refresh: Callable[[str], Awaitable[str | None]] | None = None,
) -> SpotifyGateway:
    """A gateway acting as the user who owns ``access_token``: built from the app's gateway
    when there is one (sharing what it learnt about the app's access), else from settings."""
    if app is not None:
        if refresh is None:
            return app.with_user_token(access_token)
        return app.with_user_token(access_token, refresh=refresh)
    return SpotifyGateway(settings, access_token=access_token, refresh=refresh)


async def gateway_for_user(
    user_id: int,
    tokens: UserTokens,
    settings: Settings,
    *,
    app: SpotifyGateway | None = None,
    refresh_token: Callable[[int, str], Awaitable[str | None]] | None = None,
) -> SpotifyGateway | None:
    """The one path from a Discord user id to a gateway acting as their linked account: their
    fresh access token from ``tokens`` (None: not linked, so None here too), then
    :func:`user_gateway`. The pipeline (``ctx.user_tokens``) and
    :meth:`bot.accounts.AccountService.gateway_for` both come through here; the caller closes
    the gateway. ``refresh_token(user_id, rejected)``: a new token after a 401."""
    token = await tokens(user_id)
    if not token:
        return None
    refresh = None
    if refresh_token is not None:
        renew = refresh_token

        async def refresh(rejected: str) -> str | None:
            return await renew(user_id, rejected)

    return user_gateway(settings, token, app=app, refresh=refresh)
