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
