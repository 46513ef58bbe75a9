"""Rebuild ``bench/data/tracks_10k.csv.gz`` from the TidyTuesday Spotify songs file.

The benchmark playlists are made of *real* tracks: 10,000 unique track ids (seeded random
sample of the ~28k unique ids in the file, kept in file order) with their metadata and
audio features. Run once; the output is committed so benchmarks need no shared data.

    python -m bench.make_data [--source PATH] [--n 10000]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_SOURCE = Path(__file__).parent / "data" / "tidytuesday_2020-01-21.csv.gz"
OUT = Path(__file__).parent / "data" / "tracks_10k.csv.gz"
# Every column of the TidyTuesday file, in its order, except playlist_id: one row per unique
# track, so the playlist id of whichever row was kept would mean nothing.
DROPPED = ["playlist_id"]


def build(source: Path, n: int, out: Path, seed: int = 7) -> pd.DataFrame:
    """Write ``n`` unique real tracks (seeded sample, file order) to ``out`` (gzip CSV)."""
    import pandas as pd  # only needed to rebuild the data

    df = pd.read_csv(source, dtype={"track_album_release_date": str})
    unique = df.drop_duplicates("track_id", keep="first")
    unique = unique.dropna(subset=["track_id", "track_name", "track_artist"])
    if len(unique) < n:
        raise SystemExit(f"only {len(unique)} unique tracks in {source}, need {n}")
    picked = unique.sample(n=n, random_state=seed).sort_index().drop(columns=DROPPED)
    out.parent.mkdir(parents=True, exist_ok=True)
    picked.to_csv(out, index=False, compression={"method": "gzip", "mtime": 0})
    return picked


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    picked = build(args.source, args.n, args.out)
    print(f"wrote {len(picked)} tracks to {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
