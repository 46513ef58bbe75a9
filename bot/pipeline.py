"""The pipeline: sources → features → clustering → render. No discord import, ever.

The worker (``bot.jobs``) calls the steps one by one so it can checkpoint between them; the
offline CLI calls :func:`run_analysis`, which chains them. CPU steps (:func:`cluster_step`,
:func:`render_step`) are plain picklable functions the worker sends to a process pool.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.config import Settings
from bot.models import Analysis, FetchResult, ProgressCallback


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
    request: AnalysisRequest, ctx: PipelineContext, progress: ProgressCallback
) -> FetchResult:
    """Read the source (link, CSV, liked songs, demo) into a FetchResult."""
    raise NotImplementedError


async def featurize_step(
    fetched: FetchResult, ctx: PipelineContext, progress: ProgressCallback
) -> FeatureTable:
    """Fill audio features: CSV values, cache, Spotify (if available), ReccoBeats."""
    raise NotImplementedError


def cluster_step(
    fetched: FetchResult, features: FeatureTable, k: int | None, seed: int = 0
) -> Analysis:
    """CPU: build the matrix, choose k, cluster, describe, project to 2-D. Picklable."""
    raise NotImplementedError


def render_step(analysis: Analysis) -> Rendered:
    """CPU: scatter PNG, markdown report, CSV, JSON summary. Picklable."""
    raise NotImplementedError


async def run_analysis(
    request: AnalysisRequest, ctx: PipelineContext, progress: ProgressCallback
) -> tuple[Analysis, Rendered]:
    """All steps in order (the CLI's path; the worker runs them with checkpoints)."""
    raise NotImplementedError
