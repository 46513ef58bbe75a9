"""Partition-side and consensus k rules for auto k (issue #12), on the ``bench/k_study.py`` mixes.

The target: auto-k NMI/ARI ≥ those with k = number of playlists (``m``) fitted by the shipped
:func:`bot.clustering.fit_labels`. ``bench/k_study.py`` studies criteria that read one number
per k; this studies rules that look at partitions: over-clustering then merging, consensus
(co-association) over many k-means runs, stability over subsamples, top-down splitting, and
whether the tracks' artists and albums (real metadata, never the playlist columns) say where
a split falls. Each rule returns a partition; it is scored against k = m as the shipped
``fit_labels`` fits it (what a user who sets k gets), on the three kinds of mix of
``bench/k_study.py`` (``full``, ``half``, ``share``; seeds 0–2, 70 mixes each). Auto k's
partition is the rule's (after :func:`bot.clustering.merge_small`, as auto k does).

    python bench/k_merge_study.py [--seeds 0 1 2] [--kinds full half share]
                                  [--cache /tmp/k_study_kmerge] [--slow]

The cache (per mix: the feature matrix, the truth, artists/albums, the k-means partition for
k = 2..k_max + 1 and the shipped rule's k, read from ``/tmp/k_study`` when it is there) takes
~1 min per kind and seed; the subsample cache (10 subsamples of 80 % per k in the shipped k ± 1
and m) ~2–4 min. ``--slow`` adds the rules that fit many models per mix (evidence
accumulation, G-means, GMM entropy merging: 1–4 min per kind and seed each). One thread.

**Found: nothing here reaches k given or beats the shipped rule beyond noise.** Auto −
(k = number of playlists), NMI / ARI in thousandths, mean over seeds 0–2, then the share of
mixes with k within ±1 (lowest–highest seed); ⁰ = seed 0 only (``--slow``; the shipped rule
is −12/−23 89 %, −14/−20 81 %, −25/−33 83 % there):

| rule | full | half | share |
|:---|---:|---:|---:|
| shipped: median(uniform gap, Gaussian gap, BIC) | −7/−18 79–89 | −12/−20 69–81 | −18/−26 74–83 |
| artist+album link modularity, best k | −118/−263 0–4 | −96/−240 0–10 | −102/−249 1–4 |
| same, among shipped k ± 1 | −35/−65 74–80 | −33/−60 80–89 | −36/−67 74–90 |
| k-means at k_max + 1, joined by link modularity | −115/−253 0–1 | −105/−256 1 | −102/−252 0–1 |
| k-means at k_max + 1, Ward merging, biggest jump | −41/−67 59–66 | −38/−62 57–66 | −28/−42 63–73 |
| shipped k, partition: over-cluster, Ward, k-means | −6/−16 79–89 | −7/−18 69–81 | −15/−22 74–83 |
| shipped k ± 1, lowest PAC of the consensus | −14/−34 66–76 | −28/−50 66–74 | −17/−30 70–76 |
| shipped k ± 1, most stable (subsample ARI) | −16/−35 74–81 | −28/−46 66–76 | −18/−28 71–77 |
| shipped k, consensus partition | −7/−15 81–89 | −17/−24 69–81 | −19/−24 73–84 |
| shipped k, one more while k + 1 is nested ≥ 0.96 | −44/−79 67–73 | −44/−72 64–76 | −42/−73 67–79 |
| most central k (mean NMI to the other k) | −84/−182 7–13 | −72/−173 14–19 | −71/−180 6–17 |
| same, among shipped k ± 1 | −40/−72 76–79 | −37/−64 83–89 | −39/−75 77–89 |
| evidence accumulation, average link, lifetime ⁰ | −100/−204 11 | −63/−137 44 | −49/−120 31 |
| same, its own partition ⁰ | −91/−191 11 | −60/−126 43 | −43/−111 31 |
| same, single link ⁰ | −113/−193 34 | −88/−145 40 | −80/−144 41 |
| G-means, α = 10⁻⁴ ⁰ | −39/−67 69 | −43/−53 67 | −35/−54 71 |
| G-means, α = 10⁻³ ⁰ | −53/−93 56 | −45/−61 69 | −35/−66 69 |
| diagonal GMM at k_max, entropy merging, elbow ⁰ | −131/−259 4 | −115/−249 4 | −103/−238 7 |

The over-cluster-then-Ward partition at the shipped k is the only row above the shipped one
on all three means, by the same margin as at k given (below), and not seed by seed: against
the shipped rule per seed (NMI/ARI in thousandths), over-clustering to 2k: full −3/−1, 0/+1,
+3/+4, half −10/−19, +6/+5, −3/−7, share +2/+5, +8/+9, −6/−7; to 3k: −3/0, 0/+1, +6/+4,
0/−5, +6/+4, +9/+6, −2/+4, +11/+13, −2/−4; to 4k: −1/+1, −5/−6, +6/+5, +1/−9, +8/+9, +10/+5,
+3/+9, +13/+15, +4/+1 — another local optimum of k-means, not a better k.

A better partition at a given k (k = m, minus the shipped ``fit_labels``; same units):
over-cluster to 3m, Ward to m, k-means from there +5/+8, +4/+1, +2/+4 (seed 0: +12/+19,
+10/+6, −3/+2), but from 2m −1/−1, −2/−6, +5/+5; the consensus partition of 10 subsamples
+1/+3, −4/−4, +2/+5 with clusters under the minimum size in 73 of 630 mixes; agglomerative
Ward −25/−30, −29/−43, −20/−25, then k-means from it −1/−1, −1/−6, +2/+3; k-means with 50
restarts ⁰ −2/−2, −3/−4, −6/−4. k-means with random_state 1 instead of 0 (the noise of the
reference itself) +1/+2, −4/−5, −2/−2: none is better than ``fit_labels`` beyond that noise.

Why: the artist links are almost all inside one playlist (97 % of same-main-artist pairs,
99.5 % of same-album pairs; half the tracks have such a link), but the feature matrix already
pulls same-artist tracks together (``blend_artists``), so every k-means partition keeps most
links: modularity is highest at k = 2, and joining over-clusters by links never pays (few
links cross clusters); the share of links a step k → k + 1 cuts, against chance, is only
weakly lower up to k = m (median 0.07–0.18 vs 0.30 beyond on full mixes, 0 on half mixes: too
few links). Consensus and stability measure how reproducible a partition is, and k-means
partitions of these tracks are about as reproducible at the wrong k; evidence accumulation's
lifetime and entropy merging's elbow find the one clearest split (k = 2). Top-down normality
tests (G-means) reject normality inside real playlists (skewed features) and over-split.
Where the shipped rule is 2 or more under the count (19 full, 43 half, 35 share mixes of 210),
its three criteria mostly all say 2 (hard mixes of 4 subgenres): nothing in the tracks' sound
says there are more, and none of the partition-side signals above does either.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.k_study import half
from bench.quality import DEFAULT_CSV, Mix, draws, share
from bot import clustering

CACHE = Path("/tmp/k_study_kmerge")
SHIPPED = Path("/tmp/k_study")  # bench/k_study.py's cache: the shipped rule's k per mix
KINDS = ("full", "half", "share")
SUBSAMPLES, SUBSAMPLE_SHARE = 10, 0.8
Record = dict  # one mix: X, truth, artists, album, m, n, k_max, hard, labels {k: ...}, shipped
Rule = Callable[[Record], np.ndarray]


def mixes(seed: int, kind: str) -> list[Mix]:
    """The mixes of ``bench/k_study.py`` (same draws, same halves and shares)."""
    df = pd.read_csv(DEFAULT_CSV, dtype=str, keep_default_na=False)
    out = draws(df, 40, seed) + draws(df, 30, seed, hard=True)
    if kind == "half":
        out = [half(mix, seed * 1000 + i) for i, mix in enumerate(out)]
    elif kind == "share":
        out = [share(mix, seed * 1000 + i) for i, mix in enumerate(out)]
    return out


def record(mix: Mix, seed: int = 0) -> Record:
    from bot.features import matrix

    values = {t.id: t.features for t in mix.tracks}
    fm = matrix.build_matrix(mix.tracks, values, dict.fromkeys(values, "csv"))
    X = np.nan_to_num(fm.X, nan=0.0, posinf=0.0, neginf=0.0)
    by_id = {t.id: t for t in mix.tracks}
    truth_of = {t.id: int(c) for t, c in zip(mix.tracks, mix.truth, strict=True)}
    tracks = [by_id[i] for i in fm.ids]
    k_max = clustering.max_auto_k(X.shape[0])
    return {
        "X": X,
        "truth": np.array([truth_of[i] for i in fm.ids]),
        # real metadata: the track's own artists and album (not the playlist's columns)
        "artists": [[a.lower() for a in t.artists] for t in tracks],
        "album": [t.album_id or "" for t in tracks],
        "m": len(set(truth_of.values())),
        "n": X.shape[0],
        "k_max": k_max,
        "hard": mix.hard,
        # what _KSearch.labels and fit_labels give (the same call)
        "labels": {k: clustering.fit_labels(X, k, seed) for k in range(2, k_max + 2)},
    }


def build(seed: int, kind: str, cache: Path = CACHE) -> list[Record]:
    path = cache / f"{kind}_seed{seed}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    shipped_path = SHIPPED / f"{kind}_seed{seed}.pkl"
    shipped = pickle.loads(shipped_path.read_bytes()) if shipped_path.exists() else None
    out = []
    for i, mix in enumerate(mixes(seed, kind)):
        r = record(mix)
        if shipped is not None:
            assert (r["n"], r["m"]) == (shipped[i]["n"], shipped[i]["m"])
            r["shipped"] = shipped[i]["shipped"]
        else:
            r["shipped"] = clustering._search_k(r["X"], 0)
        out.append(r)
        print(f"{kind} seed {seed}: mix {i + 1}/{len(out)}", file=sys.stderr, flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


# --- helpers on a cached mix -----------------------------------------------------------------


def smallest(d: Record) -> int:
    return clustering.min_cluster_size(d["n"])


def candidates(d: Record) -> list[int]:
    """k auto k may choose: 2..k_max with every k-means cluster at the minimum size."""
    sm = smallest(d)
    ks = [k for k in range(2, d["k_max"] + 1) if np.bincount(d["labels"][k]).min() >= sm]
    return ks or [2]


def nearest(d: Record, wanted: int) -> int:
    return min(candidates(d), key=lambda k: (abs(k - wanted), k))


def at_k(d: Record, k: int) -> np.ndarray:
    """Auto k's partition for k: the k-means fit, small clusters merged."""
    return clustering.merge_small(d["X"], d["labels"][k], smallest(d))


def shipped(d: Record) -> np.ndarray:
    return at_k(d, d["shipped"])


def merged(d: Record, labels: np.ndarray) -> np.ndarray:
    return clustering.merge_small(d["X"], labels, smallest(d))


# --- artists and albums ----------------------------------------------------------------------


def link_graph(d: Record) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (i, j, weight) between tracks of one main artist or one album; a group of g
    tracks gives each member weight 1 in all (1 / (g − 1) per edge), so one prolific artist
    does not outweigh the rest."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (arts, album) in enumerate(zip(d["artists"], d["album"], strict=True)):
        if arts:
            groups["artist:" + arts[0]].append(i)
        if album:
            groups["album:" + album].append(i)
    rows, cols, w = [], [], []
    for g in groups.values():
        for x in g:
            for y in g:
                if x != y:
                    rows.append(x)
                    cols.append(y)
                    w.append(1.0 / (len(g) - 1))
    return np.array(rows, int), np.array(cols, int), np.array(w)


def modularity(d: Record, labels: np.ndarray) -> float:
    """Newman's modularity of ``labels`` on the artist/album link graph."""
    rows, cols, w = d.setdefault("links", link_graph(d))
    two_m = w.sum()
    if two_m == 0:
        return 0.0
    deg = np.bincount(rows, weights=w, minlength=d["n"])
    inside = w[labels[rows] == labels[cols]].sum() / two_m
    return float(inside - ((np.bincount(labels, weights=deg) / two_m) ** 2).sum())


def by_modularity(d: Record, ks: list[int]) -> np.ndarray:
    return at_k(d, max(ks, key=lambda k: modularity(d, at_k(d, k))))


def link_communities(d: Record) -> np.ndarray:
    """k-means at k_max + 1, then its clusters joined greedily while that raises the link
    graph's modularity (Clauset, Newman & Moore 2004 on the graph of clusters); k-means at
    the number of groups left."""
    rows, cols, w = d.setdefault("links", link_graph(d))
    K = d["k_max"] + 1
    labels = d["labels"][K]
    W = np.zeros((K, K))
    np.add.at(W, (labels[rows], labels[cols]), w)
    if W.sum() == 0:
        return shipped(d)
    W /= W.sum()

    def q(groups: list[list[int]]) -> float:
        return sum(W[np.ix_(g, g)].sum() - W[g].sum() ** 2 for g in groups)

    def joined(groups: list[list[int]], a: int, b: int) -> list[list[int]]:
        return [groups[a] + groups[b], *(g for i, g in enumerate(groups) if i not in (a, b))]

    groups = [[c] for c in range(K)]
    while len(groups) > 1:
        pairs = [(a, b) for a in range(len(groups)) for b in range(a + 1, len(groups))]
        best = max((q(joined(groups, a, b)), a, b) for a, b in pairs)
        if best[0] <= q(groups):
            break
        groups = joined(groups, best[1], best[2])
    return at_k(d, nearest(d, max(2, len(groups))))


def near_shipped(d: Record) -> list[int]:
    return [k for k in candidates(d) if abs(k - d["shipped"]) <= 1] or [d["shipped"]]


# --- over-clustering and merging -------------------------------------------------------------


def ward_merges(
    X: np.ndarray, labels: np.ndarray
) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    """Greedy Ward merging of ``labels``' clusters down to one: per number of clusters j, the
    Ward cost of going from j to j − 1 (the rise in within-cluster sum of squares) and the
    partition with j clusters."""
    labels = labels.copy()
    stats = {
        int(c): (float((labels == c).sum()), X[labels == c].mean(axis=0)) for c in np.unique(labels)
    }
    cost: dict[int, float] = {}
    parts = {len(stats): labels.copy()}
    while len(stats) > 1:
        ids = sorted(stats)

        def ward(a: int, b: int) -> float:
            (na, ma), (nb, mb) = stats[a], stats[b]
            return na * nb / (na + nb) * float(((ma - mb) ** 2).sum())

        c, a, b = min((ward(a, b), a, b) for i, a in enumerate(ids) for b in ids[i + 1 :])
        (na, ma), (nb, mb) = stats[a], stats[b]
        cost[len(stats)] = c
        stats[a] = (na + nb, (na * ma + nb * mb) / (na + nb))
        del stats[b]
        labels[labels == b] = a
        parts[len(stats)] = labels.copy()
    return cost, parts


def ward_jump(d: Record) -> np.ndarray:
    """k-means at k_max + 1, clusters merged by Ward's criterion; k where merging costs the
    most relative to the merge before (an elbow on the merge path)."""
    cost, _ = ward_merges(d["X"], d["labels"][d["k_max"] + 1])
    ks = [k for k in candidates(d) if k + 1 in cost]
    return at_k(d, max(ks, key=lambda k: cost[k] / cost[k + 1]))


def ward_refined(d: Record, k: int, factor: int = 3) -> np.ndarray:
    """k-means at min(k_max + 1, factor·k), merged by Ward to k, then k-means (one run)
    started from the merged centres: another local optimum for k."""
    from sklearn.cluster import KMeans

    X = d["X"]
    _, parts = ward_merges(X, d["labels"][min(d["k_max"] + 1, factor * k)])
    labels = parts[k]
    centres = np.array([X[labels == c].mean(axis=0) for c in np.unique(labels)])
    return KMeans(k, init=centres, n_init=1).fit_predict(X)


# --- subsamples: consensus and stability -----------------------------------------------------


def subsample_study(d: Record, ks: list[int], seed: int = 0) -> dict[int, dict]:
    """Per k: the consensus matrix of k-means on ``SUBSAMPLES`` subsamples of 80 % (Monti et
    al. 2003), its PAC (share of pairs together in 10–90 % of the runs they share,
    Șenbabaoğlu et al. 2014), the mean ARI of disjoint pairs of runs on the rows they share
    (Ben-Hur et al. 2002) and the consensus partition (average link on 1 − consensus)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.cluster import KMeans

    X = d["X"]
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    subs = [
        np.sort(rng.choice(n, int(SUBSAMPLE_SHARE * n), replace=False)) for _ in range(SUBSAMPLES)
    ]
    seen = np.zeros((n, SUBSAMPLES))
    for r, rows in enumerate(subs):
        seen[rows, r] = 1
    both = np.maximum(seen @ seen.T, 1)
    out = {}
    for k in ks:
        together = np.zeros((n, n))
        runs = []
        for r, rows in enumerate(subs):
            lab = KMeans(k, n_init=1, random_state=r).fit_predict(X[rows])
            full = -np.ones(n, int)
            full[rows] = lab
            runs.append(full)
            onehot = np.zeros((n, k))
            onehot[rows, lab] = 1
            together += onehot @ onehot.T
        consensus = together / both
        pairs = consensus[np.triu_indices(n, 1)]
        aris = []
        for a in range(0, SUBSAMPLES - 1, 2):
            common = (runs[a] >= 0) & (runs[a + 1] >= 0)
            aris.append(adjusted_rand_score(runs[a][common], runs[a + 1][common]))
        dist = 1 - consensus
        np.fill_diagonal(dist, 0)
        tree = linkage(squareform(dist, checks=False), method="average")
        out[k] = {
            "pac": float(((pairs > 0.1) & (pairs < 0.9)).mean()),
            "ari": float(np.mean(aris)),
            "consensus_labels": fcluster(tree, k, criterion="maxclust") - 1,
        }
    return out


def build_subsamples(seed: int, kind: str, records: list[Record], cache: Path = CACHE) -> None:
    """Adds ``sub`` (see :func:`subsample_study`) for k in shipped k ± 1 and m to each record."""
    path = cache / f"sub_{kind}_seed{seed}.pkl"
    if path.exists():
        subs = pickle.loads(path.read_bytes())
    else:
        subs = []
        for i, d in enumerate(records):
            ks = {k for k in range(d["shipped"] - 1, d["shipped"] + 2) if 2 <= k <= d["k_max"]}
            subs.append(subsample_study(d, sorted(ks | {d["m"]})))
            print(f"{kind} seed {seed} subsamples: mix {i + 1}", file=sys.stderr, flush=True)
        path.write_bytes(pickle.dumps(subs))
    for d, sub in zip(records, subs, strict=True):
        d["sub"] = sub


def by_subsamples(d: Record, key: str, sign: float) -> np.ndarray:
    """Among shipped k ± 1, the k with the best ``key`` (ties: nearest the shipped k)."""
    ks = [k for k in near_shipped(d) if k in d["sub"]] or [d["shipped"]]
    return at_k(d, max(ks, key=lambda k: (sign * d["sub"][k][key], -abs(k - d["shipped"]))))


# --- nested splits -------------------------------------------------------------------------


def nestedness(d: Record, k: int) -> float:
    """Share of tracks whose k + 1 cluster lies mostly in their k cluster (1: the k + 1
    partition only splits one of the k clusters)."""
    a, b = d["labels"][k], d["labels"][k + 1]
    table = np.zeros((k, k + 1))
    np.add.at(table, (a, b), 1)
    return float(table.max(axis=0).sum() / d["n"])


def up_while_nested(d: Record, threshold: float = 0.96) -> np.ndarray:
    """From the shipped k, one more cluster while k + 1 only splits a cluster of k."""
    k = d["shipped"]
    while k + 1 in candidates(d) and nestedness(d, k) >= threshold:
        k += 1
    return at_k(d, k)


def most_central(d: Record, ks: list[int]) -> np.ndarray:
    """The k whose k-means partition agrees most (mean NMI) with those of the other k
    (Strehl & Ghosh's average NMI as a consensus criterion)."""
    others = range(2, d["k_max"] + 2)

    def centrality(k: int) -> float:
        return float(
            np.mean(
                [
                    normalized_mutual_info_score(d["labels"][k], d["labels"][j])
                    for j in others
                    if j != k
                ]
            )
        )

    return at_k(d, max(ks, key=centrality))


def ward_then_kmeans(d: Record, k: int) -> np.ndarray:
    """Agglomerative Ward on the tracks to k, then k-means (one run) from its centres."""
    from sklearn.cluster import AgglomerativeClustering, KMeans

    X = d["X"]
    labels = AgglomerativeClustering(k, linkage="ward").fit_predict(X)
    centres = np.array([X[labels == c].mean(axis=0) for c in range(k)])
    return KMeans(k, init=centres, n_init=1).fit_predict(X)


# --- the slow rules (--slow) -----------------------------------------------------------------


def evidence_accumulation(
    d: Record, runs: int = 30, own: bool = False, method: str = "average"
) -> np.ndarray:
    """Fred & Jain (2005): co-association of ``runs`` k-means runs with k drawn in
    √n/2..√n, a dendrogram on 1 − co-association, cut where the partition lives longest
    (counting clusters of at least the minimum size); its partition or k-means at that k."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.cluster import KMeans

    X = d["X"]
    n = X.shape[0]
    rng = np.random.default_rng(0)
    root = int(math.sqrt(n))
    co = np.zeros((n, n))
    for r in range(runs):
        lab = KMeans(
            int(rng.integers(max(2, root // 2), root + 1)), n_init=1, random_state=r
        ).fit_predict(X)
        co += lab[:, None] == lab[None, :]
    dist = 1 - co / runs
    np.fill_diagonal(dist, 0)
    tree = linkage(squareform(dist, checks=False), method=method)
    heights = tree[:, 2]
    best = None
    for j in range(2, min(n - 1, 200)):
        life = heights[n - j] - heights[n - j - 1]
        lab = fcluster(tree, j, criterion="maxclust") - 1
        big = int((np.bincount(lab) >= smallest(d)).sum())
        if big >= 2 and (best is None or life > best[0]):
            best = (life, big, lab)
    if best is None:
        return at_k(d, 2)
    return merged(d, best[2]) if own else at_k(d, nearest(d, best[1]))


def g_means(d: Record, critical: float = 1.8692) -> np.ndarray:
    """Hamerly & Elkan (2003): split a cluster in two while its points, projected on the axis
    between the two halves' centres, fail the Anderson–Darling normality test (corrected
    statistic above ``critical``: 1.8692 is α = 10⁻⁴, 1.57 α = 10⁻³); both halves must reach
    the minimum size; k-means at the k found."""
    from scipy.stats import anderson
    from sklearn.cluster import KMeans

    X, k_max, sm = d["X"], d["k_max"], smallest(d)
    labels, k = np.zeros(d["n"], int), 1
    while k < k_max:
        centres, split = [], False
        for c in range(k):
            P = X[labels == c]
            if len(P) >= 2 * sm and len(centres) + k - c < k_max:
                km = KMeans(2, n_init=3, random_state=0).fit(P)
                v = km.cluster_centers_[0] - km.cluster_centers_[1]
                x = P @ v
                x = (x - x.mean()) / max(x.std(), 1e-12)
                with warnings.catch_warnings():  # SciPy ≥ 1.17 asks for a p-value method
                    warnings.simplefilter("ignore", FutureWarning)
                    a2 = anderson(x).statistic * (1 + 4 / len(x) - 25 / len(x) ** 2)
                if np.bincount(km.labels_).min() >= sm and a2 > critical:
                    centres.extend(km.cluster_centers_)
                    split = True
                    continue
            centres.append(P.mean(axis=0))
        if not split:
            break
        k = len(centres)
        labels = KMeans(k, init=np.array(centres), n_init=1).fit_predict(X)
    return at_k(d, nearest(d, max(2, len(np.unique(labels)))))


def entropy_merging(d: Record) -> np.ndarray:
    """Baudry et al. (2010): a diagonal Gaussian mixture with k_max components, components
    merged pairwise by the largest fall in the posteriors' entropy, k at the elbow of the
    entropy (best two-line fit)."""
    from sklearn.mixture import GaussianMixture

    X = d["X"]
    gm = GaussianMixture(d["k_max"], covariance_type="diag", reg_covar=1e-3, random_state=0)
    T = gm.fit(X).predict_proba(X)

    def ent(P: np.ndarray) -> float:
        P = np.clip(P, 1e-300, 1)
        return float(-(P * np.log(P)).sum())

    E = {T.shape[1]: ent(T)}
    while T.shape[1] > 1:
        pairs = [(a, b) for a in range(T.shape[1]) for b in range(a + 1, T.shape[1])]
        a, b = max(pairs, key=lambda p: ent(T[:, list(p)]) - ent(T[:, [p[0]]] + T[:, [p[1]]]))
        T = np.column_stack(
            [T[:, a] + T[:, b], *(T[:, j] for j in range(T.shape[1]) if j not in (a, b))]
        )
        E[T.shape[1]] = ent(T)
    ks = sorted(E)

    def two_lines(kb: int) -> float:
        err = 0.0
        for seg in ([k for k in ks if k <= kb], [k for k in ks if k >= kb]):
            if len(seg) >= 2:
                p = np.polyfit(seg, [E[k] for k in seg], 1)
                err += float(sum((np.polyval(p, k) - E[k]) ** 2 for k in seg))
        return err

    return at_k(d, nearest(d, min(range(2, max(ks)), key=two_lines)))


# --- scoring ---------------------------------------------------------------------------------

AUTO: dict[str, Rule] = {
    "shipped: median(uniform gap, Gaussian gap, BIC)": shipped,
    "artist+album link modularity, best k": lambda d: by_modularity(d, candidates(d)),
    "same, among shipped k ± 1": lambda d: by_modularity(d, near_shipped(d)),
    "k-means at k_max + 1, clusters joined by link modularity": link_communities,
    "k-means at k_max + 1, Ward merging, biggest cost jump": ward_jump,
    "shipped k, partition: over-cluster, Ward, k-means": lambda d: merged(
        d, ward_refined(d, d["shipped"])
    ),
    "shipped k ± 1, lowest PAC": lambda d: by_subsamples(d, "pac", -1),
    "shipped k ± 1, most stable (subsample ARI)": lambda d: by_subsamples(d, "ari", 1),
    "shipped k, consensus partition": lambda d: merged(
        d, d["sub"][d["shipped"]]["consensus_labels"]
    ),
    "shipped k, one more while k + 1 is nested (≥ 0.96)": up_while_nested,
    "most central k (mean NMI to the other k's partitions)": lambda d: most_central(
        d, candidates(d)
    ),
    "most central k, among shipped k ± 1": lambda d: most_central(d, near_shipped(d)),
}
SLOW: dict[str, Rule] = {
    "evidence accumulation, average link, lifetime": evidence_accumulation,
    "same, its own partition": lambda d: evidence_accumulation(d, own=True),
    "same, single link": lambda d: evidence_accumulation(d, method="single"),
    "G-means, α = 1e-4": g_means,
    "G-means, α = 1e-3": lambda d: g_means(d, 1.57),
    "diagonal GMM at k_max, entropy merging, elbow": entropy_merging,
}
GIVEN: dict[str, Rule] = {
    "k = m: over-cluster (3m), Ward to m, k-means from there": lambda d: ward_refined(d, d["m"]),
    "k = m: over-cluster (2m), Ward to m, k-means from there": lambda d: ward_refined(d, d["m"], 2),
    "k = m: consensus partition of 10 subsamples": lambda d: d["sub"][d["m"]]["consensus_labels"],
    "k = m: agglomerative Ward": lambda d: _agglomerative(d["X"], d["m"]),
    "k = m: agglomerative Ward, then k-means from there": lambda d: ward_then_kmeans(d, d["m"]),
    "k = m: k-means with another seed (the noise)": lambda d: clustering.fit_labels(
        d["X"], d["m"], 1
    ),
}


def _agglomerative(X: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(k, linkage="ward").fit_predict(X)


def scores(rule: Rule, records: list[Record]) -> tuple[float, float, float, int]:
    """Mean NMI and ARI of ``rule`` minus those of k = m (shipped fit_labels), share of mixes
    with k within ±1 of m, mixes with a cluster under the minimum size."""
    dn, da, within, small = [], [], 0, 0
    for d in records:
        labels = rule(d)
        given = d["labels"][d["m"]]
        dn.append(
            normalized_mutual_info_score(d["truth"], labels)
            - normalized_mutual_info_score(d["truth"], given)
        )
        da.append(adjusted_rand_score(d["truth"], labels) - adjusted_rand_score(d["truth"], given))
        sizes = np.unique(labels, return_counts=True)[1]
        within += abs(len(sizes) - d["m"]) <= 1
        small += int(sizes.min() < smallest(d))
    return float(np.mean(dn)), float(np.mean(da)), within / len(records), small


def table(
    rules: dict[str, Rule],
    data: dict[tuple[str, int], list[Record]],
    seeds: list[int],
    kinds: list[str],
) -> None:
    print("| rule | " + " | ".join(kinds) + " |")
    print("|:---|" + "---:|" * len(kinds))
    for name, rule in rules.items():
        cells = []
        for kind in kinds:
            per = np.array([scores(rule, data[kind, s]) for s in seeds])
            small = f", {int(per[:, 3].sum())} small" if per[:, 3].sum() else ""
            cells.append(
                f"{per[:, 0].mean():+.3f} / {per[:, 1].mean():+.3f} "
                f"({per[:, 2].min():.0%}–{per[:, 2].max():.0%}{small})"
            )
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--slow", action="store_true", help="also the rules that fit many models")
    args = ap.parse_args(argv)
    threadpool_limits(1)
    data = {(kind, s): build(s, kind, args.cache) for kind in args.kinds for s in args.seeds}
    for (kind, s), records in data.items():
        build_subsamples(s, kind, records, args.cache)
    print("auto k: mean over seeds of auto − (k = number of playlists), NMI / ARI (±1 range)\n")
    table(AUTO | (SLOW if args.slow else {}), data, args.seeds, args.kinds)
    print("\nat k = number of playlists: NMI / ARI minus the shipped fit_labels\n")
    table(GIVEN, data, args.seeds, args.kinds)


if __name__ == "__main__":
    main()
