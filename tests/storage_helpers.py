"""Builders of realistic rows for the storage and jobs tests."""

from __future__ import annotations

from bot.models import AUDIO_FEATURES, Analysis, Cluster, FetchResult, PlaylistMeta, Rendered, Track


def track_id(i: int) -> str:
    """A 22-character base62-looking Spotify id."""
    return f"T{i:021d}"


def make_tracks(n: int, *, start: int = 0, features: bool = False) -> list[Track]:
    out = []
    for i in range(start, start + n):
        feats = None
        if features:
            feats = {name: float((i * 7 + j) % 100) / 100 for j, name in enumerate(AUDIO_FEATURES)}
        out.append(
            Track(
                id=track_id(i),
                name=f"Song {i}",
                artists=[f"Artist {i % 50}", "Guest"] if i % 10 == 0 else [f"Artist {i % 50}"],
                artist_ids=[f"A{i % 50:021d}", "G" * 22] if i % 10 == 0 else [f"A{i % 50:021d}"],
                album=f"Album {i % 200}",
                album_id=f"L{i % 200:021d}",
                image_url=f"https://i.scdn.co/image/{i:040x}",
                release_date="2019-05-01",
                duration_ms=180_000 + i,
                explicit=bool(i % 2),
                genres=["indie pop"] if i % 3 == 0 else [],
                added_at=f"2024-01-{1 + i % 28:02d}T10:00:00Z",
                added_by="owner" if i % 4 == 0 else None,
                features=feats,
            )
        )
    return out


def make_fetch(
    n: int,
    *,
    playlist_id: str = "37abcdefghijklmnopqrst",
    snapshot: str | None = "snap-1",
    kind: str = "playlist",
    start: int = 0,
    features: bool = False,
) -> FetchResult:
    meta = PlaylistMeta(
        id=playlist_id,
        name=f"Playlist {playlist_id[:6]}",
        kind=kind,  # type: ignore[arg-type]
        owner_id="owner",
        owner_name="The Owner",
        snapshot_id=snapshot,
        total=n + 2,
        url=f"https://open.spotify.com/playlist/{playlist_id}",
    )
    return FetchResult(
        meta, make_tracks(n, start=start, features=features), {"local": 1, "episode": 1}
    )


def make_analysis(fetched: FetchResult, k: int = 3) -> Analysis:
    tracks = fetched.tracks
    assignments = {t.id: i % k for i, t in enumerate(tracks)}
    clusters = []
    for c in range(k):
        ids = [t.id for t in tracks if assignments[t.id] == c]
        clusters.append(
            Cluster(
                index=c,
                name=f"Cluster {c + 1} · fast",
                description="fast · high energy",
                size=len(ids),
                centroid={"energy": 0.1 * c, "tempo": 120.0 + c},
                track_ids=ids,
                representative_ids=ids[:10],
            )
        )
    return Analysis(
        source=fetched.meta,
        tracks=tracks,
        clusters=clusters,
        assignments=assignments,
        coords={t.id: [float(i), float(-i)] for i, t in enumerate(tracks)},
        k=k,
        k_requested=None,
        feature_mode="audio",
        feature_names=list(AUDIO_FEATURES),
        coverage={"reccobeats": len(tracks)},
        skipped=dict(fetched.skipped),
        silhouette=0.31,
    )


def make_rendered(analysis: Analysis) -> Rendered:
    return Rendered(
        png=b"\x89PNG\r\n\x1a\nfake",
        markdown=f"# {analysis.source.name}\n",
        csv="track_id,cluster\n" + "".join(f"{t},{c}\n" for t, c in analysis.assignments.items()),
        summary={"k": analysis.k, "n_tracks": len(analysis.tracks)},
    )
