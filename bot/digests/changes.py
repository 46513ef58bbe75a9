"""What changed between two analyses of a playlist: tracks added/removed, clusters matched.

Pure computation on :class:`bot.models.Analysis` values; the digest cog renders the result.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bot.models import Analysis, Track
from bot.warm_start import match_sets


@dataclass(frozen=True)
class TrackChange:
    """A track added or removed.

    ``cluster``/``cluster_name`` always refer to the *current* analysis: for an added track
    the cluster it joined; for a removed one the current cluster that continues the one it
    left (None, with the old name, when that cluster vanished). ``previous_cluster`` is the
    removed track's index in the previous analysis."""

    track_id: str
    name: str
    artists: list[str]
    cluster: int | None
    cluster_name: str | None
    previous_cluster: int | None = None


@dataclass(frozen=True)
class ClusterChange:
    """A current cluster matched to its previous counterpart (or new: ``previous_index`` None).

    ``joined``: members that were not in the matched previous cluster (added tracks, or tracks
    that moved in); ``left``: the reverse."""

    index: int
    name: str
    size: int
    previous_index: int | None
    previous_size: int
    jaccard: float
    joined: int
    left: int
    # A vanished cluster whose remaining tracks mostly went to one current cluster: that one.
    merged_into: int | None = None
    merged_into_name: str | None = None

    @property
    def delta(self) -> int:
        return self.size - self.previous_size


@dataclass
class DigestChanges:
    """What changed between two analyses of the same playlist. Pure data; the cog renders it."""

    previous_analysis_id: int | None
    previous_created_at: str | None
    added: list[TrackChange] = field(default_factory=list)
    removed: list[TrackChange] = field(default_factory=list)
    clusters: list[ClusterChange] = field(default_factory=list)  # every current cluster
    vanished: list[ClusterChange] = field(default_factory=list)  # previous, no counterpart
    moved: int = 0  # kept tracks now in a cluster other than their old cluster's counterpart

    @property
    def grew(self) -> list[ClusterChange]:
        return [c for c in self.clusters if c.previous_index is not None and c.delta > 0]

    @property
    def shrank(self) -> list[ClusterChange]:
        return [c for c in self.clusters if c.previous_index is not None and c.delta < 0]

    @property
    def new_clusters(self) -> list[ClusterChange]:
        return [c for c in self.clusters if c.previous_index is None]

    @property
    def kept(self) -> int:
        """Tracks in both analyses."""
        return sum(c.size for c in self.clusters) - len(self.added)

    @property
    def reshuffled(self) -> bool:
        """Re-clustering regrouped the playlist (over a quarter of the kept tracks changed
        cluster): per-cluster growth says little then, the cog says "regrouped" instead."""
        return self.kept > 0 and self.moved * 4 > self.kept

    @property
    def has_changes(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.vanished
            or self.new_clusters
            or self.moved
            or any(c.delta for c in self.clusters)
        )


def _members(analysis: Analysis) -> list[set[str]]:
    sets: list[set[str]] = [set() for _ in analysis.clusters]
    pos = {c.index: i for i, c in enumerate(analysis.clusters)}
    for track_id, idx in analysis.assignments.items():
        if idx in pos:
            sets[pos[idx]].add(track_id)
    return sets


# Pair current clusters with previous ones by shared tracks (Hungarian assignment on Jaccard
# overlap): the same matching numbers a warm-started digest's clusters (bot.warm_start).
match_clusters = match_sets


def _track_change(
    track: Track, cluster: int | None, cluster_name: str | None, previous: int | None = None
) -> TrackChange:
    return TrackChange(
        track_id=track.id,
        name=track.name,
        artists=list(track.artists),
        cluster=cluster,
        cluster_name=cluster_name,
        previous_cluster=previous,
    )


def _vanished(
    index: int, name: str, before: set[str], current: Analysis, cur_names: dict[int, str]
) -> ClusterChange:
    """A previous cluster with no counterpart; ``merged_into`` the current cluster that took
    most of its remaining tracks, when one took at least half of them (a regroup merged it,
    rather than its tracks leaving the playlist or scattering)."""
    now = Counter(current.assignments[t] for t in before if t in current.assignments)
    merged = None
    if now:
        target, n = now.most_common(1)[0]
        if 2 * n >= sum(now.values()):
            merged = target
    return ClusterChange(
        index,
        name,
        0,
        index,
        len(before),
        0.0,
        0,
        len(before),
        merged_into=merged,
        merged_into_name=cur_names.get(merged) if merged is not None else None,
    )


def summarize_changes(previous: Analysis, current: Analysis) -> DigestChanges:
    """Tracks added/removed and how clusters grew or shrank between two analyses.

    Cluster indices are arbitrary across runs, so clusters are matched by member overlap
    (:func:`match_clusters`) before sizes are compared."""
    prev_sets, cur_sets = _members(previous), _members(current)
    matches = match_clusters(prev_sets, cur_sets)
    prev_ids = {t.id for t in previous.tracks}
    cur_ids = {t.id for t in current.tracks}
    cur_names = {c.index: c.name for c in current.clusters}
    prev_names = {c.index: c.name for c in previous.clusters}

    added = [
        _track_change(
            t,
            current.assignments.get(t.id),
            cur_names.get(current.assignments.get(t.id, -1)),
        )
        for t in current.tracks
        if t.id not in prev_ids
    ]
    # previous cluster index -> the current cluster that continues it
    counterpart = {
        previous.clusters[ppos].index: current.clusters[pos].index
        for pos, (ppos, _) in matches.items()
    }
    removed = []
    for t in previous.tracks:
        if t.id in cur_ids:
            continue
        old = previous.assignments.get(t.id)
        now = counterpart.get(old) if old is not None else None
        name = cur_names.get(now) if now is not None else prev_names.get(old)  # type: ignore[arg-type]
        removed.append(_track_change(t, now, name, old))

    clusters: list[ClusterChange] = []
    matched_prev: set[int] = set()
    for pos, cluster in enumerate(current.clusters):
        members = cur_sets[pos]
        if pos in matches:
            ppos, jac = matches[pos]
            matched_prev.add(ppos)
            before = prev_sets[ppos]
            clusters.append(
                ClusterChange(
                    index=cluster.index,
                    name=cluster.name,
                    size=len(members),
                    previous_index=previous.clusters[ppos].index,
                    previous_size=len(before),
                    jaccard=jac,
                    joined=len(members - before),
                    left=len(before - members),
                )
            )
        else:
            clusters.append(
                ClusterChange(cluster.index, cluster.name, len(members), None, 0, 0.0, 0, 0)
            )
    vanished = [
        _vanished(c.index, c.name, prev_sets[p], current, cur_names)
        for p, c in enumerate(previous.clusters)
        if p not in matched_prev
    ]

    # Kept tracks whose new cluster is not the counterpart of their old one.
    moved = sum(
        1
        for tid in prev_ids & cur_ids
        if tid in previous.assignments
        and tid in current.assignments
        and counterpart.get(previous.assignments[tid]) != current.assignments[tid]
    )
    return DigestChanges(
        previous_analysis_id=previous.analysis_id,
        previous_created_at=previous.created_at,
        added=added,
        removed=removed,
        clusters=clusters,
        vanished=vanished,
        moved=moved,
    )
