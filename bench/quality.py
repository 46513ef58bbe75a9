"""Clustering quality on mixes of real playlists (TidyTuesday 2020-01-21 Spotify data).

Each draw mixes 3–6 real playlists of *different* genres (tracks found in more than one of
the chosen playlists are dropped), clusters the mix, and scores how well the clusters follow
the source playlists (NMI and ARI, 1.0 = perfect). "baseline" is plain k-means on the 9 raw
audio features; "ours" is the shipped method (:func:`bot.clustering.fit` on
:func:`bot.features.matrix.build_matrix`). Both are scored with k = number of playlists and
with k chosen automatically (baseline: best silhouette on the raw features).

    python bench/quality.py [--draws 60] [--seed 0] [--csv PATH] [--variants]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import clustering
from bot.demo import track_from_row
from bot.features import matrix
from bot.models import AUDIO_FEATURES, Track

# The whole real TidyTuesday 2020-01-21 dataset (32,833 rows, 471 playlists), bundled gzipped.
DEFAULT_CSV = Path(__file__).resolve().parent / "data" / "tidytuesday_2020-01-21.csv.gz"
MIN_PLAYLIST = 40

Method = Callable[[list[Track], int | None], np.ndarray]


def draws(df: pd.DataFrame, n: int, seed: int) -> list[tuple[list[Track], np.ndarray]]:
    """n random mixes: (tracks, true playlist label per track)."""
    rng = np.random.default_rng(seed)
    sizes = df.groupby("playlist_id")["track_id"].nunique()
    genre = df.groupby("playlist_id")["playlist_genre"].first()
    ok = sizes[sizes >= MIN_PLAYLIST].index
    by_genre = {g: sorted(p for p in ok if genre[p] == g) for g in sorted(genre.unique())}
    out = []
    for _ in range(n):
        m = int(rng.integers(3, 7))
        genres = rng.choice(sorted(by_genre), size=m, replace=False)
        pids = [by_genre[g][int(rng.integers(len(by_genre[g])))] for g in genres]
        rows = df[df["playlist_id"].isin(pids)].drop_duplicates(["playlist_id", "track_id"])
        counts = rows["track_id"].value_counts()
        rows = rows[rows["track_id"].map(counts) == 1]
        rows = rows.sample(frac=1.0, random_state=int(rng.integers(1 << 31)))  # shuffle
        tracks = [track_from_row(r) for r in rows.to_dict("records")]
        labels = rows["playlist_id"].map({p: i for i, p in enumerate(pids)}).to_numpy()
        out.append((tracks, labels))
    return out


def baseline(tracks: list[Track], k: int | None) -> np.ndarray:
    X = np.array([[t.features[f] for f in AUDIO_FEATURES] for t in tracks])
    if k is not None:
        return KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(X)
    _, labels, _ = clustering.choose_k(X, 0)
    return labels


def ours_with(*, audio: bool = True, popularity: bool = True, **kw) -> Method:
    """The shipped method; ``audio``/``popularity`` False hide those fields (dev-mode cases)."""

    def run(tracks: list[Track], k: int | None) -> np.ndarray:
        values = {t.id: t.features for t in tracks} if audio else {}
        if not popularity:
            tracks = [replace(t, popularity=None) for t in tracks]
        fm = matrix.build_matrix(tracks, values, dict.fromkeys(values, "csv"), **kw)
        labels = clustering.fit(fm, k).labels
        pos = {tid: i for i, tid in enumerate(fm.ids)}
        return np.array([labels[pos[t.id]] for t in tracks])

    return run


def score(method: Method, mixes, auto: bool) -> tuple[np.ndarray, np.ndarray, float]:
    nmi, ari, t0 = [], [], time.perf_counter()
    for tracks, truth in mixes:
        pred = method(tracks, None if auto else len(set(truth.tolist())))
        nmi.append(normalized_mutual_info_score(truth, pred))
        ari.append(adjusted_rand_score(truth, pred))
    return np.array(nmi), np.array(ari), (time.perf_counter() - t0) / len(mixes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--variants", action="store_true", help="also score ablations")
    args = ap.parse_args(argv)

    threadpool_limits(1)  # as in production (bot.clustering.analyze): no OpenMP oversubscription
    df = pd.read_csv(args.csv, dtype=str, keep_default_na=False)
    mixes = draws(df, args.draws, args.seed)
    n_tracks = [len(t) for t, _ in mixes]
    print(
        f"{len(mixes)} mixes of 3–6 real playlists of different genres, "
        f"{min(n_tracks)}–{max(n_tracks)} tracks each (seed {args.seed})\n"
    )
    methods: dict[str, Method] = {
        "baseline: k-means, 9 raw audio features": baseline,
        "ours (shipped)": ours_with(),
    }
    if args.variants:
        methods["ours, audio only (no metadata, no artists)"] = ours_with(
            use_metadata=False, artist_blend=0.0
        )
        methods["ours without artist context"] = ours_with(artist_blend=0.0)
        methods["ours, dev-mode fields (no popularity)"] = ours_with(popularity=False)
        methods["ours, metadata only (no audio features, no popularity)"] = ours_with(
            audio=False, popularity=False
        )
        methods["ours, equal audio weights, no metadata, no artists"] = ours_with(
            use_metadata=False,
            audio_weights=dict.fromkeys(AUDIO_FEATURES, 1.0),
            artist_blend=0.0,
        )
    print("| method | k | NMI mean ± sd | ARI mean ± sd | s/mix |")
    print("|:---|:---|---:|---:|---:|")
    for name, method in methods.items():
        for auto in (False, True):
            nmi, ari, secs = score(method, mixes, auto)
            print(
                f"| {name} | {'auto' if auto else '= #playlists'} | "
                f"{nmi.mean():.3f} ± {nmi.std():.3f} | {ari.mean():.3f} ± {ari.std():.3f} | "
                f"{secs:.2f} |"
            )


if __name__ == "__main__":
    main()
