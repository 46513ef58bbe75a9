"""The bundled demo: a mix of real playlists from the TidyTuesday 2020-01-21 Spotify data.

``bot/demo_data/demo_mix.csv`` holds real rows (real Spotify track ids, names, artists,
albums, release dates, popularity and audio features) of five playlists of different genres,
deduplicated by track id (tracks that appear in more than one of them were dropped):

* "’80s Hard Rock" (rock), "Trap Nation" (rap), "Neo-Soul" (r&b),
  "Big Room EDM" (edm), "Vibra Tropical" (latin)

— see :data:`DEMO_PLAYLISTS`. The file keeps the source's column names, plus nothing else, so
:func:`tracks_from_tidytuesday` reads both it and the full shared CSV (bench/quality.py). The
``playlist_name`` column is kept for evaluation only; clustering never sees it.
Rebuild with ``python -m bot.demo build /path/to/spotify_songs.csv``.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from importlib import resources
from pathlib import Path

from bot.models import AUDIO_FEATURES, FetchResult, PlaylistMeta, Track

DEMO_FILE = "demo_mix.csv"
DEMO_ID = "demo:tidytuesday-mix"
DEMO_NAME = "Demo mix (5 real playlists, TidyTuesday 2020)"
# playlist_id -> name, as in the TidyTuesday data
DEMO_PLAYLISTS: dict[str, str] = {
    "37i9dQZF1DX68H8ZujdnN7": "’80s Hard Rock",
    "0NCspsyf0OS4BsPgGhkQXM": "Trap Nation",
    "1eqVgsNjaX6mxDPoefhocT": "Neo-Soul",
    "3S03NWbWkrR1e7DPH9rf9Z": "Big Room EDM",
    "37i9dQZF1DX3fXJqxGjuEP": "Vibra Tropical",
}
TRACKS_PER_PLAYLIST = 60

COLUMNS = [
    "track_id",
    "track_name",
    "track_artist",
    "track_popularity",
    "track_album_id",
    "track_album_name",
    "track_album_release_date",
    "playlist_name",
    "playlist_id",
    "playlist_genre",
    "playlist_subgenre",
    *AUDIO_FEATURES,
    "key",
    "mode",
    "duration_ms",
]


def _float(v: str | None) -> float | None:
    try:
        f = float(v) if v not in (None, "") else None
    except ValueError:
        return None
    return f if f is not None and math.isfinite(f) else None


def track_from_row(row: dict[str, str]) -> Track:
    """One TidyTuesday row as a Track with its audio features."""
    feats = {f: _float(row.get(f)) for f in (*AUDIO_FEATURES, "key", "mode")}
    features = {k: v for k, v in feats.items() if v is not None}
    pop = _float(row.get("track_popularity"))
    dur = _float(row.get("duration_ms"))
    artists = [a for a in (row.get("track_artist") or "").split(", ") if a]
    return Track(
        id=row["track_id"],
        name=row.get("track_name") or "",
        artists=artists,
        album=row.get("track_album_name") or "",
        album_id=row.get("track_album_id") or None,
        release_date=row.get("track_album_release_date") or None,
        duration_ms=int(dur) if dur is not None else None,
        popularity=int(pop) if pop is not None else None,
        features=features if all(f in features for f in AUDIO_FEATURES) else None,
    )


def tracks_from_tidytuesday(text: str) -> tuple[list[Track], dict[str, str]]:
    """Parse TidyTuesday-format CSV text → (unique tracks in order, track id → playlist name)."""
    tracks: list[Track] = []
    playlist_of: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        tid = row.get("track_id")
        if not tid or tid in playlist_of:
            continue
        playlist_of[tid] = row.get("playlist_name", "")
        tracks.append(track_from_row(row))
    return tracks, playlist_of


def demo_text() -> str:
    return resources.files("bot").joinpath("demo_data", DEMO_FILE).read_text(encoding="utf-8")


def load_demo() -> FetchResult:
    """The bundled real playlist mix as a FetchResult (no network)."""
    tracks, _ = tracks_from_tidytuesday(demo_text())
    meta = PlaylistMeta(
        id=DEMO_ID,
        name=DEMO_NAME,
        kind="demo",
        snapshot_id="v1",
        total=len(tracks),
        description="Real tracks from: " + ", ".join(DEMO_PLAYLISTS.values()),
    )
    return FetchResult(meta=meta, tracks=tracks, skipped={})


def demo_labels() -> dict[str, str]:
    """Track id → source playlist name (for evaluating the clustering on the demo)."""
    return tracks_from_tidytuesday(demo_text())[1]


def build(source_csv: Path, out: Path) -> int:
    """Write the demo file from the full TidyTuesday CSV. Returns the number of rows."""
    import pandas as pd

    df = pd.read_csv(source_csv)
    df = df[df["playlist_id"].isin(DEMO_PLAYLISTS)]
    counts = df["track_id"].value_counts()
    df = df[df["track_id"].map(counts) == 1]  # in exactly one of the chosen playlists
    df = df.drop_duplicates("track_id")
    parts = [
        g.sort_values("track_id").head(TRACKS_PER_PLAYLIST)
        for _, g in df.groupby("playlist_id", sort=True)
    ]
    mix = pd.concat(parts).sort_values(["track_album_release_date", "track_id"])
    mix[COLUMNS].to_csv(out, index=False)
    return len(mix)


if __name__ == "__main__":  # pragma: no cover - maintenance helper
    if len(sys.argv) == 3 and sys.argv[1] == "build":
        target = Path(__file__).parent / "demo_data" / DEMO_FILE
        print(build(Path(sys.argv[2]), target), "rows ->", target)
    else:
        print("usage: python -m bot.demo build /path/to/spotify_songs.csv")
