"""Naming clusters: words that hold for a cluster's own tracks, unique names, what split them.

A word is said of a cluster only when it sets the cluster apart from the rest of the playlist
(a contrast in scaled units) *and* holds in plain terms for most of its tracks (original units:
"calm" = energy under 0.5 for more than half of them). bench/quality.py audits every word of
the shipped descriptions against the cluster's own tracks (0 contradicted on 210 mixes).
Moved out of :mod:`bot.clustering` (which chooses k and fits) so each stays one concern; it
reads only the :class:`~bot.features.matrix.FeatureMatrix` and the labels.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bot.features.matrix import FeatureMatrix

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
    most: float = MOST  # the share of tracks it must hold for (more than)


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
    # and the bench's audit found a cheerful rock cluster called electronic). Even so it is a
    # proxy, so it must hold for clearly most tracks: per real TidyTuesday playlist (≥ 40
    # tracks) it holds for at most 31 % of a rock playlist's, over 60 % in 12 of 68 EDM ones;
    # a mostly-rock cluster of the bench, at 52 %, was called electronic.
    Word(
        "electronic",
        "acousticness",
        -1,
        lambda c: (c["acousticness"] < 0.15) & (c["danceability"] >= 0.65),
        needs=("danceability",),
        most=0.6,
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
        if most(w.holds, {f: fm.raw[f][members] for f in (w.feature, *w.needs)}, w.most):
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


def most(holds: Callable[[Cols], np.ndarray], cols: Cols, share: float = MOST) -> bool:
    """True when ``holds`` is true for more than ``share`` (half) of the tracks whose values
    are known."""
    known = np.all([np.isfinite(v) for v in cols.values()], axis=0)
    if not known.any():
        return False
    with np.errstate(invalid="ignore"):
        return float(np.mean(holds({f: v[known] for f, v in cols.items()}))) > share


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
