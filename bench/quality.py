"""Clustering quality on mixes of real playlists (TidyTuesday 2020-01-21 Spotify data).

Two kinds of mix, tracks found in more than one of the chosen playlists dropped:

* **genres** — 2–6 real playlists of *different* genres;
* **subgenres** — 2–4 real playlists of *one* genre, each of a different subgenre (hard rock +
  classic rock + album rock…): the hard case, where sound differs least.

Each mix is clustered and scored by how well the clusters follow the source playlists (NMI and
ARI, 1.0 = perfect), with k = number of playlists and with k chosen automatically. For auto k it
also reports how often k is within ±1 of the number of playlists, and clusters smaller than
``bot.clustering.min_cluster_size``. "baseline" is plain k-means on the 9 raw audio features
(auto k: best silhouette); "ours" is the shipped method (:func:`bot.clustering.analyze` on
:func:`bot.features.matrix.build_matrix`). The clustering never sees the playlist columns
(name, id, genre, subgenre): they are the answer. The description audit counts words of the
shipped descriptions contradicted by the cluster's own tracks (see ``CLAIMS``).

The bench's playlists have 77 ± 12 tracks each (after dropping shared tracks), so a mix's size
alone tells roughly how many playlists it has: k = round(tracks / 80) is within ±1 in 99–100 %
of the mixes of seeds 0–2 (bench/k_study.py). ``--share`` keeps a random share (30–100 %) of
each playlist's tracks, so the size no longer carries the answer (and playlists differ in size):
check the k figures there too. ``--held-out`` draws only the half of the playlists
``bench/within_playlist.py`` did not learn the within-playlist metric from (see :func:`split`):
the figures that can't have been fitted to.

    python bench/quality.py [--draws 40] [--hard 30] [--seed 0] [--csv PATH] [--variants]
                            [--no-baseline] [--share] [--held-out]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import clustering
from bot.demo import track_from_row
from bot.features import matrix
from bot.models import AUDIO_FEATURES, Analysis, FetchResult, PlaylistMeta, Track

# The whole real TidyTuesday 2020-01-21 dataset (32,833 rows, 471 playlists), bundled gzipped.
DEFAULT_CSV = Path(__file__).resolve().parent / "data" / "tidytuesday_2020-01-21.csv.gz"
MIN_PLAYLIST = 40


@dataclass
class Mix:
    tracks: list[Track]
    truth: np.ndarray  # source playlist per track (0..m-1)
    genre_of: dict[str, str]  # track id -> its playlist's genre (for the audit only)
    hard: bool  # one genre's subgenres


@dataclass
class Result:
    labels: np.ndarray  # cluster per track, in the mix's order
    analysis: Analysis | None = None


Method = Callable[[list[Track], int | None], Result]


def split(df: pd.DataFrame, part: str) -> pd.DataFrame:
    """The playlists ``bench/within_playlist.py`` may learn from (``"fit"``, half of them by a
    hash of the playlist id) or the other half (``"held-out"``), which quality figures of the
    learned metric must be measured on."""
    half = df["playlist_id"].map(lambda p: zlib.crc32(p.encode()) % 2)
    return df[half == (0 if part == "fit" else 1)]


def draws(df: pd.DataFrame, n: int, seed: int, *, hard: bool = False) -> list[Mix]:
    """n random mixes of 2–6 playlists of different genres, or (``hard``) of 2–4 playlists
    of different subgenres of one genre."""
    rng = np.random.default_rng(seed + (1000 if hard else 0))
    sizes = df.groupby("playlist_id")["track_id"].nunique()
    genre = df.groupby("playlist_id")["playlist_genre"].first()
    subgenre = df.groupby("playlist_id")["playlist_subgenre"].first()
    ok = sizes[sizes >= MIN_PLAYLIST].index
    by_genre = {g: sorted(p for p in ok if genre[p] == g) for g in sorted(genre.unique())}
    by_sub: dict[tuple[str, str], list[str]] = {}
    for p in sorted(ok):
        by_sub.setdefault((genre[p], subgenre[p]), []).append(p)
    out = []
    for _ in range(n):
        if hard:
            g = sorted(by_genre)[int(rng.integers(len(by_genre)))]
            subs = sorted(s for gg, s in by_sub if gg == g)
            m = int(rng.integers(2, len(subs) + 1))
            groups = [by_sub[(g, s)] for s in rng.choice(subs, size=m, replace=False)]
        else:
            m = int(rng.integers(2, 7))
            groups = [by_genre[g] for g in rng.choice(sorted(by_genre), size=m, replace=False)]
        pids = [grp[int(rng.integers(len(grp)))] for grp in groups]
        rows = df[df["playlist_id"].isin(pids)].drop_duplicates(["playlist_id", "track_id"])
        counts = rows["track_id"].value_counts()
        rows = rows[rows["track_id"].map(counts) == 1]
        rows = rows.sample(frac=1.0, random_state=int(rng.integers(1 << 31)))  # shuffle
        records = rows.to_dict("records")
        out.append(
            Mix(
                # track_from_row reads the track's own columns only, never the playlist's
                tracks=[track_from_row(r) for r in records],
                truth=rows["playlist_id"].map({p: i for i, p in enumerate(pids)}).to_numpy(),
                genre_of={r["track_id"]: r["playlist_genre"] for r in records},
                hard=hard,
            )
        )
    return out


def share(mix: Mix, seed: int, low: float = 0.3) -> Mix:
    """``mix`` with a random share (uniform in ``low``–1) of each playlist's tracks kept."""
    rng = np.random.default_rng(seed)
    kept = rng.uniform(low, 1.0, size=int(mix.truth.max()) + 1)[mix.truth]
    rows = np.flatnonzero(rng.random(len(mix.tracks)) < kept)
    return Mix([mix.tracks[i] for i in rows], mix.truth[rows], mix.genre_of, mix.hard)


def baseline(tracks: list[Track], k: int | None) -> Result:
    X = np.array([[t.features[f] for f in AUDIO_FEATURES] for t in tracks])
    if k is None:  # the textbook rule: best silhouette over k = 2..max
        k = max(
            range(2, clustering.max_auto_k(len(tracks)) + 1),
            key=lambda j: silhouette_score(X, clustering.fit_labels(X, j)),
        )
    return Result(KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(X))


def ours_with(*, audio: bool = True, popularity: bool = True, **kw) -> Method:
    """The shipped method; ``audio``/``popularity`` False hide those fields (dev-mode cases)."""

    def run(tracks: list[Track], k: int | None) -> Result:
        values = {t.id: t.features for t in tracks} if audio else {}
        if not popularity:
            tracks = [replace(t, popularity=None) for t in tracks]
        fm = matrix.build_matrix(tracks, values, dict.fromkeys(values, "csv"), **kw)
        fetched = FetchResult(meta=PlaylistMeta(id="mix", name="mix"), tracks=tracks)
        analysis = clustering.analyze(fetched, fm, k)
        return Result(np.array([analysis.assignments[t.id] for t in tracks]), analysis)

    return run


# --- description audit -----------------------------------------------------------------------
# What each word claims of a track, in plain terms. Written out here, apart from
# bot.clustering, so the audit checks the shipped rules instead of repeating their code. A word
# is contradicted when at most half of the cluster's tracks (with known values) satisfy it.
CLAIMS: dict[str, Callable[[dict[str, float]], bool]] = {
    "danceable": lambda f: f["danceability"] >= 0.6,
    "not danceable": lambda f: f["danceability"] < 0.5,
    "high energy": lambda f: f["energy"] >= 0.7,
    "calm": lambda f: f["energy"] < 0.5,
    "loud": lambda f: f["loudness"] >= -6,
    "quiet": lambda f: f["loudness"] < -10,
    "wordy": lambda f: f["speechiness"] >= 0.15,
    "acoustic": lambda f: f["acousticness"] >= 0.5,
    "electronic": lambda f: f["acousticness"] < 0.15 and f["danceability"] >= 0.65,
    "instrumental": lambda f: f["instrumentalness"] > 0.5,
    "live": lambda f: f["liveness"] >= 0.6,
    "happy": lambda f: f["valence"] >= 0.6,
    "sad": lambda f: f["valence"] < 0.4,
    "fast": lambda f: f["tempo"] >= 120,
    "slow": lambda f: f["tempo"] < 100,
    "popular": lambda f: f["popularity"] >= 60,
    "deep cuts": lambda f: f["popularity"] < 30,
    "long": lambda f: f["duration_min"] >= 4.5,
    "short": lambda f: f["duration_min"] < 3,
    "explicit": lambda f: f["explicit"] > 0.5,
    "clean": lambda f: f["explicit"] < 0.5,
}
# Words a cluster made mostly of one genre's tracks (the source playlists' genre, known to the
# bench only) must not carry — the complaints of issue #12: "electronic" rock, "acoustic" EDM.
WRONG_FOR_GENRE = {"rock": {"electronic"}, "edm": {"acoustic", "calm"}}


def audit(analysis: Analysis, genre_of: dict[str, str]) -> tuple[Counter[str], int]:
    """(words contradicted by the cluster's own tracks, per word; words used)."""
    wrong: Counter[str] = Counter()
    used = 0
    years = {t.id: matrix.release_year(t.release_date) for t in analysis.tracks}
    for c in analysis.clusters:
        if c.size == len(analysis.assignments):
            continue  # one cluster: its description is a sentence, not words
        members = set(c.track_ids)
        feats = [analysis.features.get(t, {}) for t in c.track_ids]
        inside = [years[t] for t in c.track_ids if np.isfinite(years[t])]
        rest = [y for t, y in years.items() if t not in members and np.isfinite(y)]
        genre = Counter(genre_of.get(t, "") for t in c.track_ids).most_common(1)[0][0]
        for w in (w for w in c.description.split(" · ") if w):
            used += 1
            if w in WRONG_FOR_GENRE.get(genre, ()):
                ok = False
            elif w in CLAIMS:
                known = [f for f in feats if _knows(f, w)]
                ok = sum(CLAIMS[w](f) for f in known) * 2 > len(known)
            elif re.fullmatch(r"\d{4}s", w):
                ok = sum(int(w[:4]) <= y < int(w[:4]) + 10 for y in inside) * 2 > len(inside)
            elif w in ("recent", "older"):
                median = float(np.median(rest))
                ok = sum(y > median if w == "recent" else y < median for y in inside) * 2 > len(
                    inside
                )
            else:
                ok = True  # a genre tag (only with Spotify artist genres; none here)
            if not ok:
                wrong[w] += 1
    return wrong, used


def _knows(features: dict[str, float], word: str) -> bool:
    try:
        CLAIMS[word](features)
    except KeyError:
        return False
    return True


# --- scoring ---------------------------------------------------------------------------------


@dataclass
class Score:
    nmi: np.ndarray
    ari: np.ndarray
    k: np.ndarray  # clusters found per mix
    m: np.ndarray  # playlists per mix
    small: int  # mixes with a cluster under min_cluster_size
    secs: float
    wrong: Counter[str]
    words: int
    same_names: int  # analyses where two clusters' names share their words

    def line(self, name: str, auto: bool) -> str:
        k_part = (
            f"{self.k.mean():.1f} for {self.m.mean():.1f}; "
            f"±1 {np.mean(np.abs(self.k - self.m) <= 1):.0%}, "
            f"exact {np.mean(self.k == self.m):.0%}, small {self.small}"
            if auto
            else "= #playlists"
        )
        return (
            f"| {name} | {k_part} | {self.nmi.mean():.3f} ± {self.nmi.std():.3f} | "
            f"{self.ari.mean():.3f} ± {self.ari.std():.3f} | {self.secs:.2f} |"
        )


def score(method: Method, mixes: list[Mix], auto: bool) -> Score:
    nmi, ari, ks, ms, t0 = [], [], [], [], time.perf_counter()
    small = words = same_names = 0
    wrong: Counter[str] = Counter()
    for mix in mixes:
        m = len(set(mix.truth.tolist()))
        res = method(mix.tracks, None if auto else m)
        nmi.append(normalized_mutual_info_score(mix.truth, res.labels))
        ari.append(adjusted_rand_score(mix.truth, res.labels))
        sizes = np.bincount(res.labels)
        ks.append(int((sizes > 0).sum()))
        ms.append(m)
        small += int(sizes[sizes > 0].min() < clustering.min_cluster_size(len(mix.tracks)))
        if res.analysis is not None:
            w, n = audit(res.analysis, mix.genre_of)
            wrong += w
            words += n
            names = [c.name.split(" · ", 1)[-1] for c in res.analysis.clusters]
            same_names += len(names) != len(set(names))
    return Score(
        np.array(nmi),
        np.array(ari),
        np.array(ks),
        np.array(ms),
        small,
        (time.perf_counter() - t0) / len(mixes),
        wrong,
        words,
        same_names,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=40, help="mixes of different genres")
    ap.add_argument("--hard", type=int, default=30, help="mixes of one genre's subgenres")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--variants", action="store_true", help="also score ablations")
    ap.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip plain k-means (its auto k fits every k: the slowest part of a run)",
    )
    ap.add_argument(
        "--held-out",
        action="store_true",
        help="draw only playlists bench/within_playlist.py did not learn from",
    )
    ap.add_argument(
        "--share",
        action="store_true",
        help="keep a random 30-100%% of each playlist, so a mix's size does not tell its k",
    )
    args = ap.parse_args(argv)

    threadpool_limits(1)  # as in production (bot.clustering.analyze): no OpenMP oversubscription
    df = pd.read_csv(args.csv, dtype=str, keep_default_na=False)
    if args.held_out:
        df = split(df, "held-out")
    mixes = draws(df, args.draws, args.seed) + draws(df, args.hard, args.seed, hard=True)
    if args.share:
        mixes = [share(mix, args.seed * 1000 + i) for i, mix in enumerate(mixes)]
    n_tracks = [len(m.tracks) for m in mixes]
    print(
        f"{args.draws} mixes of 2–6 real playlists of different genres + {args.hard} mixes of "
        f"2–4 playlists of one genre's subgenres; {min(n_tracks)}–{max(n_tracks)} tracks each "
        f"(seed {args.seed}{', a random 30–100 % of each playlist' if args.share else ''}"
        f"{', held-out playlists only' if args.held_out else ''})\n"
    )
    methods: dict[str, Method] = (
        {} if args.no_baseline else {"baseline: k-means, 9 raw audio features": baseline}
    )
    methods["ours (shipped)"] = ours_with()
    if args.variants:
        methods["ours, audio only (no metadata, no artists)"] = ours_with(
            use_metadata=False, artist_blend=0.0
        )
        methods["ours without artist context"] = ours_with(artist_blend=0.0)
        methods["ours without the within-playlist metric"] = ours_with(whiten=False)
        methods["ours, dev-mode fields (no popularity)"] = ours_with(popularity=False)
        methods["ours, metadata only (no audio features, no popularity)"] = ours_with(
            audio=False, popularity=False
        )
    print(
        "| method | k (auto: mean k for mean #playlists) | NMI mean ± sd | ARI mean ± sd | s/mix |"
    )
    print("|:---|:---|---:|---:|---:|")
    shipped: dict[bool, Score] = {}
    for name, method in methods.items():
        for auto in (False, True):
            s = score(method, mixes, auto)
            print(s.line(name, auto), flush=True)
            if name == "ours (shipped)":
                shipped[auto] = s
    auto, fixed = shipped[True], shipped[False]
    hard = np.array([m.hard for m in mixes])
    print(
        f"\nours, auto k: k within ±1 of the number of playlists in "
        f"{np.mean(np.abs(auto.k - auto.m) <= 1):.0%} of mixes "
        f"(genres {np.mean(np.abs(auto.k - auto.m)[~hard] <= 1):.0%}, "
        f"subgenres {np.mean(np.abs(auto.k - auto.m)[hard] <= 1):.0%}), exact "
        f"{int((auto.k == auto.m).sum())}/{len(mixes)}; mean k {auto.k.mean():.1f} for "
        f"{auto.m.mean():.1f} playlists; mixes with a cluster under max(3, 3 %): {auto.small}"
    )
    for label, sel in (("genres", ~hard), ("subgenres", hard)):
        print(
            f"  {label}: NMI auto {auto.nmi[sel].mean():.3f} vs k = #playlists "
            f"{fixed.nmi[sel].mean():.3f}; ARI {auto.ari[sel].mean():.3f} vs "
            f"{fixed.ari[sel].mean():.3f}"
        )
    print(
        f"description audit (auto k): {sum(auto.wrong.values())} of {auto.words} words "
        f"contradicted by the cluster's own tracks"
        + (f" ({', '.join(f'{w} {n}' for w, n in auto.wrong.most_common())})" if auto.wrong else "")
        + f"; analyses with two clusters named alike: {auto.same_names}"
    )


if __name__ == "__main__":
    main()
