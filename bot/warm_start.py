"""Keep clusters steady between two analyses of the same playlist (digests, issue #14).

A fresh k-means run on a playlist that lost one track can regroup many of the others (measured
on real playlists: README "Playlist digests"), and numbers clusters anew, so "Cluster 3" of
yesterday and of today may be different clusters. Given the previous analysis's assignment
(track id → cluster index), :func:`bot.clustering.fit` instead

1. places the previous clusters in the *new* feature space: the centre of each one's tracks
   that are still in the playlist (:func:`previous_centres`);
2. runs k-means from those centres (:func:`warm_labels`), keeping the previous k unless auto k
   says the playlist changed shape (:func:`keeps_shape`: auto k differs by two or more, or by
   one while over a third of the tracks are new);
3. numbers the result like the previous clusters (:func:`number_like`, Hungarian matching on
   shared tracks), so a cluster that continues keeps its number.

Pure computation (numpy, scipy, scikit-learn); deterministic for a given input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Auto k is within ±1 of the true number of groups in 86 % of the bench mixes
# (bench/quality.py): a difference of one is its own noise, not a changed playlist — when most
# of the playlist is as before (at least this share of its tracks were in the previous one).
K_TOLERANCE = 1
KEEP_SHARE = 2 / 3


@dataclass(frozen=True)
class PreviousClusters:
    """The previous clusters seen in the new feature space."""

    centres: np.ndarray  # one row per previous cluster with tracks still present
    indices: list[int]  # their previous cluster index, same order
    sizes: list[int]  # their tracks still present
    k: int  # clusters in the previous analysis (those that lost all their tracks too)
    shared: float  # share of the current tracks that were in the previous analysis


def previous_centres(
    X: np.ndarray, ids: Sequence[str], previous: Mapping[str, int]
) -> PreviousClusters | None:
    """Centre (in ``X``'s space) of each previous cluster's tracks still present; None when
    no track of the previous analysis is left."""
    rows: dict[int, list[int]] = {}
    for r, tid in enumerate(ids):
        if tid in previous:
            rows.setdefault(int(previous[tid]), []).append(r)
    if not rows:
        return None
    indices = sorted(rows)
    return PreviousClusters(
        centres=np.array([X[rows[i]].mean(axis=0) for i in indices]),
        indices=indices,
        sizes=[len(rows[i]) for i in indices],
        k=len(set(previous.values())),
        shared=sum(len(r) for r in rows.values()) / len(ids),
    )


def keeps_shape(previous_k: int, auto_k: int, shared: float = 1.0) -> bool:
    """Whether to keep the previous k: auto k on the new playlist agrees, or differs by
    :data:`K_TOLERANCE` while at least :data:`KEEP_SHARE` of the tracks (``shared``) were in
    the previous analysis. Otherwise the playlist changed shape: auto k's own fit is used
    (still numbered like the previous clusters)."""
    if auto_k == previous_k:
        return True
    return abs(auto_k - previous_k) <= K_TOLERANCE and shared >= KEEP_SHARE


def warm_labels(X: np.ndarray, start: PreviousClusters, k: int, seed: int = 0) -> np.ndarray:
    """k-means with k clusters started from the previous centres (one run, no restarts).

    More centres than k: the clusters with the fewest remaining tracks are dropped (their
    tracks go to the nearest kept one). Fewer (a cluster lost all its tracks, or k grew): the
    tracks farthest from every centre start the new ones, one at a time.
    """
    from sklearn.cluster import KMeans

    keep = sorted(range(len(start.indices)), key=lambda i: (-start.sizes[i], start.indices[i]))
    centres = start.centres[sorted(keep[:k])]
    while len(centres) < k:
        dist = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2).min(axis=1)
        centres = np.vstack([centres, X[int(dist.argmax())]])
    if k == 1:
        return np.zeros(X.shape[0], dtype=int)
    return KMeans(n_clusters=k, init=centres, n_init=1, random_state=seed).fit_predict(X)


def match_sets(
    previous: Sequence[set[str]], current: Sequence[set[str]]
) -> dict[int, tuple[int, float]]:
    """Pair current clusters (by position) with previous ones: Hungarian assignment maximising
    the total Jaccard overlap of members. Returns ``{current_pos: (previous_pos, jaccard)}``;
    pairs with no common member are left out (the cluster is new / vanished)."""
    if not previous or not current:
        return {}
    from scipy.optimize import linear_sum_assignment

    overlap = np.zeros((len(current), len(previous)))
    for i, cur in enumerate(current):
        for j, prev in enumerate(previous):
            union = len(cur | prev)
            overlap[i, j] = len(cur & prev) / union if union else 0.0
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return {
        int(i): (int(j), float(overlap[i, j]))
        for i, j in zip(rows, cols, strict=True)
        if overlap[i, j] > 0
    }


def number_like(labels: np.ndarray, ids: Sequence[str], previous: Mapping[str, int]) -> np.ndarray:
    """Renumber ``labels`` 0..k-1 so each cluster that continues a previous one (matched by
    shared tracks, :func:`match_sets`) keeps that one's number when it is below k; the other
    clusters take the free numbers, largest first (ties by their first track id)."""
    found = sorted(set(labels.tolist()))
    members: dict[int, set[str]] = {lab: set() for lab in found}
    for tid, lab in zip(ids, labels.tolist(), strict=True):
        members[lab].add(tid)
    before: dict[int, set[str]] = {}
    for tid, idx in previous.items():
        before.setdefault(int(idx), set()).add(tid)
    prev_order = sorted(before)
    matches = match_sets([before[p] for p in prev_order], [members[lab] for lab in found])
    k = len(found)
    remap: dict[int, int] = {}
    for pos, (ppos, _) in matches.items():
        if prev_order[ppos] < k:
            remap[found[pos]] = prev_order[ppos]
    free = [n for n in range(k) if n not in remap.values()]
    first_id = {lab: min(members[lab]) for lab in found}
    sizes = Counter(labels.tolist())
    rest = sorted(
        (lab for lab in found if lab not in remap), key=lambda lab: (-sizes[lab], first_id[lab])
    )
    remap.update(zip(rest, free, strict=True))
    return np.array([remap[lab] for lab in labels.tolist()], dtype=int)
