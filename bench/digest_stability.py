"""How many tracks change cluster between two digests of a playlist that barely changed.

Real playlists of the TidyTuesday 2020-01-21 data (bundled): each is clustered (auto k, as a
digest does by default), then edited three ways — one track removed, five tracks of other
playlists added, 10 % of its tracks removed — and clustered again, once from scratch (what
digests did before) and once warm-started from the first result (``previous=``, what they do
now, :mod:`bot.warm_start`). "Moved" counts the tracks in both versions whose cluster is not
the counterpart of their old one (clusters matched by shared tracks, as the digest's "What
changed" counts them: :func:`bot.digests.summarize_changes`); "renumbered" counts continuing
clusters whose number changed (old "Cluster 3" is now "Cluster 1").

Only the tracks' audio features reach the clustering (no playlist columns, no metadata).

    python bench/digest_stability.py [--playlists 40] [--seed 0] [--k K] [--csv PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.digests import summarize_changes
from bot.jobs.cpu import cluster_step
from bot.models import AUDIO_FEATURES, Analysis, FeatureTable, FetchResult, PlaylistMeta, Track

DEFAULT_CSV = Path(__file__).resolve().parent / "data" / "tidytuesday_2020-01-21.csv.gz"
MIN_TRACKS = 40
EDITS = ("remove 1", "add 5", "remove 10%")


def _track(row: dict) -> Track:
    # The track id and its 9 audio features, nothing else (no playlist columns).
    return Track(id=row["track_id"], name="", features={f: float(row[f]) for f in AUDIO_FEATURES})


def cluster(
    tracks: list[Track], previous: Analysis | None = None, k: int | None = None
) -> Analysis:
    table = FeatureTable(
        values={t.id: dict(t.features or {}) for t in tracks},
        sources=dict.fromkeys((t.id for t in tracks), "csv"),
    )
    fetched = FetchResult(PlaylistMeta(id="p", name="p"), tracks)
    return cluster_step(
        fetched, table, k, 0, dict(previous.assignments) if previous is not None else None
    )


def edit(tracks: list[Track], how: str, pool: list[Track], rng: np.random.Generator) -> list[Track]:
    if how == "remove 1":
        drop = {int(rng.integers(len(tracks)))}
    elif how == "remove 10%":
        drop = set(rng.choice(len(tracks), size=max(1, len(tracks) // 10), replace=False).tolist())
    else:
        present = {t.id for t in tracks}
        extra = [pool[i] for i in rng.permutation(len(pool))[:50] if pool[i].id not in present]
        return tracks + extra[:5]
    return [t for i, t in enumerate(tracks) if i not in drop]


def renumbered(before: Analysis, after: Analysis) -> int:
    changes = summarize_changes(before, after)
    return sum(1 for c in changes.clusters if c.previous_index not in (None, c.index))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--playlists", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=None, help="fixed k (default: automatic)")
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    args = ap.parse_args()

    df = pd.read_csv(args.csv).dropna(subset=list(AUDIO_FEATURES))
    df = df.drop_duplicates(["playlist_id", "track_id"])
    sizes = df.groupby("playlist_id")["track_id"].size()
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(sorted(sizes[sizes >= MIN_TRACKS].index), args.playlists, replace=False)
    pool = [_track(r) for r in df.drop_duplicates("track_id").to_dict("records")]

    moved: dict[tuple[str, str], list[int]] = {}
    renum: dict[tuple[str, str], list[int]] = {}
    kept: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for pid in chosen:
        tracks = [_track(r) for r in df[df["playlist_id"] == pid].to_dict("records")]
        base = cluster(tracks, k=args.k)
        for how in EDITS:
            edited = edit(tracks, how, pool, rng)
            kept.setdefault(how, []).append(len({t.id for t in edited} & {t.id for t in tracks}))
            for mode, prev in (("fresh", None), ("warm", base)):
                after = cluster(edited, prev, args.k)
                moved.setdefault((how, mode), []).append(summarize_changes(base, after).moved)
                renum.setdefault((how, mode), []).append(renumbered(base, after))
    elapsed = time.perf_counter() - t0

    print(
        f"{len(chosen)} real playlists of >= {MIN_TRACKS} tracks (median "
        f"{int(np.median([sizes[p] for p in chosen]))}), "
        f"{'auto k' if args.k is None else f'k = {args.k}'}, audio features only; "
        f"{elapsed:.0f} s"
    )
    print(
        f"{'edit':<11} {'clustering':<10} {'tracks moved (total)':>21} {'mean':>6} "
        f"{'median':>6} {'max':>4} {'no move':>8} {'renumbered clusters':>20}"
    )
    for how in EDITS:
        total_kept = sum(kept[how])
        for mode in ("fresh", "warm"):
            m = moved[(how, mode)]
            r = renum[(how, mode)]
            print(
                f"{how:<11} {mode:<10} {sum(m):>8} of {total_kept:>6} "
                f"({100 * sum(m) / total_kept:4.1f}%) {statistics.mean(m):>6.1f} "
                f"{statistics.median(m):>6.0f} {max(m):>4} "
                f"{sum(x == 0 for x in m):>4}/{len(m):<3} "
                f"{sum(r):>12} in {sum(x > 0 for x in r)} runs"
            )


if __name__ == "__main__":
    main()
