"""Clustering: choose k and fit (scikit-learn), then assemble the analysis.

Deterministic: rows are sorted by track id (see :mod:`bot.features.matrix`), every estimator
gets a fixed seed, and clusters are numbered by size (ties by their first track id), so the
same set of tracks gives the same result whatever the playlist order.

Naming the clusters lives in :mod:`bot.naming`, the scatter's 2-D view in
:mod:`bot.projection`; :func:`analyze` puts the three together into an :class:`Analysis`.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from bot import warm_start
from bot.errors import InvalidInput, TooSmall
from bot.features.matrix import FeatureMatrix, distinct_rows
from bot.models import MIN_TRACKS, Analysis, Cluster, FetchResult, Track
from bot.naming import name_clusters, split_by
from bot.projection import project

MAX_AUTO_K = 12
N_REPRESENTATIVES = 10
# The silhouette only words how apart the clusters are: on 1,000 rows its standard error is
# ~0.006, and at 10,000 tracks it costs 30 ms instead of 220 ms on 3,000 rows.
SILHOUETTE_SAMPLE = 1000
K_SEARCH_SAMPLE = 1000
# No cluster chosen automatically is smaller than this share of the playlist (or 3 tracks).
MIN_CLUSTER_SHARE = 0.03
MIN_CLUSTER_TRACKS = 3
GAP_REFERENCES = 10  # reference data sets per null for the gap statistic (see _search_k)
# Restarts per gap reference set / per Gaussian mixture. Measured on the bench mixes, 3 / 2
# restarts: k within ±1 in 83 %, NMI 0.560, 139 s; 1 / 1: 86 %, 0.567, 102 s (with the rule
# before the median of three criteria).
GAP_INITS = 1
GMM_INITS = 1
BIC_PATIENCE = 2  # the BIC search stops after this many k in a row that do not lower it


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
            f"This playlist has only {n} playable track{'s' if n != 1 else ''}; "
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
    """k from three model-selection criteria: the median of their k.

    * the gap statistic (Tibshirani, Walther & Hastie 2001): the smallest k whose k-means
      fit beats reference data at least as much as k+1 does, within one standard error —
      once with uniform references in the box of the data's principal axes, which any
      uneven spread beats (it tends to pick too many clusters), once with Gaussian references
      of the data's own mean and covariance (it asks for more structure than one ellipsoid);
    * BIC of a full-covariance Gaussian mixture (scikit-learn), k = 1 allowed, which picks too
      few on small playlists (its penalty grows with the parameters, ~90 per cluster).

    The median keeps the middle one when one of them is off. Only k whose k-means clusters all
    reach :func:`min_cluster_size` are candidates.
    Measured on 70 mixes of 2–6 real playlists (bench/quality.py, 40 of different genres,
    30 of one genre's subgenres), share of mixes with k within ±1 of the number of playlists
    / NMI: largest k within 15 % of the best silhouette (used before) 0.60 / 0.556; best
    silhouette 0.64 / 0.544; Calinski–Harabasz 0.61 / 0.525; Davies–Bouldin 0.59 / 0.552;
    split-half stability 0.70 / 0.554; gap alone 0.74 / 0.555; BIC alone 0.60 / 0.541;
    uniform gap and BIC averaged, rounded up (the rule before this one) 0.86 / 0.567. The
    median, over seeds 0 / 1 / 2: NMI 0.584 / 0.539 / 0.573 (was 0.567 / 0.534 / 0.562), ARI
    0.563 / 0.507 / 0.536 (0.538 / 0.500 / 0.526), ±1 89 / 79 / 81 % (86 / 89 / 81 %); on
    mixes of half the tracks, where BIC says 1, NMI +0.022 (bench/k_study.py; README, "How
    clustering works"). Being told k = number of playlists is still 0.007 NMI better.
    """
    n = X.shape[0]
    k_max = max_auto_k(n)
    smallest = min_cluster_size(n)
    search = _KSearch(X, seed, top=min(k_max + 1, n - 1))

    def ok(k: int) -> bool:
        return 2 <= k <= k_max and int(np.bincount(search.labels(k)).min()) >= smallest

    def gap_k(null: str) -> int | None:
        """The first candidate where the gap levels off; if it never does, the largest."""
        stops = (k for k in range(2, k_max + 1) if ok(k) and search.gap_stops_at(k, null))
        return next(stops, None) or next((k for k in range(k_max, 1, -1) if ok(k)), None)

    k_uniform, k_gauss = gap_k("uniform"), gap_k("gaussian")
    if k_uniform is None or k_gauss is None:  # no k has clusters of the minimum size
        return 2
    k_bic = search.lowest_bic(itertools.chain([1], (k for k in range(2, k_max + 1) if ok(k))))
    wanted = sorted((k_uniform, k_gauss, k_bic))[1]
    # the candidate nearest ``wanted`` (the smaller on a tie); k_uniform is one, so this ends
    return next(k for d in range(k_max + 1) for k in (wanted - d, wanted + d) if ok(k))


class _KSearch:
    """What :func:`_search_k` needs, computed only when first asked for.

    The criteria are read from k = 1 upwards and stop early (each gap rule at its k, BIC after
    two k in a row that do not lower it), so the costly large-k fits are mostly skipped (CPU
    time of ``fit`` with auto k at 10,000 bundled tracks: 1.29 s when every k was fitted).
    """

    def __init__(self, X: np.ndarray, seed: int, top: int) -> None:
        self.X, self.seed, self.top = X, seed, top
        self._labels: dict[int, np.ndarray] = {}
        self._gap: dict[tuple[str, int], tuple[float, float]] = {}
        self._refs: dict[str, list[np.ndarray]] = {}

    def labels(self, k: int) -> np.ndarray:
        """The k-means partition for k (the one the final fit would give on these rows)."""
        if k not in self._labels:
            n = self.X.shape[0]
            self._labels[k] = fit_labels(self.X, k, self.seed) if k > 1 else np.zeros(n, int)
        return self._labels[k]

    def gap_stops_at(self, k: int, null: str) -> bool:
        """Tibshirani's rule: Gap(k) ≥ Gap(k+1) − s(k+1)."""
        if k + 1 > self.top:
            return False
        gap_k, _ = self.gap(k, null)
        gap_next, se_next = self.gap(k + 1, null)
        return gap_k >= gap_next - se_next

    def gap(self, k: int, null: str) -> tuple[float, float]:
        """Gap(k) and its standard error (Tibshirani et al. 2001) against ``null``
        references ("uniform" or "gaussian", see :meth:`references`)."""
        from sklearn.cluster import KMeans

        if (null, k) not in self._gap:
            ref = np.array(
                [
                    math.log(
                        max(
                            KMeans(k, n_init=GAP_INITS, random_state=self.seed).fit(r).inertia_,
                            1e-12,
                        )
                    )
                    for r in self.references(null)
                ]
            )
            log_w = _log_dispersion(self.X, self.labels(k))
            se = float(ref.std()) * math.sqrt(1 + 1 / GAP_REFERENCES)
            self._gap[null, k] = (float(ref.mean()) - log_w, se)
        return self._gap[null, k]

    def references(self, null: str) -> list[np.ndarray]:
        """Reference data sets without clusters: uniform in the box of the data's principal
        axes, or Gaussian with the data's mean and covariance."""
        if null not in self._refs:
            X = self.X
            rng = np.random.default_rng(self.seed)
            centre = X.mean(axis=0)
            if null == "gaussian":
                cov = np.atleast_2d(np.cov(X, rowvar=False))  # 2-D also for one column
                self._refs[null] = [
                    rng.multivariate_normal(
                        centre, cov, size=X.shape[0], method="eigh", check_valid="ignore"
                    )
                    for _ in range(GAP_REFERENCES)
                ]
            else:
                _, _, vt = np.linalg.svd(X - centre, full_matrices=False)
                rotated = (X - centre) @ vt.T
                lo, hi = rotated.min(axis=0), rotated.max(axis=0)
                self._refs[null] = [
                    rng.uniform(lo, hi, size=rotated.shape) @ vt + centre
                    for _ in range(GAP_REFERENCES)
                ]
        return self._refs[null]

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
