"""The pipeline: sources → features → clustering → render. No discord import, ever.

The worker (``bot.jobs``) calls the steps one by one so it can checkpoint between them; the
offline CLI calls :func:`run_analysis`, which chains them. CPU steps (:func:`cluster_step`,
:func:`render_step`) are plain picklable functions the worker sends to a process pool.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.config import Settings
from bot.errors import AuthError, EmptyPlaylist, InvalidInput, TooLarge
from bot.models import (
    AUDIO_FEATURES,
    Analysis,
    FetchResult,
    PlaylistMeta,
    Progress,
    ProgressCallback,
    Track,
)

# Bump when the clustering method changes so stored analyses are not reused across methods.
METHOD_VERSION = "m1"


@dataclass
class AnalysisRequest:
    """What to analyse. Exactly one of ``link`` / ``csv_text`` / ``liked`` / ``demo`` is used.

    ``link``: anything a user pastes (URL, URI, bare id) for a playlist or album.
    ``csv_text``: an Exportify CSV's text (``csv_name`` is its file name).
    ``liked``: the requesting user's Liked Songs (needs a linked account).
    ``demo``: the bundled real playlist mix (no network).
    """

    link: str | None = None
    csv_text: str | None = None
    csv_name: str | None = None
    liked: bool = False
    demo: bool = False
    k: int | None = None
    user_id: int | None = None  # Discord user who asked (linked account, 💚 marks)
    guild_id: int | None = None
    channel_id: int | None = None
    max_tracks: int | None = None  # None: settings.max_playlist_tracks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisRequest:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class FeatureTable:
    """Audio features per track id and where each came from.

    ``values[track_id]`` holds the AUDIO_FEATURES (plus key/mode/time_signature when known);
    tracks with no audio features at all are absent. ``sources[track_id]`` is "spotify",
    "reccobeats" or "csv".
    """

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def coverage(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for src in self.sources.values():
            out[src] = out.get(src, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "sources": self.sources}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureTable:
        return cls(values=dict(data.get("values", {})), sources=dict(data.get("sources", {})))


@dataclass
class Rendered:
    """Artefacts of an analysis. ``summary`` is the JSON summary written by the CLI."""

    png: bytes
    markdown: str
    csv: str
    summary: dict[str, Any]


@dataclass
class PipelineContext:
    """Long-lived collaborators shared by all jobs (built once at start-up).

    ``spotify``: bot.sources.spotify.SpotifyGateway or None when no credentials.
    ``reccobeats``: bot.features.reccobeats.ReccoBeatsClient or None when disabled.
    ``feature_cache``: object with the FeatureCache protocol (bot.features.cache).
    ``user_tokens``: async callable(discord_user_id) -> access token or None (account linking).
    ``executor``: process pool for CPU steps; None runs them inline (CLI, tests).
    """

    settings: Settings
    spotify: Any = None
    reccobeats: Any = None
    feature_cache: Any = None
    user_tokens: Any = None
    executor: Executor | None = None


async def fetch_step(
    request: AnalysisRequest,
    ctx: PipelineContext,
    progress: ProgressCallback,
    *,
    reuse: Callable[[PlaylistMeta], Awaitable[FetchResult | None]] | None = None,
) -> FetchResult:
    """Read the source (link, CSV, liked songs, demo) into a FetchResult.

    For links the requester's linked account is used when ``ctx.user_tokens`` returns a token
    (it can read their private playlists), else the app's ``ctx.spotify``. After the one
    metadata request, ``reuse(meta)`` may return a stored fetch of the same snapshot, which
    skips reading the tracks again.
    """
    limit = max_tracks(request, ctx.settings)
    await progress(Progress("fetching", message="Reading the playlist…"))
    if request.demo:
        from bot.demo import load_demo

        fetched = load_demo()
    elif request.csv_text is not None:
        from bot.sources.exportify import read_exportify_csv

        fetched = read_exportify_csv(request.csv_text, request.csv_name or "CSV upload")
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
        fetched = await _fetch_link(request, ctx, progress, limit, reuse)
    else:
        raise InvalidInput("Nothing to analyse: give a playlist link, a CSV file or the demo.")
    check_size(fetched, limit)
    return fetched


async def _fetch_link(
    request: AnalysisRequest,
    ctx: PipelineContext,
    progress: ProgressCallback,
    limit: int,
    reuse: Callable[[PlaylistMeta], Awaitable[FetchResult | None]] | None,
) -> FetchResult:
    from bot.sources.links import parse_spotify_link

    ref = parse_spotify_link(request.link or "")
    user_gateway = await _user_gateway(request, ctx)
    gateway = user_gateway or ctx.spotify
    if gateway is None:
        raise AuthError(
            "This bot has no Spotify credentials configured, so it cannot read playlists. "
            "Attach an Exportify CSV (https://exportify.net) instead."
        )
    try:
        meta = await gateway.get_meta(ref)
        if meta.total is not None and meta.total > limit:
            raise TooLarge(_too_large_message(meta.total, limit))
        if reuse is not None:
            stored = await reuse(meta)
            if stored is not None:
                return stored
        return await gateway.fetch_tracks(ref, meta, progress)
    finally:
        if user_gateway is not None:
            _close(user_gateway)


def _close(gateway: Any) -> None:
    """Release a per-request gateway (user token); the shared ``ctx.spotify`` stays open."""
    close = getattr(gateway, "close", None)
    if callable(close):
        close()


async def _user_gateway(request: AnalysisRequest, ctx: PipelineContext) -> Any:
    """A gateway acting as the requester's linked Spotify account, or None."""
    if request.user_id is None or ctx.user_tokens is None:
        return None
    token = await ctx.user_tokens(request.user_id)
    if not token:
        return None
    from bot.sources.spotify import user_gateway

    return user_gateway(ctx.settings, token, app=ctx.spotify)


def max_tracks(request: AnalysisRequest, settings: Settings) -> int:
    """The effective track limit: the request's, capped by the bot's setting."""
    if request.max_tracks is None:
        return settings.max_playlist_tracks
    return min(request.max_tracks, settings.max_playlist_tracks)


def _too_large_message(n: int, limit: int) -> str:
    return f"This playlist has {n:,} tracks; this bot analyses at most {limit:,}."


def check_size(fetched: FetchResult, limit: int) -> None:
    """EmptyPlaylist / TooLarge on what a source returned."""
    if not fetched.tracks:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(fetched.skipped.items()) if n)
        extra = f" (skipped: {skipped})" if skipped else ""
        raise EmptyPlaylist(f"“{fetched.meta.name}” has no playable tracks{extra}.")
    if len(fetched.tracks) > limit:
        raise TooLarge(_too_large_message(len(fetched.tracks), limit))


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
    fetched: FetchResult, ctx: PipelineContext, progress: ProgressCallback
) -> FeatureTable:
    """Fill audio features: CSV values, cache, Spotify (if available), ReccoBeats.

    Sources whose tracks all carry features (CSV, demo) need no network at all.
    """
    own = features_from_tracks(fetched.tracks)
    if own is not None:
        return own
    await progress(Progress("featurizing", done=0, total=len(fetched.tracks)))
    from bot.features.gather import gather_features

    return await gather_features(
        fetched.tracks,
        spotify=ctx.spotify,
        reccobeats=ctx.reccobeats,
        cache=ctx.feature_cache,
        progress=progress,
    )


def unique_tracks(fetched: FetchResult) -> tuple[list[Track], dict[str, int]]:
    """Tracks with an id, first occurrence only; ``skipped`` plus any duplicates dropped."""
    seen: set[str] = set()
    out: list[Track] = []
    dropped = 0
    for t in fetched.tracks:
        if not t.id or t.id in seen:
            dropped += 1
            continue
        seen.add(t.id)
        out.append(t)
    skipped = dict(fetched.skipped)
    if dropped:
        skipped["duplicate"] = skipped.get("duplicate", 0) + dropped
    return out, skipped


def cluster_step(
    fetched: FetchResult, features: FeatureTable, k: int | None, seed: int = 0
) -> Analysis:
    """CPU: build the matrix, choose k, cluster, describe, project to 2-D. Picklable."""
    from bot.clustering import analyze
    from bot.features.matrix import build_matrix

    tracks, skipped = unique_tracks(fetched)
    clean = FetchResult(meta=fetched.meta, tracks=tracks, skipped=skipped)
    fm = build_matrix(tracks, features.values, features.sources)
    analysis = analyze(clean, fm, k, seed)
    analysis.created_at = datetime.now(UTC).isoformat(timespec="seconds")
    return analysis


def render_step(analysis: Analysis) -> Rendered:
    """CPU: scatter PNG, markdown report, CSV, JSON summary. Picklable."""
    from bot import render

    return Rendered(
        png=render.render_scatter(analysis),
        markdown=render.render_markdown(analysis),
        csv=render.render_csv(analysis),
        summary=render.summary(analysis),
    )


@dataclass
class PackedAnalysis:
    """An Analysis as it leaves the worker process, ready for the bot process to store.

    A 10,000-track Analysis pickled back whole took ~80 ms to unpickle (one call holding the
    GIL, stalling the event loop), then ~180 ms more to encode as JSON for the checkpoint and
    again for storage. Here the worker does the encoding: ``parts`` is the JSON text of each
    item of ``Analysis.to_parts()`` (decoded part by part, off the loop, by
    :func:`decode_parts`) and ``blob`` the pickled Analysis for :func:`render_packed_step`
    (bytes cross the process boundary in one cheap copy).
    """

    parts: list[str]
    blob: bytes


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_parts(analysis: Analysis) -> list[str]:
    """JSON text of each item of ``analysis.to_parts()`` (head first)."""
    return [_json(part) for part in analysis.to_parts()]


def parts_text(parts: list[str]) -> str:
    """One JSON array, one part per line: ``[\n<head>,\n<part>,\n...\n]``.

    Valid JSON (``Analysis.from_dict(json.loads(text))`` reads it), and :func:`decode_text`
    splits it into lines to decode part by part. JSON text never holds a raw newline.
    """
    return "[\n" + ",\n".join(parts) + "\n]"


def decode_parts(parts: list[str], *, on_part: Callable[[], None] | None = None) -> Analysis:
    """Analysis from :func:`encode_parts` output; every json call is one part (short).

    ``on_part()`` is called before decoding each part after the head (e.g. ``gc.freeze``
    so full collections meanwhile skip the parts already built).
    """

    def decoded() -> Any:
        for i, text in enumerate(parts):
            if i > 1 and on_part is not None:
                on_part()
            yield json.loads(text)

    return Analysis.from_parts(decoded())


def decode_text(text: str, *, on_part: Callable[[], None] | None = None) -> Analysis:
    """Analysis from :func:`parts_text` output or from a plain ``to_dict()`` JSON object."""
    if text.startswith("[\n"):
        lines = text.split("\n")[1:-1]
        parts = [line[:-1] if line.endswith(",") else line for line in lines]
        return decode_parts(parts, on_part=on_part)
    return Analysis.from_dict(json.loads(text))


def cluster_packed_step(
    fetched: FetchResult, features: FeatureTable, k: int | None, seed: int = 0
) -> PackedAnalysis:
    """:func:`cluster_step`, returned packed (see :class:`PackedAnalysis`). Picklable."""
    analysis = cluster_step(fetched, features, k, seed)
    return PackedAnalysis(encode_parts(analysis), pickle.dumps(analysis, pickle.HIGHEST_PROTOCOL))


def pickle_inputs(
    fetched: FetchResult, features: FeatureTable, chunk: int = 500
) -> tuple[bytes, list[bytes], list[bytes]]:
    """:func:`cluster_pickled_step`'s inputs, pickled ``chunk`` tracks at a time.

    Handing the pool a FetchResult and FeatureTable of 10,000 tracks made its feeder thread
    pickle them in one ~50 ms call holding the GIL (an event-loop stall). Run this in a
    thread instead: between the short calls the loop runs; the pool then only copies bytes.
    """
    tracks = fetched.tracks
    values = list(features.values.items())
    sources = list(features.sources.items())
    longest = max(len(values), len(sources))
    return (
        pickle.dumps((fetched.meta, fetched.skipped), pickle.HIGHEST_PROTOCOL),
        [
            pickle.dumps(tracks[i : i + chunk], pickle.HIGHEST_PROTOCOL)
            for i in range(0, len(tracks), chunk)
        ],
        [
            pickle.dumps(
                (dict(values[i : i + chunk]), dict(sources[i : i + chunk])),
                pickle.HIGHEST_PROTOCOL,
            )
            for i in range(0, longest, chunk)
        ],
    )


def cluster_pickled_step(
    head: bytes, tracks: list[bytes], features: list[bytes], k: int | None
) -> PackedAnalysis:
    """:func:`cluster_packed_step` of :func:`pickle_inputs` output. Picklable."""
    # Our own bot process made these bytes (pickle_inputs).
    meta, skipped = pickle.loads(head)
    fetched = FetchResult(meta, [t for blob in tracks for t in pickle.loads(blob)], skipped)
    table = FeatureTable()
    for blob in features:
        values, sources = pickle.loads(blob)
        table.values.update(values)
        table.sources.update(sources)
    return cluster_packed_step(fetched, table, k)


def render_packed_step(blob: bytes) -> Rendered:
    """:func:`render_step` of a :attr:`PackedAnalysis.blob`. Picklable."""
    return render_step(pickle.loads(blob))  # our own worker process made these bytes


def params_key(k: int | None) -> str:
    """Stable key of the analysis parameters (storage dedupe): method version + k."""
    return f"{METHOD_VERSION}:k={'auto' if k is None else int(k)}"


async def _cpu(ctx: PipelineContext, fn: Callable[..., Any], *args: Any) -> Any:
    if ctx.executor is None:
        return fn(*args)
    return await asyncio.get_running_loop().run_in_executor(ctx.executor, fn, *args)


async def run_analysis(
    request: AnalysisRequest, ctx: PipelineContext, progress: ProgressCallback
) -> tuple[Analysis, Rendered]:
    """All steps in order (the CLI's path; the worker runs them with checkpoints)."""
    fetched = await fetch_step(request, ctx, progress)
    features = await featurize_step(fetched, ctx, progress)
    await progress(Progress("clustering", total=len(fetched.tracks)))
    analysis = await _cpu(ctx, cluster_step, fetched, features, request.k)
    await progress(Progress("rendering"))
    rendered = await _cpu(ctx, render_step, analysis)
    await progress(Progress("done"))
    return analysis, rendered
