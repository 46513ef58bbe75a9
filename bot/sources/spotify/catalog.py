"""Reading Spotify's catalogue: playlists, albums, their entries, audio features, enrichment.

Development vs Extended quota mode: ``audio-features`` and the batch ``/albums`` ``/artists``
endpoints are tried once; after a 403 they are never called again (state shared by every
gateway built from the same app via :meth:`SpotifyGateway.with_user_token`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from bot.errors import EditorialPlaylist, PipelineError
from bot.models import FetchResult, PlaylistMeta, ProgressCallback, Track, no_progress
from bot.sources.links import SpotifyRef
from bot.sources.normalise import check_not_empty, check_total, first_of_each
from bot.sources.spotify import parse
from bot.sources.spotify.errors import EDITORIAL_MESSAGE, Asked, HttpFailure, Request, status_error
from bot.sources.spotify.transport import SpotifyTransport, chunks, gather_all

log = logging.getLogger(__name__)

AUDIO_FEATURES_BATCH = 100
ALBUMS_BATCH = 20
ARTISTS_BATCH = 50
EDITORIAL_PREFIX = "37i9dQZF1"
# Well-known track used to probe whether the app still has audio-features (detect_mode).
PROBE_TRACK_ID = "4uLU6hMCjMI75M1A2tKUQC"


class FeaturesUnavailable(Exception):
    """The app has no access to Spotify's audio-features (403 once; never asked again)."""


def playlist_error(
    exc: HttpFailure, ref: SpotifyRef, *, items: bool = False, owner_id: str | None = None
) -> PipelineError:
    """A failed read of a playlist/album (its metadata, or with ``items`` its entries)."""
    return status_error(
        exc, Request(Asked.PLAYLIST, path=ref.id, ref=ref, items=items, owner_id=owner_id)
    )


class CatalogReads(SpotifyTransport):
    """The catalogue endpoints, on top of :class:`SpotifyTransport`'s calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._albums: dict[str, dict] = {}

    @property
    def audio_features_available(self) -> bool | None:
        return self._state.audio_features_available

    @audio_features_available.setter
    def audio_features_available(self, value: bool | None) -> None:
        self._state.audio_features_available = value

    # -- playlists / albums ------------------------------------------------------------------

    async def get_meta(self, ref: SpotifyRef) -> PlaylistMeta:
        """Playlist/album metadata in one request (entries excluded); ``total`` set."""
        if ref.kind == "album":
            return await self._album_meta(ref.id)
        if ref.id.startswith(EDITORIAL_PREFIX):
            raise EditorialPlaylist(EDITORIAL_MESSAGE)
        try:
            data = await self._get(f"playlists/{ref.id}", fields=parse.META_FIELDS)
        except HttpFailure as exc:
            raise playlist_error(exc, ref) from None
        return parse.playlist_meta(data, ref.id)

    async def _album_meta(self, album_id: str) -> PlaylistMeta:
        ref = SpotifyRef("album", album_id)
        try:
            data = await self._get(f"albums/{album_id}")
        except HttpFailure as exc:
            raise playlist_error(exc, ref) from None
        self._albums[album_id] = data  # reused by fetch_tracks (its first 50 tracks)
        while len(self._albums) > 32:  # get_meta without fetch_tracks (reused snapshot)
            self._albums.pop(next(iter(self._albums)))
        return parse.album_meta(data, album_id)

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
        if limit:
            check_total(meta, limit)
        return await self.fetch_tracks(ref, meta, progress)

    async def fetch_tracks(
        self, ref: SpotifyRef, meta: PlaylistMeta, progress: ProgressCallback = no_progress
    ) -> FetchResult:
        """Every entry of the playlist/album; first page, then the rest concurrently."""
        if ref.kind == "album":
            entries, total = await self._album_entries(ref, progress)
            tracks, skipped = self._parse_entries(entries)
        else:
            parsed, total = await self._paged(
                f"playlists/{ref.id}/items",
                progress,
                on_error=lambda exc: playlist_error(exc, ref, items=True, owner_id=meta.owner_id),
                fields=parse.ITEMS_FIELDS,
                rest_params=parse.rest_item_fields,
                convert=parse.page_tracks,
            )
            tracks, skipped = first_of_each(parsed)
        if meta.total is None:
            meta.total = total
        return await self._result(meta, tracks, skipped)

    async def _result(
        self, meta: PlaylistMeta, tracks: list[Track], skipped: dict[str, int]
    ) -> FetchResult:
        """EmptyPlaylist when nothing is playable, else the enriched FetchResult."""
        check_not_empty(meta, tracks, skipped)  # before enriching: no requests for nothing
        await self._enrich(tracks)
        return FetchResult(meta=meta, tracks=tracks, skipped=skipped)

    async def _album_entries(
        self, ref: SpotifyRef, progress: ProgressCallback
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
            on_error=lambda exc: playlist_error(exc, ref),
            first=first,
        )
        self._albums.pop(ref.id, None)
        return parse.album_entries(album, raw), total

    @staticmethod
    def _parse_entries(entries: Iterable[Any]) -> tuple[list[Track], dict[str, int]]:
        """Playable tracks in order, plus counts of what was skipped and why."""
        return first_of_each(parse.page_tracks(list(entries)))

    # -- extended-mode enrichment --------------------------------------------------------------

    async def _enrich(self, tracks: list[Track]) -> None:
        """Labels and artist genres, only for apps that still have the batch endpoints."""
        if not tracks or all(t.popularity is None for t in tracks):
            return  # Development Mode data: the batch endpoints are 403 too
        if self._state.batch_metadata_available is False:
            return
        # Both finish (no request left running in the background) before deciding.
        found: tuple[dict[str, Any] | BaseException, ...] = await asyncio.gather(
            self._batch_lookup("albums", {t.album_id for t in tracks if t.album_id}, "label"),
            self._batch_lookup("artists", {a for t in tracks for a in t.artist_ids}, "genres"),
            return_exceptions=True,
        )
        labels, genres = found
        for res in found:
            if isinstance(res, HttpFailure) and res.status == 403:
                self._state.batch_metadata_available = False
                return
            if isinstance(res, PipelineError | HttpFailure):
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

    async def _batch_lookup(self, kind: str, ids: set[str], key: str) -> dict[str, Any]:
        """``GET /albums?ids=`` (20 per call) or ``/artists?ids=`` (50): ``key`` by id."""
        out: dict[str, Any] = {}
        batch = ALBUMS_BATCH if kind == "albums" else ARTISTS_BATCH

        async def one(chunk: list[str]) -> None:
            data = await self._get(kind, ids=",".join(chunk))
            for obj in data.get(kind) or []:
                if obj and obj.get(key):
                    value = obj[key]
                    out[obj["id"]] = list(value) if isinstance(value, list) else value

        # Every batch finishes before the first failure is raised: a cancelled await would
        # leave its request running in a spotipy thread, reaching Spotify after the caller
        # already decided (e.g. "batch endpoints are 403") and counted as a later request.
        results = await asyncio.gather(
            *(one(c) for c in chunks(sorted(i for i in ids if i), batch)), return_exceptions=True
        )
        for res in results:
            if isinstance(res, BaseException):
                raise res
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
            except HttpFailure as exc:
                if exc.status == 403:
                    self._state.audio_features_available = False
                    return
                raise status_error(exc, Request(Asked.AUDIO_FEATURES)) from None
            self._state.audio_features_available = True
            out.update(parse.audio_feature_rows(data))

        batches = chunks(unique, AUDIO_FEATURES_BATCH)
        if batches and self._state.audio_features_available is None:
            # Unknown access: send one batch first so a Development-Mode app costs one 403.
            await one(batches.pop(0))
        await gather_all([one(c) for c in batches])
        if self._state.audio_features_available is False:
            raise FeaturesUnavailable("audio-features answered 403 (Development Mode app)")
        return out

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
        except (PipelineError, HttpFailure) as exc:
            log.info("Could not detect the Spotify app mode: %s", exc)
            return "unknown"
        self._state.mode = mode
        return mode
