"""bench/quality.py --share: a random share of each playlist, so a mix's size does not tell k."""

from __future__ import annotations

import numpy as np

from bench.quality import Mix, share
from bot.models import Track


def _mix(sizes: list[int]) -> Mix:
    truth = np.repeat(np.arange(len(sizes)), sizes)
    tracks = [Track(id=f"t{i:04d}", name=f"Song {i}", artists=["A"]) for i in range(len(truth))]
    return Mix(tracks=tracks, truth=truth, genre_of={}, hard=False)


def test_share_keeps_a_random_part_of_every_playlist_and_is_repeatable() -> None:
    mix = _mix([400, 400, 400, 400, 400, 400])
    kept = share(mix, seed=7)
    per_playlist = np.bincount(kept.truth, minlength=6) / 400
    assert per_playlist.min() > 0.25 and per_playlist.max() <= 1.0
    # the shares differ: the mix's size no longer follows from the number of playlists
    assert per_playlist.max() - per_playlist.min() > 0.2
    assert [t.id for t in kept.tracks] == [t.id for t in share(mix, seed=7).tracks]
    by_id = {t.id: c for t, c in zip(mix.tracks, mix.truth, strict=True)}
    assert all(by_id[t.id] == c for t, c in zip(kept.tracks, kept.truth, strict=True))


def test_the_k_study_reads_the_shipped_criteria_and_repeats_the_shipped_rule() -> None:
    # bench/k_study.py copies _search_k's rule to try others beside it: on a real two-playlist
    # mix (the demo's), its copy must pick the k that bot.clustering picks
    import sklearn.cluster  # noqa: F401  (loaded first, so its thread pool is limited)
    from threadpoolctl import threadpool_limits

    from bench.k_study import RULES, study_mix
    from bot.demo import demo_labels, load_demo

    labels = demo_labels()
    names = sorted(set(labels.values()))[:2]
    by_name = {name: [t for t in load_demo().tracks if labels[t.id] == name] for name in names}
    tracks = by_name[names[0]][:30] + by_name[names[1]][:30]  # k up to 7: a quick study
    truth = np.array([names.index(labels[t.id]) for t in tracks])
    with threadpool_limits(1):  # as the bench and the bot run k-means
        d = study_mix(Mix(tracks=tracks, truth=truth, genre_of={}, hard=False))
    assert d["m"] == 2 and d["n"] == len(tracks)
    assert RULES["shipped: median(gap, Gaussian gap, BIC)"](d) == d["shipped"]
    assert 0.0 <= d["rows"][2]["nmi"] <= 1.0
