"""Keep clusters steady between two analyses of the same playlist (digests, issue #14).

A fresh k-means run on a playlist that lost one track can regroup many of the others (measured
on real playlists: README "Playlist digests"), and numbers clusters anew, so "Cluster 3" of
yesterday and of today may be different clusters. Given the previous analysis's assignment
(track id → cluster index), :func:`bot.clustering.fit` instead

1. places the previous clusters in the *new* feature space: the centre of each one's tracks
   that are still in the playlist (:func:`previous_centres`);
2. runs k-means from those centres (:func:`warm_labels`), keeping the previous k unless auto k
   says the playlist changed shape (:func:`keeps_shape`);
3. numbers the result like the previous clusters (:func:`number_like`, Hungarian matching on
   shared tracks), so a cluster that continues keeps its number.

Pure computation (numpy, scipy, scikit-learn); deterministic for a given input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

# numpy is imported where it is used: the bot process imports this module (digest summaries
# match clusters with it) and numpy costs it ~10 MB of its 150 MB budget (issue #16).
if TYPE_CHECKING:
    import numpy as np

# How far auto k on the new playlist may stray from the previous k before the playlist is
# said to have changed shape, by how much of it changed (``PreviousClusters.changed``). Auto k
# is itself within ±1 of the true number of groups in only 86 % of the bench mixes
# (bench/quality.py): a difference of one means little unless over a third of the tracks
# changed. A difference of two or more after a small edit is auto k's own instability too:
# on the digest bench (bench/digest_stability.py) five tracks added to a real 99-track
# playlist turned auto k from 4 to 2, and following it moved 39 of the 99.
ONE_OFF_CHANGE = 1 / 3
SMALL_EDIT = 0.1


@dataclass(frozen=True)
class PreviousClusters:
    """The previous clusters seen in the new feature space."""

    centres: np.ndarray  # one row per previous cluster with tracks still present
    indices: list[int]  # their previous cluster index, same order
    sizes: list[int]  # their tracks still present
    # share of the tracks in either version that are in only one (added or removed)
    changed: float

    @property
    def k(self) -> int:
        """Previous clusters that still have tracks."""
        return len(self.indices)


def previous_centres(
    X: np.ndarray, ids: Sequence[str], previous: Mapping[str, int]
) -> PreviousClusters | None:
    """Centre (in ``X``'s space) of each previous cluster's tracks still present; None when
    no track of the previous analysis is left."""
    import numpy as np

    rows: dict[int, list[int]] = {}
    for r, tid in enumerate(ids):
        if tid in previous:
            rows.setdefault(int(previous[tid]), []).append(r)
    if not rows:
        return None
    indices = sorted(rows)
    shared = sum(len(r) for r in rows.values())
    return PreviousClusters(
        centres=np.array([X[rows[i]].mean(axis=0) for i in indices]),
        indices=indices,
        sizes=[len(rows[i]) for i in indices],
        changed=1 - shared / (len(ids) + len(previous) - shared),
    )


def keeps_shape(previous_k: int, auto_k: int, changed: float) -> bool:
    """Whether a digest keeps the previous k (clusters that still have tracks) rather than
    auto k on the new playlist: when they agree, differ by one and at most
    :data:`ONE_OFF_CHANGE` of the tracks changed, or differ by more after a small edit
    (under :data:`SMALL_EDIT`). Otherwise the playlist changed shape: auto k's own fit is
    used (still numbered like the previous clusters)."""
    diff = abs(auto_k - previous_k)
    return diff == 0 or (diff == 1 and changed <= ONE_OFF_CHANGE) or changed < SMALL_EDIT


def warm_labels(X: np.ndarray, start: PreviousClusters, k: int, seed: int = 0) -> np.ndarray:
    """k-means with k clusters started from the previous centres (one run, no restarts).

    More centres than k: the clusters with the fewest remaining tracks are dropped (their
    tracks go to the nearest kept one). Fewer (a cluster lost all its tracks, or k grew): the
    tracks farthest from every centre start the new ones, one at a time.
    """
    import numpy as np
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
    import numpy as np

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
    import numpy as np

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
