"""Clustering: choose k, fit, describe each cluster, and project to 2-D (scikit-learn).

Deterministic: rows are sorted by track id (see :mod:`bot.features.matrix`), every estimator
gets a fixed seed, and clusters are numbered by size (ties by their first track id), so the
same set of tracks gives the same result whatever the playlist order.

Why one module (~810 lines): choosing k, fitting, naming and projecting share the matrix
conventions and the tuning constants below, which bench/quality.py measures together. It has
grown past the size where naming should move out: the seam is the word tables and
:func:`describe` … :func:`split_by` (~290 lines) into their own module, with the tests that
patch their constants; not done at the close of the session that grew it, to keep the quality
figures measured on the code as it stands.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from bot import warm_start
from bot.errors import InvalidInput, TooSmall
from bot.features.matrix import FeatureMatrix
from bot.models import Analysis, Cluster, FetchResult, Track

MIN_TRACKS = 10
MAX_AUTO_K = 12
N_REPRESENTATIVES = 10
# The silhouette only words how apart the clusters are: on 1,000 rows its standard error is
# ~0.006, and at 10,000 tracks it costs 30 ms instead of 220 ms on 3,000 rows.
SILHOUETTE_SAMPLE = 1000
K_SEARCH_SAMPLE = 1000
# No cluster chosen automatically is smaller than this share of the playlist (or 3 tracks).
MIN_CLUSTER_SHARE = 0.03
MIN_CLUSTER_TRACKS = 3
GAP_REFERENCES = 10  # uniform reference data sets for the gap statistic (see choose_k)
# Restarts per gap reference set / per Gaussian mixture. Measured on the bench mixes, 3 / 2
# restarts: k within ±1 in 83 %, NMI 0.560, 139 s; 1 / 1: 86 %, 0.567, 102 s.
GAP_INITS = 1
GMM_INITS = 1
BIC_PATIENCE = 2  # the BIC search stops after this many k in a row that do not lower it
# A feature must differ between the cluster and the rest by this many sds to be named.
DESCRIBE_MIN_Z = 0.5
# Weaker contrasts may still be used to tell two clusters' names apart.
NAME_MIN_Z = 0.2
# Metadata words rank below sound words of the same strength; the year needs a big shift.
WORD_PRIORITY = {"popularity": 0.7, "duration_min": 0.6, "explicit": 0.7, "year": 0.8}
MIN_YEAR_Z = 1.0
# A decade is named only when its share of the cluster's tracks exceeds its share of the
# rest of the playlist by this much.
DECADE_LEAD = 0.25
# A word is said only when it holds for most (more than this share) of the cluster's tracks.
MOST = 0.5

Cols = dict[str, np.ndarray]


@dataclass(frozen=True)
class Word:
    """A describing word: said of a cluster whose ``feature`` is above (+1) or below (−1) the
    rest of the playlist, and only when ``holds`` is true for most of its tracks (plain terms,
    original units: e.g. "calm" = energy under 0.5)."""

    word: str
    feature: str
    direction: int
    holds: Callable[[Cols], np.ndarray]  # raw columns of the members → bool per track
    needs: tuple[str, ...] = ()  # other columns ``holds`` reads


def _above(feature: str, level: float) -> Callable[[Cols], np.ndarray]:
    return lambda c: c[feature] >= level


def _below(feature: str, level: float) -> Callable[[Cols], np.ndarray]:
    return lambda c: c[feature] < level


# Levels from Spotify's feature definitions and the TidyTuesday data (32,833 real tracks):
# energy median 0.72, acousticness median 0.08, 90th percentile of speechiness 0.26.
WORD_LIST: tuple[Word, ...] = (
    Word("danceable", "danceability", +1, _above("danceability", 0.6)),
    Word("not danceable", "danceability", -1, _below("danceability", 0.5)),
    Word("high energy", "energy", +1, _above("energy", 0.7)),
    Word("calm", "energy", -1, _below("energy", 0.5)),
    Word("loud", "loudness", +1, _above("loudness", -6.0)),
    Word("quiet", "loudness", -1, _below("loudness", -10.0)),
    Word("wordy", "speechiness", +1, _above("speechiness", 0.15)),
    Word("acoustic", "acousticness", +1, _above("acousticness", 0.5)),
    # Low acousticness alone is rock as much as EDM: "electronic" also needs a danceable beat
    # (true of 44 % of EDM tracks, 9 % of rock tracks; with danceability >= 0.6: 57 % / 16 %,
    # and the bench's audit found a cheerful rock cluster called electronic).
    Word(
        "electronic",
        "acousticness",
        -1,
        lambda c: (c["acousticness"] < 0.15) & (c["danceability"] >= 0.65),
        needs=("danceability",),
    ),
    Word("instrumental", "instrumentalness", +1, lambda c: c["instrumentalness"] > 0.5),
    Word("live", "liveness", +1, _above("liveness", 0.6)),
    Word("happy", "valence", +1, _above("valence", 0.6)),
    Word("sad", "valence", -1, _below("valence", 0.4)),
    Word("fast", "tempo", +1, _above("tempo", 120.0)),
    Word("slow", "tempo", -1, _below("tempo", 100.0)),
    Word("popular", "popularity", +1, _above("popularity", 60.0)),
    Word("deep cuts", "popularity", -1, _below("popularity", 30.0)),
    Word("long", "duration_min", +1, _above("duration_min", 4.5)),
    Word("short", "duration_min", -1, _below("duration_min", 3.0)),
    Word("explicit", "explicit", +1, lambda c: c["explicit"] > 0.5),
    Word("clean", "explicit", -1, lambda c: c["explicit"] < 0.5),
)
# What each feature is about, for "split mostly by era and energy".
FEATURE_NOUNS: dict[str, str] = {
    "danceability": "danceability",
    "energy": "energy",
    "loudness": "loudness",
    "speechiness": "spoken words",
    "acousticness": "acoustic vs electronic sound",
    "instrumentalness": "vocals vs instrumentals",
    "liveness": "live sound",
    "valence": "mood",
    "tempo": "tempo",
    "popularity": "popularity",
    "duration_min": "length",
    "explicit": "explicit lyrics",
    "year": "era",
}


def max_auto_k(n: int) -> int:
    """Largest k tried automatically for n tracks."""
    return max(2, min(MAX_AUTO_K, n // 8))


def min_cluster_size(n: int) -> int:
    """Smallest cluster auto k may produce for n tracks: max(3, 3 % of n)."""
    return max(MIN_CLUSTER_TRACKS, math.ceil(MIN_CLUSTER_SHARE * n))


def validate(n: int, k: int | None) -> None:
    """Raise TooSmall / InvalidInput when n tracks cannot be split (into k clusters)."""
    if n < MIN_TRACKS:
        raise TooSmall(
            f"This playlist has only {n} playable track{'s' if n != 1 else ''} with features; "
            f"clustering needs at least {MIN_TRACKS}."
        )
    if k is not None and not 2 <= k <= n // 3:
        raise InvalidInput(
            f"k must be between 2 and {n // 3} for a playlist of {n} tracks "
            f"(at least 3 tracks per cluster); got {k}."
        )


def fit_labels(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Cluster labels for k clusters (k-means++ with 10 restarts, fixed seed)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(X)


def silhouette(X: np.ndarray, labels: np.ndarray, seed: int = 0) -> float | None:
    from sklearn.metrics import silhouette_score

    if len(set(labels.tolist())) < 2:
        return None
    sample = SILHOUETTE_SAMPLE if X.shape[0] > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(X, labels, sample_size=sample, random_state=seed))


def choose_k(X: np.ndarray, seed: int = 0) -> tuple[int, np.ndarray, float | None]:
    """Choose k in 2..max_auto_k(n) (see :func:`_search_k`) → (k, labels, silhouette).

    Large playlists search k on a fixed random subsample (``K_SEARCH_SAMPLE`` rows), then fit
    the chosen k on everything — keeps 10,000 tracks within a few seconds. Clusters under
    :func:`min_cluster_size` are merged into their nearest neighbour (:func:`merge_small`), so
    the returned k can be smaller than the one chosen, down to 1 when the tracks do not split.
    """
    n = X.shape[0]
    if distinct_rows(X) < 2:
        return 1, np.zeros(n, dtype=int), None
    if n > K_SEARCH_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(n, K_SEARCH_SAMPLE, replace=False))
        k = _search_k(X[rows], seed)
    else:
        k = _search_k(X, seed)
    labels = merge_small(X, fit_labels(X, k, seed), min_cluster_size(n))
    k = len(set(labels.tolist()))
    return k, labels, silhouette(X, labels, seed)


def _search_k(X: np.ndarray, seed: int) -> int:
    """k from two model-selection criteria, averaged and rounded up.

    * the gap statistic (Tibshirani, Walther & Hastie 2001): the smallest k whose k-means
      fit beats uniform reference data at least as much as k+1 does, within one standard
      error (reference data: uniform in the box of the data's principal axes);
    * BIC of a full-covariance Gaussian mixture (scikit-learn), k = 1 allowed.

    Only k whose k-means clusters all reach :func:`min_cluster_size` are candidates.
    Measured on 70 mixes of 2–6 real playlists (bench/quality.py, 40 of different genres,
    30 of one genre's subgenres), share of mixes with k within ±1 of the number of playlists
    / NMI: largest k within 15 % of the best silhouette (used before) 0.60 / 0.556; best
    silhouette 0.64 / 0.544; Calinski–Harabasz 0.61 / 0.525; Davies–Bouldin 0.59 / 0.552;
    split-half stability 0.70 / 0.554; gap alone 0.74 / 0.555; BIC alone 0.60 / 0.541;
    gap and BIC averaged 0.80 / 0.566 (exact k in 57 %); as shipped (10 reference sets,
    ``GAP_INITS``/``GMM_INITS``) 0.86 / 0.567. Tie-breaks between the two (Davies–Bouldin,
    silhouette, split-half stability), prediction strength and other gap references helped on
    seed 0 at best and lost on the held-out seeds 1 and 2 (README, "How clustering works").
    """
    n = X.shape[0]
    k_max = max_auto_k(n)
    smallest = min_cluster_size(n)
    search = _KSearch(X, seed, top=min(k_max + 1, n - 1))

    def ok(k: int) -> bool:
        return 2 <= k <= k_max and int(np.bincount(search.labels(k)).min()) >= smallest

    k_gap = next((k for k in range(2, k_max + 1) if ok(k) and search.gap_stops_at(k)), None)
    if k_gap is None:  # the gap never levels off: the largest candidate, if any
        k_gap = next((k for k in range(k_max, 1, -1) if ok(k)), None)
        if k_gap is None:
            return 2
    k_bic = search.lowest_bic(itertools.chain([1], (k for k in range(2, k_max + 1) if ok(k))))
    wanted = math.ceil((k_gap + k_bic) / 2)
    # the candidate nearest ``wanted`` (the smaller on a tie); k_gap is one, so this ends
    return next(k for d in range(k_max + 1) for k in (wanted - d, wanted + d) if ok(k))


class _KSearch:
    """What :func:`_search_k` needs, computed only when first asked for.

    The criteria are read from k = 1 upwards and stop early (the gap rule at its k, BIC after
    two k in a row that do not lower it), so the costly large-k fits are mostly skipped. The
    same k as fitting every k in all 210 bench mixes (seeds 0–2); CPU time of ``fit`` with auto
    k at 10,000 bundled tracks 1.29 s before, 0.34 s now (1,000 tracks: 0.99 s, 0.35 s).
    """

    def __init__(self, X: np.ndarray, seed: int, top: int) -> None:
        self.X, self.seed, self.top = X, seed, top
        self._labels: dict[int, np.ndarray] = {}
        self._gap: dict[int, tuple[float, float]] = {}
        self._refs: list[np.ndarray] | None = None

    def labels(self, k: int) -> np.ndarray:
        """The k-means partition for k (the one the final fit would give on these rows)."""
        if k not in self._labels:
            n = self.X.shape[0]
            self._labels[k] = fit_labels(self.X, k, self.seed) if k > 1 else np.zeros(n, int)
        return self._labels[k]

    def gap_stops_at(self, k: int) -> bool:
        """Tibshirani's rule: Gap(k) ≥ Gap(k+1) − s(k+1)."""
        if k + 1 > self.top:
            return False
        gap_k, _ = self.gap(k)
        gap_next, se_next = self.gap(k + 1)
        return gap_k >= gap_next - se_next

    def gap(self, k: int) -> tuple[float, float]:
        """Gap(k) and its standard error (Tibshirani et al. 2001)."""
        from sklearn.cluster import KMeans

        if k not in self._gap:
            refs = self.references()
            ref = np.array(
                [
                    math.log(
                        max(
                            KMeans(k, n_init=GAP_INITS, random_state=self.seed).fit(r).inertia_,
                            1e-12,
                        )
                    )
                    for r in refs
                ]
            )
            log_w = _log_dispersion(self.X, self.labels(k))
            se = float(ref.std()) * math.sqrt(1 + 1 / GAP_REFERENCES)
            self._gap[k] = (float(ref.mean()) - log_w, se)
        return self._gap[k]

    def references(self) -> list[np.ndarray]:
        """Uniform reference data sets in the box of the data's principal axes."""
        if self._refs is None:
            X = self.X
            rng = np.random.default_rng(self.seed)
            centre = X.mean(axis=0)
            _, _, vt = np.linalg.svd(X - centre, full_matrices=False)
            rotated = (X - centre) @ vt.T
            lo, hi = rotated.min(axis=0), rotated.max(axis=0)
            self._refs = [
                rng.uniform(lo, hi, size=rotated.shape) @ vt + centre for _ in range(GAP_REFERENCES)
            ]
        return self._refs

    def lowest_bic(self, candidates: Iterable[int]) -> int:
        """The candidate k with the lowest BIC, read upwards until two in a row do not lower
        it (on 70 × 3 bench mixes: the same k as trying them all, with 39 % of the fits)."""
        best, best_bic, worse = 1, math.inf, 0
        for k in candidates:
            bic = _bic(self.X, k, self.seed)
            if bic < best_bic:
                best, best_bic, worse = k, bic, 0
            else:
                worse += 1
                if worse >= BIC_PATIENCE:
                    break
        return best


def _log_dispersion(X: np.ndarray, labels: np.ndarray) -> float:
    """log of the pooled within-cluster sum of squares (k-means inertia)."""
    w = 0.0
    for c in np.unique(labels):
        rows = X[labels == c]
        w += float(((rows - rows.mean(axis=0)) ** 2).sum())
    return math.log(max(w, 1e-12))


def _bic(X: np.ndarray, k: int, seed: int) -> float:
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(
        k, covariance_type="full", n_init=GMM_INITS, reg_covar=1e-3, random_state=seed
    )
    return float(gm.fit(X).bic(X))


def distinct_rows(X: np.ndarray, limit: int = 2) -> int:
    """Number of distinct rows of X, counted up to ``limit`` (cheap test for 'all the same')."""
    if X.shape[0] == 0:
        return 0
    differs = np.any(np.abs(X - X[0]) > 1e-9, axis=1)
    return 1 if not differs.any() else min(limit, len(np.unique(X.round(9), axis=0)))


def merge_small(X: np.ndarray, labels: np.ndarray, smallest: int) -> np.ndarray:
    """Move the members of clusters under ``smallest`` tracks to the nearest remaining centre.

    The smallest cluster goes first and centres are recomputed after each merge, so a chain
    of small clusters ends up where it fits best; one cluster remains at worst.
    """
    labels = labels.copy()
    while True:
        sizes = Counter(labels.tolist())
        if len(sizes) < 2:
            return labels
        small, size = min(sizes.items(), key=lambda kv: (kv[1], kv[0]))
        if size >= smallest:
            return labels
        others = [c for c in sizes if c != small]
        centres = np.array([X[labels == c].mean(axis=0) for c in others])
        rows = np.flatnonzero(labels == small)
        dist = ((X[rows, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        labels[rows] = np.array(others)[dist.argmin(axis=1)]


@dataclass
class Fit:
    k: int
    labels: np.ndarray  # per matrix row, renumbered by size
    silhouette: float | None


def fit(
    fm: FeatureMatrix, k: int | None, seed: int = 0, previous: Mapping[str, int] | None = None
) -> Fit:
    """Validate, choose/fit k, and renumber clusters by size (largest first).

    Non-finite values never reach k-means (they count as 0, the scaled median). Tracks that
    all have the same features make one cluster, whatever k was asked for; a given k larger
    than the number of distinct tracks gives fewer, non-empty clusters (``Fit.k`` is the
    number of clusters actually found).

    ``previous``: the previous analysis's assignment (track id → cluster; digests): k-means
    starts from those clusters and the result is numbered like them (:func:`_fit_like`).
    """
    X = np.nan_to_num(fm.X, nan=0.0, posinf=0.0, neginf=0.0)
    n = X.shape[0]
    validate(n, k)
    if distinct_rows(X) < 2:
        labels, score = np.zeros(n, dtype=int), None
    elif previous and (like := _fit_like(X, fm.ids, k, previous, seed)) is not None:
        labels, score = like  # numbered like the previous clusters, not by size
        return Fit(k=len(set(labels.tolist())), labels=labels, silhouette=score)
    elif k is None:
        _, labels, score = choose_k(X, seed)
    else:
        labels = fit_labels(X, min(k, distinct_rows(X, limit=k)), seed)
        score = silhouette(X, labels, seed)
    labels = _renumber(labels, fm.ids)
    return Fit(k=len(set(labels.tolist())), labels=labels, silhouette=score)


def _fit_like(
    X: np.ndarray,
    ids: list[str],
    k: int | None,
    previous: Mapping[str, int],
    seed: int,
) -> tuple[np.ndarray, float | None] | None:
    """k-means started from the previous clusters, numbered like them (see
    :mod:`bot.warm_start`); None when none of their tracks is left. Auto k keeps the previous
    k unless :func:`choose_k` says the playlist changed shape (``warm_start.keeps_shape``;
    then its own fit is used, numbered like the previous clusters)."""
    start = warm_start.previous_centres(X, ids, previous)
    if start is None:
        return None
    if k is None:
        auto_k, labels, score = choose_k(X, seed)
        if not warm_start.keeps_shape(start.k, auto_k, start.changed):
            return warm_start.number_like(labels, ids, previous), score
        labels = warm_start.warm_labels(X, start, min(start.k, distinct_rows(X, start.k)), seed)
        labels = merge_small(X, labels, min_cluster_size(X.shape[0]))
    else:
        labels = warm_start.warm_labels(X, start, min(k, distinct_rows(X, limit=k)), seed)
    return warm_start.number_like(labels, ids, previous), silhouette(X, labels, seed)


def _renumber(labels: np.ndarray, ids: list[str]) -> np.ndarray:
    first_id: dict[int, str] = {}
    for lab, tid in zip(labels.tolist(), ids, strict=True):
        first_id.setdefault(lab, tid)
    sizes = Counter(labels.tolist())
    order = sorted(sizes, key=lambda lab: (-sizes[lab], first_id[lab]))
    remap = {old: new for new, old in enumerate(order)}
    return np.array([remap[lab] for lab in labels.tolist()], dtype=int)


# --- descriptions ------------------------------------------------------------------------


def describe(fm: FeatureMatrix, members: np.ndarray, *, max_words: int = 3) -> list[str]:
    """Distinguishing words for the rows in ``members`` (boolean mask), strongest first.

    A word is said when the cluster differs from the rest of the playlist in its direction
    (by ``DESCRIBE_MIN_Z`` sds) and it holds in plain terms for most of the cluster's tracks
    (see ``WORD_LIST``); a decade only when most of the tracks are from it.
    """
    words = [w for _, w in word_candidates(fm, members, DESCRIBE_MIN_Z)]
    genre = _top_genre(fm, members)
    if genre:
        words.insert(0, genre)
    return words[:max_words]


def word_candidates(
    fm: FeatureMatrix, members: np.ndarray, min_z: float
) -> list[tuple[float, str]]:
    """(strength, word) for every word that holds for ``members``, strongest first."""
    if members.all() or not members.any():
        return []  # nothing to contrast with
    contrast: dict[str, float] = {}
    for name, col in fm.scaled.items():
        sd = float(np.std(col))
        if sd > 1e-9:
            # contrast with the rest of the playlist (symmetric for k = 2, sharper than vs mean)
            contrast[name] = (float(col[members].mean()) - float(col[~members].mean())) / sd
    scored: list[tuple[float, str]] = []
    for w in WORD_LIST:
        if w.feature not in contrast or any(f not in fm.raw for f in w.needs):
            continue
        z = contrast[w.feature] * w.direction
        if z < min_z:
            continue
        if most(w.holds, {f: fm.raw[f][members] for f in (w.feature, *w.needs)}):
            scored.append((z * WORD_PRIORITY.get(w.feature, 1.0), w.word))
    year_z = contrast.get("year", 0.0)
    # descriptions need a big shift in year; names told apart (min_z below DESCRIBE_MIN_Z)
    # may use any year word that holds
    year_min = max(min_z, MIN_YEAR_Z) if min_z >= DESCRIBE_MIN_Z else max(min_z, 0.0)
    if "year" in fm.raw and abs(year_z) >= year_min and year_z != 0:
        word = _year_word(fm.raw["year"], members, year_z)
        if word:
            scored.append((abs(year_z) * WORD_PRIORITY["year"], word))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return scored


def most(holds: Callable[[Cols], np.ndarray], cols: Cols) -> bool:
    """True when ``holds`` is true for more than half of the tracks whose values are known."""
    known = np.all([np.isfinite(v) for v in cols.values()], axis=0)
    if not known.any():
        return False
    with np.errstate(invalid="ignore"):
        return float(np.mean(holds({f: v[known] for f, v in cols.items()}))) > MOST


def _year_word(years: np.ndarray, members: np.ndarray, z: float) -> str | None:
    """A decade when most of the cluster's tracks are from it, else "recent"/"older" when
    most are newer/older than the rest of the playlist's median year."""
    inside = years[members & np.isfinite(years)]
    rest = years[~members & np.isfinite(years)]
    if inside.size == 0 or rest.size == 0:
        return None
    decades = Counter((inside // 10 * 10).astype(int).tolist())
    decade, count = max(decades.items(), key=lambda kv: (kv[1], kv[0]))
    share_rest = float(np.mean(rest // 10 * 10 == decade))
    # most of its tracks, and clearly more than the rest of the playlist (else every cluster
    # of a mostly-2010s playlist would be "2010s")
    if count / inside.size > MOST and count / inside.size - share_rest >= DECADE_LEAD:
        return f"{decade}s"
    median = float(np.median(rest))
    if z > 0 and float(np.mean(inside > median)) > MOST:
        return "recent"
    if z < 0 and float(np.mean(inside < median)) > MOST:
        return "older"
    return None


def _top_genre(fm: FeatureMatrix, members: np.ndarray) -> str | None:
    """The genre tag most over-represented in the cluster (≥ 40 % of members), if any."""
    if not any(fm.genres):
        return None
    idx = np.flatnonzero(members)
    inside = Counter(g.lower() for i in idx for g in set(fm.genres[i]))
    overall = Counter(g.lower() for gs in fm.genres for g in set(gs))
    n_in, n_all = len(idx), len(fm.genres)
    best: tuple[float, str] | None = None
    for g, c in inside.items():
        share = c / n_in
        lift = share / (overall[g] / n_all)
        if share >= 0.4 and lift >= 1.2 and (best is None or (lift, g) > best):
            best = (lift, g)
    return best[1] if best else None


def name_clusters(
    fm: FeatureMatrix, labels: np.ndarray, k: int, *, max_words: int = 3
) -> list[tuple[str, list[str]]]:
    """(name, description words) per cluster; the words of the names are unique.

    Each name takes the two strongest words (:func:`describe`); when another cluster already
    has those, the next pair of true words is used, borrowing weaker contrasts
    (``NAME_MIN_Z``), then words that hold for most of its tracks whatever the contrast; when
    none is left, a comparative with the cluster of that name (:func:`_comparative`). The
    number in "Cluster N" keeps the name unique when nothing does.
    """
    if k == 1:
        return [("Cluster 1 · all tracks", [])]
    used: dict[str, int] = {}  # word part of a name -> the cluster that has it
    out: list[tuple[str, list[str]]] = []
    for c in range(k):
        mask = labels == c
        words = describe(fm, mask, max_words=max_words)
        weaker = [w for z in (NAME_MIN_Z, -math.inf) for _, w in word_candidates(fm, mask, z)]
        short = _short_words(words, weaker, set(used))
        key = " · ".join(short)
        named = short
        if key in used:  # no true words left to tell it apart: compare with its namesake
            named = short + _comparative(fm, mask, labels == used[key])
        used.setdefault(key, c)
        used.setdefault(" · ".join(named), c)
        rest = [w for w in words if w not in short]
        out.append((_name(c, named), (short + rest)[:max_words]))
    return out


# What a cluster has more (+) or less (−) of than the cluster it would share its name with.
COMPARATIVES: dict[str, tuple[str, str]] = {
    "danceability": ("more danceable", "less danceable"),
    "energy": ("more energetic", "calmer"),
    "loudness": ("louder", "quieter"),
    "speechiness": ("wordier", "fewer words"),
    "acousticness": ("more acoustic", "more electronic"),
    "instrumentalness": ("more instrumental", "more vocal"),
    "liveness": ("more live", "more studio"),
    "valence": ("happier", "sadder"),
    "tempo": ("faster", "slower"),
    "popularity": ("more popular", "less popular"),
    "duration_min": ("longer", "shorter"),
    "year": ("newer", "earlier"),
}


def _comparative(fm: FeatureMatrix, members: np.ndarray, namesake: np.ndarray) -> list[str]:
    """The word for the feature that differs most between two clusters whose true words are
    the same ("sad" and "sad · more live"), by the clusters' average scaled values (ranks)."""
    best: tuple[float, str] | None = None
    for name, (more, less) in COMPARATIVES.items():
        col = fm.scaled.get(name)
        if col is None or float(np.std(col)) <= 1e-9:
            continue
        diff = (float(col[members].mean()) - float(col[namesake].mean())) / float(np.std(col))
        if best is None or abs(diff) > best[0]:
            best = (abs(diff), more if diff > 0 else less)
    return [best[1]] if best is not None and best[0] > 0 else []


def _short_words(words: list[str], weaker: list[str], used: set[str]) -> list[str]:
    """The first two words, or the first pair (then single word) of true words not used yet."""
    first = words[:2]
    if " · ".join(first) not in used:
        return first
    pool = list(dict.fromkeys(words + weaker))
    for combo in [*itertools.combinations(pool, 2), *((w,) for w in pool)]:
        if " · ".join(combo) not in used:
            return list(combo)
    return first


def _name(index: int, words: list[str]) -> str:
    """'Cluster N · w1 · w2' (the number keeps names unique; a comparative may make a third)."""
    short = " · ".join(words[:3]) if words else "mixed"
    return f"Cluster {index + 1} · {short}"


def split_by(fm: FeatureMatrix, labels: np.ndarray) -> str:
    """What separated the clusters most, e.g. "split mostly by era and energy".

    Share of each interpretable feature's variance explained by the clusters (η²); the top
    features within 80 % of the best, at most two, named in plain words.
    """
    if len(set(labels.tolist())) < 2:
        return ""
    shares: list[tuple[float, str]] = []
    for name, col in fm.scaled.items():
        total = float(((col - col.mean()) ** 2).sum())
        if name not in FEATURE_NOUNS or total <= 1e-12:
            continue
        within = sum(
            float(((col[labels == c] - col[labels == c].mean()) ** 2).sum())
            for c in set(labels.tolist())
        )
        shares.append((1 - within / total, name))
    shares.sort(key=lambda s: (-s[0], s[1]))
    if not shares or shares[0][0] < 0.1:
        return "no single feature sets the clusters apart"
    top = [FEATURE_NOUNS[n] for share, n in shares[:2] if share >= 0.8 * shares[0][0]]
    return "split mostly by " + " and ".join(top)


# --- projection ------------------------------------------------------------------------------


def project(fm: FeatureMatrix, labels: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """2-D coordinates for the scatter, and what the axes mean.

    With 3+ clusters: linear discriminant analysis (the 2-D view that separates the found
    clusters best — plain PCA is often dominated by one feature such as release year).
    Otherwise PCA. LDA yields a single axis when the cluster centres lie on one line (3 of
    460 real TidyTuesday playlists with the earlier features); the second axis is then the
    first principal component of what that axis leaves. Each axis is labelled with the
    features most correlated with it.
    """
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X = np.nan_to_num(fm.X, nan=0.0, posinf=0.0, neginf=0.0)
    if X.shape[1] < 2:
        X = np.column_stack([X, np.zeros(X.shape[0])])
    method = "PCA"
    coords: np.ndarray | None = None
    if distinct_rows(X) < 2:
        coords = np.zeros((X.shape[0], 2))
    elif labels is not None and len(set(labels.tolist())) >= 3:
        try:
            lda = LinearDiscriminantAnalysis(n_components=2, solver="svd")
            coords = lda.fit_transform(X, labels)
            method = "LDA"
        except (ValueError, np.linalg.LinAlgError):
            coords = None
        if coords is not None and coords.shape[1] < 2:
            coords = np.column_stack([coords[:, 0], _residual_axis(X, coords[:, 0])])
    if coords is None:
        coords = PCA(n_components=2, svd_solver="full").fit_transform(X)
    names = ["axis 1", "axis 2"] if method == "LDA" else ["PC1", "PC2"]
    axis_labels = [_axis_label(names[j], fm, coords[:, j]) for j in range(2)]
    return coords, {"method": method, "x_label": axis_labels[0], "y_label": axis_labels[1]}


def _residual_axis(X: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """First principal component of X after removing what is linear in ``axis``."""
    from sklearn.decomposition import PCA

    a = axis - axis.mean()
    Xc = X - X.mean(axis=0)
    denom = float(a @ a)
    residual = Xc - np.outer(a, a @ Xc) / denom if denom > 1e-12 else Xc
    if float(np.abs(residual).max()) <= 1e-12:
        return np.zeros(X.shape[0])
    return PCA(n_components=1, svd_solver="full").fit_transform(residual)[:, 0]


def _axis_label(name: str, fm: FeatureMatrix, axis: np.ndarray) -> str:
    """'axis 1: +energy, −acousticness' from the features most correlated with the axis."""
    parts: list[tuple[float, str]] = []
    if np.std(axis) > 1e-12:
        for feature, col in fm.scaled.items():
            if np.std(col) <= 1e-12:
                continue
            r = float(np.corrcoef(col, axis)[0, 1])
            if abs(r) >= 0.3:
                parts.append((abs(r), ("+" if r > 0 else "−") + _pretty(feature)))
    parts.sort(key=lambda p: (-p[0], p[1]))
    return f"{name}: " + (", ".join(p for _, p in parts[:3]) or "mixed features")


def _pretty(column: str) -> str:
    return column.replace("_min", "").replace("_", " ")


# --- the whole step --------------------------------------------------------------------------


def _features_by_id(fm: FeatureMatrix) -> dict[str, dict[str, float]]:
    """Track id -> the known interpretable feature values (original units)."""
    names = list(fm.raw)
    if not names:
        return {tid: {} for tid in fm.ids}
    columns = [fm.raw[name].tolist() for name in names]
    out: dict[str, dict[str, float]] = {}
    for r, tid in enumerate(fm.ids):
        # col[r] == col[r] is False only for NaN (an unknown value)
        out[tid] = {
            name: col[r] for name, col in zip(names, columns, strict=True) if col[r] == col[r]
        }
    return out


def analyze(
    fetched: FetchResult,
    fm: FeatureMatrix,
    k: int | None,
    seed: int = 0,
    previous: Mapping[str, int] | None = None,
) -> Analysis:
    """Cluster ``fm`` and assemble the :class:`Analysis` for ``fetched``'s tracks.

    BLAS/OpenMP run single-threaded: the worker pool already runs one job per core, and
    OpenMP threads spinning on a busy machine made k-means ~50x slower in measurements.
    """
    # Import scikit-learn first: threadpool_limits only limits thread pools (OpenMP, BLAS)
    # already loaded, and a first analysis in a fresh process (CLI, inline mode) would
    # otherwise run k-means with unlimited OpenMP threads (measured 10-30x slower).
    import sklearn.cluster
    import sklearn.decomposition
    import sklearn.metrics  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _analyze(fetched, fm, k, seed, previous)


def _analyze(
    fetched: FetchResult,
    fm: FeatureMatrix,
    k: int | None,
    seed: int,
    previous: Mapping[str, int] | None = None,
) -> Analysis:
    result = fit(fm, k, seed, previous)
    X = np.nan_to_num(fm.X, nan=0.0, posinf=0.0, neginf=0.0)
    ids = np.array(fm.ids)
    names = name_clusters(fm, result.labels, result.k)
    clusters: list[Cluster] = []
    for c, (name, words) in enumerate(names):
        mask = result.labels == c
        centre = X[mask].mean(axis=0)
        dist = np.linalg.norm(X[mask] - centre, axis=1)
        member_ids = ids[mask]
        order = sorted(range(len(member_ids)), key=lambda i: (dist[i], member_ids[i]))
        members = [str(member_ids[i]) for i in order]
        centroid = {
            feature: float(np.nanmean(col[mask]))
            for feature, col in fm.raw.items()
            if np.isfinite(col[mask]).any()
        }
        if result.k == 1:
            description = (
                "every track has the same features: nothing to split"
                if distinct_rows(X) < 2
                else "these tracks do not fall into distinct groups"
            )
        else:
            description = " · ".join(words) or "close to the playlist average"
        clusters.append(
            Cluster(
                index=c,
                name=name,
                description=description,
                size=int(mask.sum()),
                centroid=centroid,
                track_ids=members,
                representative_ids=members[:N_REPRESENTATIVES],
            )
        )
    coords, projection = project(fm, result.labels)
    in_matrix = set(fm.ids)
    tracks: list[Track] = [t for t in fetched.tracks if t.id in in_matrix]
    features = _features_by_id(fm)
    return Analysis(
        source=fetched.meta,
        tracks=tracks,
        clusters=clusters,
        assignments={tid: int(lab) for tid, lab in zip(fm.ids, result.labels, strict=True)},
        coords={tid: [float(x), float(y)] for tid, (x, y) in zip(fm.ids, coords, strict=True)},
        k=result.k,
        k_requested=k,
        feature_mode=fm.mode,
        feature_names=fm.feature_names,
        coverage=dict(fm.coverage),
        skipped=dict(fetched.skipped),
        silhouette=result.silhouette,
        features=features,
        projection=projection,
        split_by=split_by(fm, result.labels),
    )
