"""Clustering on the bundled real data: determinism, k handling, descriptions, representatives."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from bot.clustering import max_auto_k, min_auto_k
from bot.demo import demo_labels, load_demo
from bot.errors import InvalidInput, TooSmall
from bot.features.matrix import build_matrix
from bot.jobs.cpu import cluster_step
from bot.models import AUDIO_FEATURES, FeatureTable, FetchResult, Track
from bot.pipeline import features_from_tracks


@pytest.fixture(scope="module")
def demo() -> FetchResult:
    return load_demo()


def _subset(fetched: FetchResult, playlists: set[str]) -> FetchResult:
    labels = demo_labels()
    tracks = [t for t in fetched.tracks if labels[t.id] in playlists]
    return FetchResult(meta=fetched.meta, tracks=tracks)


def _run(fetched: FetchResult, k: int | None, seed: int = 0):
    table = features_from_tracks(fetched.tracks)
    assert table is not None
    return cluster_step(fetched, table, k, seed)


def test_same_input_gives_same_clusters_whatever_the_order(demo: FetchResult) -> None:
    first = _run(demo, None)
    again = _run(demo, None)
    shuffled_tracks = list(demo.tracks)
    random.Random(7).shuffle(shuffled_tracks)
    shuffled = _run(FetchResult(meta=demo.meta, tracks=shuffled_tracks), None)
    assert first.assignments == again.assignments == shuffled.assignments
    assert [c.track_ids for c in first.clusters] == [c.track_ids for c in shuffled.clusters]
    assert first.coords == shuffled.coords


def test_auto_k_is_within_range_and_every_track_is_assigned(demo: FetchResult) -> None:
    analysis = _run(demo, None)
    n = len(demo.tracks)
    assert min_auto_k(n) == 3
    assert 3 <= analysis.k <= max_auto_k(n)
    assert analysis.k_requested is None
    assert len(analysis.clusters) == analysis.k
    assert sorted(analysis.assignments) == sorted(t.id for t in demo.tracks)
    assert sum(c.size for c in analysis.clusters) == n
    sizes = [c.size for c in analysis.clusters]
    assert sizes == sorted(sizes, reverse=True)  # numbered by size
    assert analysis.silhouette is not None and -1 <= analysis.silhouette <= 1


@pytest.mark.parametrize("k", [2, 4, 7])
def test_given_k_is_used(demo: FetchResult, k: int) -> None:
    analysis = _run(demo, k)
    assert analysis.k == k and analysis.k_requested == k
    assert len({c for c in analysis.assignments.values()}) == k
    for c in analysis.clusters:
        assert (
            c.size
            == len(c.track_ids)
            == sum(1 for v in analysis.assignments.values() if v == c.index)
        )


def test_too_small_playlist_is_refused(demo: FetchResult) -> None:
    tiny = FetchResult(meta=demo.meta, tracks=demo.tracks[:9])
    with pytest.raises(TooSmall) as err:
        _run(tiny, None)
    assert "9 playable tracks" in err.value.user_message and "10" in err.value.user_message


@pytest.mark.parametrize("k", [1, 0, 101])
def test_k_out_of_range_is_refused(demo: FetchResult, k: int) -> None:
    with pytest.raises(InvalidInput) as err:
        _run(demo, k)  # 300 tracks: 2 <= k <= 100
    assert "between 2 and 100" in err.value.user_message


def test_descriptions_name_the_right_clusters_on_real_playlists(demo: FetchResult) -> None:
    labels = demo_labels()
    mix = _subset(demo, {"Big Room EDM", "Vibra Tropical"})
    analysis = _run(mix, 2)
    for c in analysis.clusters:
        majority = Counter(labels[t] for t in c.track_ids).most_common(1)[0][0]
        if majority == "Big Room EDM":
            assert "high energy" in c.description
            assert "acoustic" not in c.description.split(" · ")
        else:
            assert "acoustic" in c.description.split(" · ")
            assert "high energy" not in c.description
    majorities = {
        Counter(labels[t] for t in c.track_ids).most_common(1)[0][0] for c in analysis.clusters
    }
    assert majorities == {"Big Room EDM", "Vibra Tropical"}
    assert all(c.name.startswith(f"Cluster {c.index + 1} · ") for c in analysis.clusters)


def test_clusters_follow_the_source_playlists_on_the_demo(demo: FetchResult) -> None:
    from sklearn.metrics import normalized_mutual_info_score

    labels = demo_labels()
    analysis = _run(demo, 5)
    ids = sorted(analysis.assignments)
    nmi = normalized_mutual_info_score(
        [labels[t] for t in ids], [analysis.assignments[t] for t in ids]
    )
    assert nmi > 0.45


def test_representatives_are_the_members_nearest_the_centroid(demo: FetchResult) -> None:
    table = features_from_tracks(demo.tracks)
    fm = build_matrix(demo.tracks, table.values, table.sources)
    analysis = _run(demo, 4)
    row = {tid: i for i, tid in enumerate(fm.ids)}
    for c in analysis.clusters:
        X = fm.X[[row[t] for t in c.track_ids]]
        dist = np.linalg.norm(X - X.mean(axis=0), axis=1)
        assert list(dist) == sorted(dist)  # members nearest first
        assert c.representative_ids == c.track_ids[: min(10, c.size)]
        # centroid is in original units (tempo in BPM, loudness in dB)
        assert 60 < c.centroid["tempo"] < 200 and -30 < c.centroid["loudness"] < 0


def test_metadata_mode_when_audio_features_are_missing(demo: FetchResult) -> None:
    bare = [Track.from_dict({**t.to_dict(), "features": None}) for t in demo.tracks]
    fetched = FetchResult(meta=demo.meta, tracks=bare)
    analysis = cluster_step(fetched, FeatureTable(), None)
    assert analysis.feature_mode == "metadata"
    assert analysis.coverage == {"metadata": len(bare)}
    assert not set(AUDIO_FEATURES) & set(analysis.feature_names)
    assert "year" in analysis.feature_names


def test_partial_coverage_imputes_and_reports_sources(demo: FetchResult) -> None:
    table = features_from_tracks(demo.tracks)
    assert table is not None
    missing = [t.id for t in demo.tracks[::5]]  # 20 % without audio features
    for tid in missing:
        del table.values[tid]
        del table.sources[tid]
    for tid in list(table.sources)[:50]:
        table.sources[tid] = "reccobeats"
    analysis = cluster_step(demo, table, 5)
    assert analysis.feature_mode == "audio+metadata"
    assert analysis.coverage == {"reccobeats": 50, "csv": 190, "metadata": 60}
    assert len(analysis.assignments) == 300


def test_below_sixty_percent_coverage_uses_metadata_only(demo: FetchResult) -> None:
    table = features_from_tracks(demo.tracks)
    assert table is not None
    for t in demo.tracks[:150]:
        del table.values[t.id]
    analysis = cluster_step(demo, table, 3)
    assert analysis.feature_mode == "metadata"


def test_auto_k_range_for_small_and_large_playlists() -> None:
    assert (min_auto_k(10), max_auto_k(10)) == (2, 2)
    assert (min_auto_k(59), max_auto_k(59)) == (2, 7)
    assert (min_auto_k(60), max_auto_k(60)) == (3, 7)
    assert max_auto_k(10_000) == 12
