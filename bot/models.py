"""Plain data passed between the pipeline stages, the worker, storage and the Discord layer.

Everything is a dataclass of JSON-friendly values (``to_dict``/``from_dict`` round-trip), so
results can be stored in SQLite, sent to a worker process, and rebuilt without refetching.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

# The 9 continuous Spotify/ReccoBeats audio features used for clustering (key/mode/time
# signature are categorical and left out on purpose).
AUDIO_FEATURES: tuple[str, ...] = (
    "danceability",
    "energy",
    "loudness",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
)
# Every feature value kept per track: the 9 above plus the categorical ones (reported, cached).
FEATURE_KEYS: tuple[str, ...] = (*AUDIO_FEATURES, "key", "mode", "time_signature")

# Fewest playable tracks a source may have to be clustered (checked as soon as it is read:
# bot.sources.normalise, before any feature is asked for; and by bot.clustering.validate).
MIN_TRACKS = 10

FeatureSource = Literal["spotify", "reccobeats", "csv", "metadata"]
SourceKind = Literal["playlist", "album", "liked", "csv", "demo"]
# Who asked for a job, so whoever owns it delivers it: the /cluster cog (a slash command or a
# posted link) or the digest cog's scheduler.
JobOrigin = Literal["interaction", "message", "digest"]
RefKind = Literal["playlist", "album"]

# Tracks per part of Analysis.to_parts(): ~0.4 MB of JSON, a few ms per json call.
PART_SIZE = 500

# Bump when the clustering method changes so stored analyses are not reused across methods.
METHOD_VERSION = "m2"  # m2: ranked features, gap+BIC auto k, true words (issue #12)


def params_key(
    k: int | None, previous: Mapping[str, int] | None = None, digest_id: int | None = None
) -> str:
    """Stable key of the analysis parameters (storage dedupe): method version + k, and
    ``:warm=<subscription>`` for a digest's run (``previous`` given, even empty: a first digest).

    Digest analyses are warm-started from the previous digest (bot.warm_start) and are not
    shared with ``/cluster`` (nor the reverse: a digest taking a fresh ``/cluster`` analysis of
    the new snapshot would lose its steady clusters), nor between two subscriptions of the same
    playlist (each starts from its own previous digest: sharing one gave a subscription clusters
    numbered after the other's). The key carries no hash of the previous assignment on purpose:
    a digest of an unchanged snapshot must find the subscription's previous analysis (made from
    the one before it) and reuse it, without clustering again.
    """
    key = f"{METHOD_VERSION}:k={'auto' if k is None else int(k)}"
    if previous is None:
        return key
    return key + (":warm" if digest_id is None else f":warm={int(digest_id)}")


@dataclass(frozen=True)
class ArtefactNames:
    """File names of an analysis's rendered artefacts: the CLI's output files, the stored
    ``analysis_files`` rows and the Discord attachments all use these."""

    png: str = "clusters.png"
    markdown: str = "report.md"
    csv: str = "tracks.csv"
    summary: str = "summary.json"
    profile: str = "profile.png"  # optional: analyses stored before it have none

    def all(self) -> tuple[str, str, str, str]:
        return (self.png, self.markdown, self.csv, self.summary)


ARTEFACTS = ArtefactNames()


def _from_dict(cls, data: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class SpotifyRef:
    """A playlist or album reference (``id`` is the 22-char base62 Spotify id), as
    :func:`bot.sources.links.parse_spotify_link` reads it from what people paste."""

    kind: RefKind
    id: str

    @property
    def url(self) -> str:
        return f"https://open.spotify.com/{self.kind}/{self.id}"

    @property
    def uri(self) -> str:
        return f"spotify:{self.kind}:{self.id}"


@dataclass
class Track:
    """One playable track. ``id`` is the Spotify track id (22 chars) when known."""

    id: str
    name: str
    artists: list[str] = field(default_factory=list)
    artist_ids: list[str] = field(default_factory=list)
    album: str = ""
    album_id: str | None = None
    image_url: str | None = None
    release_date: str | None = None
    duration_ms: int | None = None
    explicit: bool | None = None
    popularity: int | None = None  # absent for dev-mode apps
    label: str | None = None  # absent for dev-mode apps
    isrc: str | None = None  # external_ids.isrc (API reads; public pages don't carry it)
    genres: list[str] = field(default_factory=list)
    added_at: str | None = None
    added_by: str | None = None
    # Audio features carried by the source itself (Exportify CSV, demo data).
    features: dict[str, float] | None = None

    @property
    def uri(self) -> str:
        return f"spotify:track:{self.id}"

    @property
    def url(self) -> str:
        return f"https://open.spotify.com/track/{self.id}"

    def to_dict(self) -> dict[str, Any]:
        # Same result as dataclasses.asdict, ~20x faster: asdict's recursive deep copy cost
        # ~0.5 s of event-loop time per 10,000 tracks (bench/profile_steps.py).
        out = {name: getattr(self, name) for name in _TRACK_FIELDS}
        out["artists"] = list(self.artists)
        out["artist_ids"] = list(self.artist_ids)
        out["genres"] = list(self.genres)
        out["features"] = None if self.features is None else dict(self.features)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Track:
        return _from_dict(cls, data)


_TRACK_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Track))


@dataclass
class PlaylistMeta:
    id: str
    name: str
    kind: SourceKind = "playlist"
    owner_id: str | None = None
    owner_name: str | None = None
    snapshot_id: str | None = None
    total: int | None = None
    url: str | None = None
    image_url: str | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlaylistMeta:
        return _from_dict(cls, data)


@dataclass
class FetchResult:
    """A source's output: metadata, the playable tracks, and what was skipped and why."""

    meta: PlaylistMeta
    tracks: list[Track]
    # e.g. {"local": 2, "episode": 1, "null": 0, "unavailable": 3, "duplicate": 1}
    skipped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta.to_dict(),
            "tracks": [t.to_dict() for t in self.tracks],
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FetchResult:
        return cls(
            meta=PlaylistMeta.from_dict(data["meta"]),
            tracks=[Track.from_dict(t) for t in data["tracks"]],
            skipped=dict(data.get("skipped", {})),
        )


@dataclass
class Cluster:
    index: int  # 0-based; shown to users as #index+1
    name: str  # short, e.g. "Cluster 2 · fast · high energy"
    description: str  # e.g. "fast · high energy · danceable"
    size: int
    centroid: dict[str, float]  # in original feature units
    track_ids: list[str]  # every member, nearest the centroid first
    representative_ids: list[str]  # up to 10, nearest the centroid first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cluster:
        return _from_dict(cls, data)


@dataclass
class Analysis:
    """The whole result of one run: what the renderers, storage and Discord layer consume."""

    source: PlaylistMeta
    tracks: list[Track]  # clustered tracks, in playlist order
    clusters: list[Cluster]
    assignments: dict[str, int]  # track id -> cluster index
    coords: dict[str, list[float]]  # track id -> [x, y] of the 2-D projection
    k: int
    k_requested: int | None
    feature_mode: str  # "audio", "audio+metadata" or "metadata"
    feature_names: list[str]
    # number of tracks whose features came from each source, e.g. {"reccobeats": 480, ...}
    coverage: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)
    silhouette: float | None = None
    liked: list[str] = field(default_factory=list)  # track ids saved by the requesting user
    created_at: str | None = None
    analysis_id: int | None = None
    # track id -> the feature values used, in original units (CSV export, re-rendering)
    features: dict[str, dict[str, float]] = field(default_factory=dict)
    # how the 2-D coords were made: {"method": "PCA", "x_label": ..., "y_label": ...}
    projection: dict[str, Any] = field(default_factory=dict)
    # what separated the clusters most, e.g. "split mostly by era and energy" ("" if unknown)
    split_by: str = ""
    # tracks without sound because ReccoBeats could not answer this run (FeatureTable.unanswered)
    unanswered: int = 0

    def track_by_id(self) -> dict[str, Track]:
        return {t.id: t for t in self.tracks}

    def to_dict(self) -> dict[str, Any]:
        """Everything in one JSON-friendly dict (:meth:`to_parts` is the split form)."""
        out = self.head_dict()
        del out["format"]
        out["tracks"] = [t.to_dict() for t in self.tracks]
        out["assignments"] = dict(self.assignments)
        out["coords"] = {k: list(v) for k, v in self.coords.items()}
        out["features"] = {k: dict(v) for k, v in self.features.items()}
        return out

    def head_dict(self) -> dict[str, Any]:
        """The head of :meth:`to_parts`: everything but the per-track tables."""
        return {
            "source": self.source.to_dict(),
            "clusters": [c.to_dict() for c in self.clusters],
            "k": self.k,
            "k_requested": self.k_requested,
            "feature_mode": self.feature_mode,
            "feature_names": list(self.feature_names),
            "coverage": dict(self.coverage),
            "skipped": dict(self.skipped),
            "silhouette": self.silhouette,
            "liked": list(self.liked),
            "created_at": self.created_at,
            "analysis_id": self.analysis_id,
            "projection": dict(self.projection),
            "split_by": self.split_by,
            "unanswered": self.unanswered,
            "format": "parts",
        }

    def to_parts(self, chunk: int = PART_SIZE) -> list[dict[str, Any]]:
        """``to_dict()`` split into a small head and parts of ``chunk`` tracks each.

        ``[head, part, part, ...]``: the head holds everything but the per-track tables
        (tracks, assignments, coords, features); each part holds a slice of each. Encoding and
        decoding a 10,000-track analysis part by part keeps every single ``json`` call short,
        so a thread doing it lets the event loop run in between (one 7 MB ``json.dumps`` or
        ``json.loads`` holds the GIL for 130-180 ms). ``from_dict`` reads this list too.
        """
        head = self.head_dict()
        assignments = list(self.assignments.items())
        coords = list(self.coords.items())
        features = list(self.features.items())
        longest = max(len(self.tracks), len(assignments), len(coords), len(features))
        parts: list[dict[str, Any]] = [head]
        for start in range(0, longest, chunk):
            end = start + chunk
            parts.append(
                {
                    "tracks": [t.to_dict() for t in self.tracks[start:end]],
                    "assignments": dict(assignments[start:end]),
                    "coords": {k: list(v) for k, v in coords[start:end]},
                    "features": {k: dict(v) for k, v in features[start:end]},
                }
            )
        return parts

    @classmethod
    def from_parts(cls, parts: Iterable[dict[str, Any]]) -> Analysis:
        """Rebuild from :meth:`to_parts` output (any iterable: a generator decoding the parts
        one by one never holds all the decoded JSON at once)."""
        it = iter(parts)
        head = next(it)
        analysis = cls.from_dict(
            {"tracks": [], "assignments": {}, "coords": {}, "features": {}}
            | {k: v for k, v in head.items() if k != "format"}
        )
        for part in it:
            analysis.tracks.extend(Track.from_dict(t) for t in part.get("tracks", ()))
            analysis.assignments.update((k, int(v)) for k, v in part.get("assignments", {}).items())
            analysis.coords.update((k, list(v)) for k, v in part.get("coords", {}).items())
            analysis.features.update((k, dict(v)) for k, v in part.get("features", {}).items())
        return analysis

    @classmethod
    def from_dict(cls, data: dict[str, Any] | list[dict[str, Any]]) -> Analysis:
        """From ``to_dict()`` output, or from ``to_parts()`` output (a list)."""
        if isinstance(data, list):
            return cls.from_parts(data)
        return cls(
            source=PlaylistMeta.from_dict(data["source"]),
            tracks=[Track.from_dict(t) for t in data["tracks"]],
            clusters=[Cluster.from_dict(c) for c in data["clusters"]],
            assignments={k: int(v) for k, v in data["assignments"].items()},
            coords={k: list(v) for k, v in data["coords"].items()},
            k=int(data["k"]),
            k_requested=data.get("k_requested"),
            feature_mode=data["feature_mode"],
            feature_names=list(data.get("feature_names", [])),
            coverage=dict(data.get("coverage", {})),
            skipped=dict(data.get("skipped", {})),
            silhouette=data.get("silhouette"),
            liked=list(data.get("liked", [])),
            created_at=data.get("created_at"),
            analysis_id=data.get("analysis_id"),
            features={k: dict(v) for k, v in data.get("features", {}).items()},
            projection=dict(data.get("projection", {})),
            split_by=str(data.get("split_by", "")),
            unanswered=int(data.get("unanswered", 0)),
        )


@dataclass
class AnalysisRequest:
    """What to analyse. Exactly one of ``link`` / ``csv_text`` / ``liked`` / ``demo`` is used.

    ``link``: anything a user pastes (URL, URI, bare id) for a playlist or album.
    ``csv_text``: an Exportify CSV's text (``csv_name`` is its file name).
    ``liked``: the requesting user's Liked Songs (needs a linked account).
    ``demo``: the bundled real playlist mix (no network).
    ``ref``: ``link`` parsed, set once by :func:`bot.pipeline.with_parsed_link` (the queue
    does it on submit) and carried from there to the fetch step, stored jobs included.
    ``previous_clusters``: a digest's previous assignment (track id → cluster index; empty for
    a first digest, None for anything else): the clustering starts from those clusters and
    numbers its own like them (bot.warm_start). ``digest_id``: the subscription a digest's run
    is for (its analyses are its own: :func:`params_key`).
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
    origin: JobOrigin = "interaction"
    ref: SpotifyRef | None = None
    previous_clusters: dict[str, int] | None = None
    digest_id: int | None = None

    def params_key(self) -> str:
        """:func:`params_key` of this request (storage and job dedupe)."""
        return params_key(self.k, self.previous_clusters, self.digest_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisRequest:
        ref = data.get("ref")
        if isinstance(ref, dict):
            data = {**data, "ref": SpotifyRef(**ref)}
        return _from_dict(cls, data)


@dataclass
class FeatureTable:
    """Audio features per track id and where each came from.

    ``values[track_id]`` holds the AUDIO_FEATURES (plus key/mode/time_signature when known);
    tracks with no audio features at all are absent. ``sources[track_id]`` is "spotify",
    "reccobeats" or "csv". ``unanswered``: tracks left without features because ReccoBeats
    could not answer this run (outage, rate limit, no network): not cached as "has none", so
    a later run asks again; the reply says so.
    """

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    unanswered: int = 0

    def coverage(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for src in self.sources.values():
            out[src] = out.get(src, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "sources": self.sources, "unanswered": self.unanswered}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureTable:
        return cls(
            values=dict(data.get("values", {})),
            sources=dict(data.get("sources", {})),
            unanswered=int(data.get("unanswered", 0)),
        )


@dataclass
class Rendered:
    """Artefacts of an analysis (file names: :data:`ARTEFACTS`). ``summary`` is the JSON
    summary written by the CLI."""

    png: bytes
    markdown: str
    csv: str
    summary: dict[str, Any]
    profile_png: bytes = b""  # per-cluster sound profile (render.render_profile)


Stage = Literal["queued", "fetching", "featurizing", "clustering", "rendering", "done", "failed"]


@dataclass
class Progress:
    """One progress event. ``done``/``total`` count tracks (fetching/featurizing) when known."""

    stage: Stage
    done: int | None = None
    total: int | None = None
    message: str | None = None
    job_id: int | None = None


ProgressCallback = Callable[[Progress], Awaitable[None]]


async def no_progress(_: Progress) -> None:
    """Default progress callback."""
