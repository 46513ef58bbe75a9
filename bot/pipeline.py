"""The pipeline: sources → features → clustering → render. No discord import, ever.

The network steps live here (:func:`fetch_step`, :func:`featurize_step`); the CPU steps
(clustering, rendering) are the process-side functions in :mod:`bot.jobs.cpu`. The worker
(``bot.jobs``) runs the steps one by one so it can checkpoint between them; the CLI and
:func:`bot.jobs.inline.run_analysis` chain them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, overload

from bot.config import Settings
from bot.errors import AuthError, InvalidInput
from bot.models import (
    AUDIO_FEATURES,
    AnalysisRequest,
    FeatureTable,
    FetchResult,
    PlaylistMeta,
    Progress,
    ProgressCallback,
    Track,
)
from bot.safety import uploader_scoped_id
from bot.sources.normalise import normalise

if TYPE_CHECKING:
    from bot.features.cache import FeatureCache
    from bot.features.prefetch import FeaturePrefetch
    from bot.features.reccobeats import ReccoBeatsClient
    from bot.sources.public_page import PublicPageReader
    from bot.sources.spotify import SpotifyGateway, UserTokens
    from bot.sources.status import SourceStatus


@dataclass
class PipelineContext:
    """Long-lived collaborators shared by all jobs (built once at start-up).

    ``spotify``: the app's gateway, None when no credentials. ``reccobeats``: None when
    disabled. ``user_tokens``: account linking (None when off). ``executor``: process pool
    for CPU steps; None runs them inline (CLI, tests).
    ``pages``: public pages and short links (pages are read only when
    ``settings.spotify_public_pages``). ``status``: what each source last returned (/about).
    """

    settings: Settings
    spotify: SpotifyGateway | None = None
    reccobeats: ReccoBeatsClient | None = None
    feature_cache: FeatureCache | None = None
    user_tokens: UserTokens | None = None
    # (discord user id, rejected token) -> a refreshed token, after Spotify answered 401
    refresh_user_token: Callable[[int, str], Awaitable[str | None]] | None = None
    executor: Executor | None = None
    pages: PublicPageReader | None = None
    status: SourceStatus | None = None


@dataclass
class Reused:
    """What a ``reuse`` lookup found stored for an unchanged snapshot (see :func:`fetch_step`).

    ``analysis_id``: it was analysed with these parameters already (nothing left to run);
    else ``stored``: its entries, read back instead of fetched again.
    """

    meta: PlaylistMeta
    analysis_id: int | None = None
    stored: FetchResult | None = None


#: ``reuse(meta)``: what storage holds of ``meta``'s snapshot, or None.
ReuseLookup = Callable[[PlaylistMeta], Awaitable[Reused | None]]


@overload
async def fetch_step(
    request: AnalysisRequest,
    ctx: PipelineContext,
    progress: ProgressCallback,
    *,
    reuse: None = None,
    prefetch: FeaturePrefetch | None = None,
) -> FetchResult: ...


@overload
async def fetch_step(
    request: AnalysisRequest,
    ctx: PipelineContext,
    progress: ProgressCallback,
    *,
    reuse: ReuseLookup,
    prefetch: FeaturePrefetch | None = None,
) -> FetchResult | Reused: ...


async def fetch_step(
    request: AnalysisRequest,
    ctx: PipelineContext,
    progress: ProgressCallback,
    *,
    reuse: ReuseLookup | None = None,
    prefetch: FeaturePrefetch | None = None,
) -> FetchResult | Reused:
    """Read the source (link, CSV, liked songs, demo) into a FetchResult, normalised
    (:func:`bot.sources.normalise.normalise`: no repeated ids, not empty, not too large).

    For links the requester's linked account is used when ``ctx.user_tokens`` returns a token
    (it can read their private playlists), else the app's ``ctx.spotify``. After the one
    metadata request, ``reuse(meta)`` may find the same snapshot in storage: that
    :class:`Reused` is returned as it is, and the tracks are not read again. Without
    ``reuse`` the result is always a FetchResult. A CSV upload's id is scoped to its
    uploader: one member's upload is never another's, even with the same rows.
    ``prefetch`` (:func:`bot.features.prefetch.start_prefetch`) is fed each page of items as
    it arrives, so their features are asked for while later pages are read; hand it to
    :func:`featurize_step`.
    """
    from bot.features.prefetch import feeding

    with feeding(prefetch):
        fetched = await _read_source(request, ctx, progress, reuse)
    if isinstance(fetched, Reused):
        if prefetch is not None:
            prefetch.cancel()
        return fetched
    return normalise(fetched, max_tracks(request, ctx.settings))


async def _read_source(
    request: AnalysisRequest,
    ctx: PipelineContext,
    progress: ProgressCallback,
    reuse: ReuseLookup | None,
) -> FetchResult | Reused:
    limit = max_tracks(request, ctx.settings)
    await progress(Progress("fetching", message="Reading the playlist…"))
    if request.demo:
        from bot.demo import load_demo

        fetched = load_demo()
    elif request.csv_text is not None:
        from bot.sources.exportify import read_exportify_csv

        fetched = read_exportify_csv(request.csv_text, request.csv_name or "CSV upload")
        if request.user_id is not None:  # an upload is its uploader's (issue #13)
            fetched.meta.id = uploader_scoped_id(fetched.meta.id, request.user_id)
    elif request.liked:
        gateway = await _user_gateway(request, ctx)
        if gateway is None:
            raise AuthError(
                "Analysing your Liked Songs needs a linked Spotify account: "
                "run `/spotify link` first."
            )
        try:
            fetched = await gateway.fetch_liked(progress, max_tracks=limit)
        finally:
            _close(gateway)
    elif request.link:
        got = await _fetch_link(request, ctx, progress, limit, reuse)
        if isinstance(got, Reused):
            return got
        fetched = got
    else:
        raise InvalidInput("Nothing to analyse: give a playlist link, a CSV file or the demo.")
    return fetched


async def _fetch_link(
    request: AnalysisRequest,
    ctx: PipelineContext,
    progress: ProgressCallback,
    limit: int,
    reuse: ReuseLookup | None,
) -> FetchResult | Reused:
    from bot.sources.link_reader import read_link, resolve_ref

    # Parsed once on submit; a short link (no id in it) is followed here.
    ref = with_parsed_link(request).ref or await resolve_ref(request.link or "", ctx.pages)
    user_gateway = await _user_gateway(request, ctx)
    try:
        # The API as the member or the app, then Spotify's public page, then the help.
        return await read_link(
            ref,
            app=ctx.spotify,
            user=user_gateway,
            pages=ctx.pages if ctx.settings.spotify_public_pages else None,
            progress=progress,
            limit=limit,
            reuse=reuse,
            status=ctx.status,
        )
    finally:
        if user_gateway is not None:
            _close(user_gateway)


def _close(gateway: SpotifyGateway) -> None:
    """Release a per-request gateway (user token); the shared ``ctx.spotify`` stays open."""
    close = getattr(gateway, "close", None)
    if callable(close):
        close()


async def _user_gateway(request: AnalysisRequest, ctx: PipelineContext) -> SpotifyGateway | None:
    """A gateway acting as the requester's linked Spotify account, or None."""
    if request.user_id is None or ctx.user_tokens is None:
        return None
    from bot.sources.spotify import gateway_for_user

    return await gateway_for_user(
        request.user_id,
        ctx.user_tokens,
        ctx.settings,
        app=ctx.spotify,
        refresh_token=ctx.refresh_user_token,
    )


def with_parsed_link(request: AnalysisRequest) -> AnalysisRequest:
    """``request`` with its link parsed into ``ref`` (InvalidLink when it is not a Spotify
    playlist/album). The one place a request's link is parsed: once, then carried (the queue
    parses on submit; the fetch step and the dedupe key read ``ref``)."""
    from bot.sources.links import is_short_link, parse_spotify_link

    if not request.link or request.ref is not None or is_short_link(request.link):
        return request  # a short link has no id in it: the fetch step follows it
    return replace(request, ref=parse_spotify_link(request.link))


def max_tracks(request: AnalysisRequest, settings: Settings) -> int:
    """The effective track limit: the request's, capped by the bot's setting."""
    if request.max_tracks is None:
        return settings.max_playlist_tracks
    return min(request.max_tracks, settings.max_playlist_tracks)


def features_from_tracks(tracks: list[Track]) -> FeatureTable | None:
    """The FeatureTable when every track carries its own audio features (CSV, demo), else None."""
    table = FeatureTable()
    for t in tracks:
        if not t.features or not all(f in t.features for f in AUDIO_FEATURES):
            return None
        table.values[t.id] = dict(t.features)
        table.sources[t.id] = "csv"
    return table


async def featurize_step(
    fetched: FetchResult,
    ctx: PipelineContext,
    progress: ProgressCallback,
    *,
    prefetched: FeaturePrefetch | None = None,
) -> FeatureTable:
    """Fill audio features: CSV values, cache, Spotify (if available), ReccoBeats.

    Sources whose tracks all carry features (CSV, demo) need no network at all.
    ``prefetched``: the lookups :func:`fetch_step` started as pages arrived (its
    ``prefetch``), whose answers are used instead of asking again.
    """
    own = features_from_tracks(fetched.tracks)
    if own is not None:
        if prefetched is not None:
            prefetched.cancel()
        return own
    await progress(Progress("featurizing", done=0, total=len(fetched.tracks)))
    from bot.features.gather import gather_features

    return await gather_features(
        fetched.tracks,
        spotify=ctx.spotify,
        reccobeats=ctx.reccobeats,
        cache=ctx.feature_cache,
        progress=progress,
        prefetched=prefetched,
    )
