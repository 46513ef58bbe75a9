"""Clustering: choose k, fit, describe each cluster, and project to 2-D (scikit-learn).

Deterministic: rows are sorted by track id (see :mod:`bot.features.matrix`), every estimator
gets a fixed seed, and clusters are numbered by size (ties by their first track id), so the
same set of tracks gives the same result whatever the playlist order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from bot.errors import InvalidInput, TooSmall
from bot.features.matrix import FeatureMatrix
from bot.models import Analysis, Cluster, FetchResult, Track

MIN_TRACKS = 10
MAX_AUTO_K = 12
N_REPRESENTATIVES = 10
SILHOUETTE_SAMPLE = 3000
K_SEARCH_SAMPLE = 2000
K_TOLERANCE = 0.15  # see _search_k
MIN_TRACKS_FOR_K3 = 60
# A feature must differ between the cluster and the rest by this many sds to be named.
DESCRIBE_MIN_Z = 0.5
# Metadata words rank below sound words of the same strength; the year needs a big shift.
WORD_PRIORITY = {"popularity": 0.7, "duration_min": 0.6, "explicit": 0.7, "year": 0.8}
MIN_YEAR_Z = 1.0

# Words for a cluster whose centroid is above (+) / below (−) the playlist's average.
# None: not worth saying (e.g. "not live" — almost every studio track is).
WORDS: dict[str, tuple[str | None, str | None]] = {
    "danceability": ("danceable", "not danceable"),
    "energy": ("high energy", "calm"),
    "loudness": ("loud", "quiet"),
    "speechiness": ("wordy", None),
    "acousticness": ("acoustic", "electronic"),
    "instrumentalness": ("instrumental", None),
    "liveness": ("live", None),
    "valence": ("happy", "sad"),
    "tempo": ("fast", "slow"),
    "popularity": ("popular", "deep cuts"),
    "duration_min": ("long", "short"),
    "explicit": ("explicit", "clean"),
    "year": ("recent", "older"),
}


def max_auto_k(n: int) -> int:
    """Largest k tried automatically for n tracks."""
    return max(2, min(MAX_AUTO_K, n // 8))


def min_auto_k(n: int) -> int:
    """Smallest k tried automatically: 3 from 60 tracks on.

    A product choice: on real playlists one strong split (e.g. one decade vs the rest) makes
    the silhouette peak at k = 2, which says little; ``k=2`` can still be asked for.
    """
    return 3 if n >= MIN_TRACKS_FOR_K3 and max_auto_k(n) >= 3 else 2


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
    """Try k = 2..max_auto_k(n), pick by silhouette (see :func:`_search_k`) → (k, labels, score).

    Large playlists search k on a fixed random subsample (``K_SEARCH_SAMPLE`` rows), then fit
    the chosen k on everything — keeps 10,000 tracks within a few seconds.
    """
    n = X.shape[0]
    if n > K_SEARCH_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(n, K_SEARCH_SAMPLE, replace=False))
        k, _, _ = _search_k(X[rows], min_auto_k(n), max_auto_k(n), seed)
        labels = fit_labels(X, k, seed)
        return k, labels, silhouette(X, labels, seed)
    return _search_k(X, min_auto_k(n), max_auto_k(n), seed)


def _search_k(
    X: np.ndarray, k_min: int, k_max: int, seed: int
) -> tuple[int, np.ndarray, float | None]:
    """Largest k whose silhouette is within ``K_TOLERANCE`` of the best one.

    Plain silhouette argmax nearly always says k = 2 on playlists; on mixes of real playlists
    (bench/quality.py) this rule lands closer to the true number and raises NMI.
    """
    fits: list[tuple[int, np.ndarray, float | None]] = []
    for k in range(k_min, k_max + 1):
        labels = fit_labels(X, k, seed)
        fits.append((k, labels, silhouette(X, labels, seed)))
    scores = [s for _, _, s in fits if s is not None]
    if not scores:
        return fits[0]
    best = max(scores)
    floor = best - K_TOLERANCE * abs(best)
    ok = [f for f in fits if f[2] is not None and f[2] >= floor - 1e-12]
    return max(ok, key=lambda f: f[0])


@dataclass
class Fit:
    k: int
    labels: np.ndarray  # per matrix row, renumbered by size
    silhouette: float | None


def fit(fm: FeatureMatrix, k: int | None, seed: int = 0) -> Fit:
    """Validate, choose/fit k, and renumber clusters by size (largest first)."""
    n = fm.X.shape[0]
    validate(n, k)
    if k is None:
        k, labels, score = choose_k(fm.X, seed)
    else:
        labels = fit_labels(fm.X, k, seed)
        score = silhouette(fm.X, labels, seed)
    return Fit(k=k, labels=_renumber(labels, fm.ids), silhouette=score)


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
    """Distinguishing words for the rows in ``members`` (boolean mask), strongest first."""
    if members.all() or not members.any():
        return []  # nothing to contrast with
    scored: list[tuple[float, str]] = []
    for name, col in fm.scaled.items():
        words = WORDS.get(name)
        sd = float(np.std(col))
        if words is None or sd <= 1e-9:
            continue
        # contrast with the rest of the playlist (symmetric for k = 2, sharper than vs mean)
        z = (float(col[members].mean()) - float(col[~members].mean())) / sd
        word = words[0] if z > 0 else words[1]
        if word is None or abs(z) < DESCRIBE_MIN_Z:
            continue
        if name == "year":
            if abs(z) < MIN_YEAR_Z:
                continue
            word = _decade_word(fm.raw["year"][members]) or word
        scored.append((abs(z) * WORD_PRIORITY.get(name, 1.0), word))
    scored.sort(key=lambda s: (-s[0], s[1]))
    words = [w for _, w in scored]
    genre = _top_genre(fm, members)
    if genre:
        words.insert(0, genre)
    return words[:max_words]


def _decade_word(years: np.ndarray) -> str | None:
    years = years[np.isfinite(years)]
    if years.size == 0:
        return None
    decade = int(np.median(years)) // 10 * 10
    return f"{decade}s"


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


def _name(index: int, words: list[str]) -> str:
    """'Cluster N · w1 · w2' (the number keeps names unique)."""
    short = " · ".join(words[:2]) if words else "mixed"
    return f"Cluster {index + 1} · {short}"


# --- projection ------------------------------------------------------------------------------


def project(fm: FeatureMatrix, labels: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """2-D coordinates for the scatter, and what the axes mean.

    With 3+ clusters: linear discriminant analysis (the 2-D view that separates the found
    clusters best — plain PCA is often dominated by one feature such as release year).
    Otherwise PCA. Each axis is labelled with the features most correlated with it.
    """
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X = fm.X
    if X.shape[1] < 2:
        X = np.column_stack([X, np.zeros(X.shape[0])])
    method = "PCA"
    coords: np.ndarray | None = None
    if labels is not None and len(set(labels.tolist())) >= 3 and X.shape[1] >= 2:
        try:
            coords = LinearDiscriminantAnalysis(n_components=2, solver="svd").fit_transform(
                X, labels
            )
            method = "LDA"
        except (ValueError, np.linalg.LinAlgError):
            coords = None
    if coords is None:
        coords = PCA(n_components=2, svd_solver="full").fit_transform(X)
    names = ["axis 1", "axis 2"] if method == "LDA" else ["PC1", "PC2"]
    axis_labels = [_axis_label(names[j], fm, coords[:, j]) for j in range(2)]
    return coords, {"method": method, "x_label": axis_labels[0], "y_label": axis_labels[1]}


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
        return _analyze(fetched, fm, k, seed)


def _analyze(fetched: FetchResult, fm: FeatureMatrix, k: int | None, seed: int) -> Analysis:
    result = fit(fm, k, seed)
    ids = np.array(fm.ids)
    clusters: list[Cluster] = []
    for c in range(result.k):
        mask = result.labels == c
        centre = fm.X[mask].mean(axis=0)
        dist = np.linalg.norm(fm.X[mask] - centre, axis=1)
        member_ids = ids[mask]
        order = sorted(range(len(member_ids)), key=lambda i: (dist[i], member_ids[i]))
        members = [str(member_ids[i]) for i in order]
        words = describe(fm, mask)
        centroid = {
            name: float(np.nanmean(col[mask]))
            for name, col in fm.raw.items()
            if np.isfinite(col[mask]).any()
        }
        clusters.append(
            Cluster(
                index=c,
                name=_name(c, words),
                description=" · ".join(words) or "close to the playlist average",
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
    )
