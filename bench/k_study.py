"""Study of the auto-k rule (issue #12: auto-k NMI/ARI ≥ those with k = number of playlists).

For each mix of ``bench/quality.py`` (same draws and seeds) this caches once, for every k in
1..max_auto_k + 1: NMI/ARI of the shipped k-means partition (as fitted, which is what a given k
gets, and after :func:`bot.clustering.merge_small`, which is what auto k gets), whether all its
clusters reach the minimum size, its inertia, the gap statistic against the shipped uniform
and Gaussian references and BIC of the shipped Gaussian mixture (the values ``_search_k``
reads), silhouette and Davies–Bouldin, BIC of two mixtures with fewer parameters per cluster
(tied covariance; diagonal on normal scores, see :func:`model_bics`), read upwards until three k
in a row do not lower it; plus the k the shipped rule chose (``_search_k``,
checked against ``RULES``' copy of it). Trying a k rule on the cache then takes a second;
``--table`` prints what each rule in ``RULES`` gives. The clustering never sees the playlist
columns; they only score.

Three kinds of mix, because the bench's own mixes leak the answer through their size (77 ± 12
tracks per playlist: k = round(tracks / 80) is within ±1 of the number of playlists in 99–100 %):

* ``full``: the quality bench's mixes as they are;
* ``half``: half of each mix's tracks, drawn at random (38 tracks per playlist);
* ``share``: a random 30–100 % of each playlist (``bench/quality.py --share``): playlists of
  unequal size, and a size that says little about the count.

    python bench/k_study.py [--seeds 0 1 2] [--kinds full half share] [--cache /tmp/k_study]
                            [--table] [--learned] [--paired]

``--learned`` bounds every rule that reads these fields: a random forest *trained on the
answers* of the other two seeds (leave one seed out) predicts, per candidate k, how much NMI +
ARI it gains over the shipped k, and picks the best (see :func:`learned`). ``--paired`` prints
the shipped rule's auto − k given with a bootstrap 95% interval over the mixes.

A cold cache costs 1–4 min per kind and seed (1 thread), plus 1–3 min (under load) for the two
mixtures of :func:`model_bics`; a cache built before them runs every rule but those (the table
says which field is missing).
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata
from sklearn.metrics import (
    adjusted_rand_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quality import DEFAULT_CSV, Mix, draws, share
from bot import clustering

CACHE = Path("/tmp/k_study")
KINDS = ("full", "half", "share")
Record = dict  # one mix: m, n, k_max, hard, shipped k, rows (per k: the fields above)


def half(mix: Mix, seed: int) -> Mix:
    """Half of the mix's tracks, drawn at random: the same playlists, half as many tracks."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(mix.tracks), len(mix.tracks) // 2, replace=False))
    return Mix([mix.tracks[i] for i in rows], mix.truth[rows], mix.genre_of, mix.hard)


def study_mix(mix: Mix, seed: int = 0) -> Record:
    from bot.features import matrix

    values = {t.id: t.features for t in mix.tracks}
    fm = matrix.build_matrix(mix.tracks, values, dict.fromkeys(values, "csv"))
    X = np.nan_to_num(fm.X, nan=0.0, posinf=0.0, neginf=0.0)
    truth_of = {t.id: int(c) for t, c in zip(mix.tracks, mix.truth, strict=True)}
    truth = np.array([truth_of[i] for i in fm.ids])
    n = X.shape[0]
    k_max = clustering.max_auto_k(n)
    smallest = clustering.min_cluster_size(n)
    search = clustering._KSearch(X, seed, top=min(k_max + 1, n - 1))
    rows: dict[int, dict] = {}
    for k in range(1, k_max + 2):
        labels = search.labels(k)
        merged = clustering.merge_small(X, labels, smallest)
        log_w = clustering._log_dispersion(X, labels)
        r = {
            "nmi": normalized_mutual_info_score(truth, labels),
            "ari": adjusted_rand_score(truth, labels),
            "nmi_merged": normalized_mutual_info_score(truth, merged),
            "ari_merged": adjusted_rand_score(truth, merged),
            "k_merged": len(set(merged.tolist())),
            "ok": k >= 2 and int(np.bincount(labels).min()) >= smallest,
            "log_w": log_w,
            "bic": clustering._bic(X, k, seed),
        }
        for null, key in (("uniform", ""), ("gaussian", "_gauss")):
            gap, se = search.gap(k, null) if k <= search.top else (math.nan, math.nan)
            r["gap" + key], r["se" + key] = gap, se
        if k >= 2:
            r["sil"] = float(silhouette_score(X, labels))
            r["db"] = float(davies_bouldin_score(X, labels))
        rows[k] = r
    for key, bics in model_bics(X, seed, top=k_max + 1).items():
        for k, bic in bics.items():
            rows[k][key] = bic
    return {
        "m": len(set(truth.tolist())),
        "n": n,
        "k_max": k_max,
        "hard": mix.hard,
        "shipped": clustering._search_k(X, seed),
        "rows": rows,
    }


def model_bics(X: np.ndarray, seed: int, top: int) -> dict[str, dict[int, float]]:
    """BIC per k of two Gaussian mixtures with fewer parameters per cluster than the shipped
    full-covariance one (~90 for 12 features, so its BIC says k = 1 in 56 of 210 full mixes):

    * ``bic_tied``: one covariance shared by all clusters (the model k-means approximates;
      13 parameters per cluster);
    * ``bic_nsdiag``: diagonal covariances on the features' normal scores (each column's ranks
      mapped to standard normal quantiles, so a column's own shape is not taken for clusters:
      the features are within-playlist ranks, flat, and a diagonal mixture of the ranks
      themselves needs several components for one flat column — its BIC picked k ≥ 10).

    Each is read from k = 1 upwards until three k in a row do not lower it (k without a value
    were not fitted).
    """
    from sklearn.mixture import GaussianMixture

    n = X.shape[0]
    scores = norm.ppf((np.apply_along_axis(rankdata, 0, X) - 0.5) / n)
    out: dict[str, dict[int, float]] = {}
    for key, data, covariance in (("bic_tied", X, "tied"), ("bic_nsdiag", scores, "diag")):
        bics: dict[int, float] = {}
        best, worse = math.inf, 0
        for k in range(1, min(top, n - 1) + 1):
            gm = GaussianMixture(k, covariance_type=covariance, reg_covar=1e-3, random_state=seed)
            bics[k] = float(gm.fit(data).bic(data))
            best, worse = (bics[k], 0) if bics[k] < best else (best, worse + 1)
            if worse >= 3:
                break
        out[key] = bics
    return out


def build(seed: int, kind: str, cache: Path = CACHE) -> list[Record]:
    path = cache / f"{kind}_seed{seed}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    df = pd.read_csv(DEFAULT_CSV, dtype=str, keep_default_na=False)
    mixes = draws(df, 40, seed) + draws(df, 30, seed, hard=True)
    if kind == "half":
        mixes = [half(mix, seed * 1000 + i) for i, mix in enumerate(mixes)]
    elif kind == "share":  # as bench/quality.py --share
        mixes = [share(mix, seed * 1000 + i) for i, mix in enumerate(mixes)]
    out = []
    for i, mix in enumerate(mixes):
        out.append(study_mix(mix))
        print(f"{kind} seed {seed}: mix {i + 1}/{len(mixes)}", file=sys.stderr, flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


# --- k rules on a cached mix -----------------------------------------------------------------


def candidates(d: Record) -> list[int]:
    """k that auto k may choose: 2..k_max with every k-means cluster at the minimum size."""
    return [k for k in range(2, d["k_max"] + 1) if d["rows"][k]["ok"]] or [2]


def nearest(d: Record, wanted: int) -> int:
    return min(candidates(d), key=lambda k: (abs(k - wanted), k))


def gap_k(d: Record, se: float = 1.0, key: str = "gap") -> int:
    """Tibshirani's rule, ``se`` standard errors: smallest k with Gap(k) ≥ Gap(k+1) − se·s(k+1)."""
    rows = d["rows"]
    sd = "se" if key == "gap" else "se_" + key.split("_")[1]
    for k in candidates(d):
        if rows[k][key] >= rows[k + 1][key] - se * rows[k + 1][sd]:
            return k
    return candidates(d)[-1]


def bic_k(d: Record, key: str = "bic") -> int:
    """Lowest BIC over k = 1 and the candidates, read upwards, stopping after two worse."""
    best, best_bic, worse = 1, math.inf, 0
    for k in [1, *candidates(d)]:
        if k > 1 and key not in d["rows"][k]:  # not fitted: the BIC had stopped falling
            break
        if d["rows"][k][key] < best_bic:
            best, best_bic, worse = k, d["rows"][k][key], 0
        elif (worse := worse + 1) >= clustering.BIC_PATIENCE:
            break
    return best


def hartigan_k(d: Record, threshold: float) -> int:
    """Hartigan (1975): smallest k with (W_k / W_k+1 − 1)(n − k − 1) ≤ threshold."""
    rows, n = d["rows"], d["n"]
    for k in range(1, d["k_max"] + 1):
        if (math.exp(rows[k]["log_w"] - rows[k + 1]["log_w"]) - 1) * (n - k - 1) <= threshold:
            return nearest(d, k)
    return candidates(d)[-1]


def best(d: Record, key: str, sign: float = 1) -> int:
    return max(candidates(d), key=lambda k: sign * d["rows"][k][key])


RULES: dict[str, Callable[[Record], int]] = {
    "shipped: median(gap, Gaussian gap, BIC)": lambda d: nearest(
        d, sorted((gap_k(d), gap_k(d, 1, "gap_gauss"), bic_k(d)))[1]
    ),
    "before: ceil((gap + BIC) / 2)": lambda d: nearest(d, math.ceil((gap_k(d) + bic_k(d)) / 2)),
    "floor((gap + BIC) / 2)": lambda d: nearest(d, (gap_k(d) + bic_k(d)) // 2),
    "gap, 1 SE": gap_k,
    "gap, 1.5 SE": lambda d: gap_k(d, 1.5),
    "gap, 2 SE": lambda d: gap_k(d, 2),
    "BIC": bic_k,
    "gap, Gaussian references, 1 SE": lambda d: gap_k(d, 1, "gap_gauss"),
    "BIC, tied covariance (nearest candidate)": lambda d: nearest(d, bic_k(d, "bic_tied")),
    "BIC, diagonal on normal scores (nearest candidate)": lambda d: nearest(
        d, bic_k(d, "bic_nsdiag")
    ),
    "median(gap, Gaussian gap, tied BIC)": lambda d: nearest(
        d, sorted((gap_k(d), gap_k(d, 1, "gap_gauss"), bic_k(d, "bic_tied")))[1]
    ),
    "median(gap, Gaussian gap, normal-score BIC)": lambda d: nearest(
        d, sorted((gap_k(d), gap_k(d, 1, "gap_gauss"), bic_k(d, "bic_nsdiag")))[1]
    ),
    "median(gap, Gaussian gap, BIC, tied BIC, normal-score BIC)": lambda d: nearest(
        d,
        sorted(
            (
                gap_k(d),
                gap_k(d, 1, "gap_gauss"),
                bic_k(d),
                bic_k(d, "bic_tied"),
                bic_k(d, "bic_nsdiag"),
            )
        )[2],
    ),
    "shipped, at most the normal-score BIC's k": lambda d: nearest(
        d,
        min(
            sorted((gap_k(d), gap_k(d, 1, "gap_gauss"), bic_k(d)))[1],
            bic_k(d, "bic_nsdiag"),
        ),
    ),
    "best silhouette": lambda d: best(d, "sil"),
    "lowest Davies–Bouldin": lambda d: best(d, "db", -1),
    "Hartigan, threshold 30": lambda d: hartigan_k(d, 30),
    "the mix's size: round(tracks / 80)": lambda d: nearest(d, round(d["n"] / 80)),
    "oracle: best NMI per mix": lambda d: best(d, "nmi_merged"),
}


def scores(rule: Callable[[Record], int], mixes: list[Record]) -> dict[str, float]:
    """±1 share, exact count, NMI and ARI of auto k by ``rule``, and those with k = m."""
    picked = [d["rows"][rule(d)] for d in mixes]
    given = [d["rows"][d["m"]] for d in mixes]
    k = np.array([r["k_merged"] for r in picked])
    m = np.array([d["m"] for d in mixes])
    return {
        "within1": float(np.mean(np.abs(k - m) <= 1)),
        "exact": int((k == m).sum()),
        "nmi": float(np.mean([r["nmi_merged"] for r in picked])),
        "ari": float(np.mean([r["ari_merged"] for r in picked])),
        "nmi_given": float(np.mean([r["nmi"] for r in given])),
        "ari_given": float(np.mean([r["ari"] for r in given])),
    }


def table(data: dict[tuple[str, int], list[Record]], seeds: list[int], kinds: list[str]) -> None:
    for kind in kinds:
        print(f"\n{kind}: ±1 share, exact of 70, NMI / ARI (auto − k = #playlists) per seed\n")
        print("| k rule | " + " | ".join(f"seed {s}" for s in seeds) + " | mean Δ |")
        print("|:---|" + "---:|" * (len(seeds) + 1))
        for name, rule in RULES.items():
            cells, deltas = [], []
            try:
                for s in seeds:
                    scores(rule, data[kind, s])
            except KeyError as e:  # a field this cache was built without
                print(f"| {name} | needs {e} (a cache built by this version) |")
                continue
            for s in seeds:
                x = scores(rule, data[kind, s])
                dn, da = x["nmi"] - x["nmi_given"], x["ari"] - x["ari_given"]
                deltas.append((dn, da))
                cells.append(
                    f"{x['within1']:.0%} {x['exact']} {x['nmi']:.3f} / {x['ari']:.3f} "
                    f"({dn:+.3f} / {da:+.3f})"
                )
            dn, da = np.mean(deltas, axis=0)
            print(f"| {name} | " + " | ".join(cells) + f" | {dn:+.3f} / {da:+.3f} |")


def curve_features(d: Record) -> tuple[int, list[tuple[int, list[float]]]]:
    """The shipped k and, per candidate k, what a k rule can read of the cached curves: k and
    its distance to each criterion's k, the gap statistics' Tibshirani margins and distance to
    their best, BIC per track above its best, silhouette, Davies–Bouldin, the drops in log
    dispersion around k, the mix's size. Nothing here knows the playlists."""
    rows, cand, n = d["rows"], candidates(d), d["n"]
    g, gg, b = gap_k(d), gap_k(d, 1, "gap_gauss"), bic_k(d)
    shipped = nearest(d, sorted((g, gg, b))[1])
    top_gap = max(rows[k]["gap"] for k in cand)
    top_gauss = max(rows[k]["gap_gauss"] for k in cand)
    top_sil = max(rows[k]["sil"] for k in cand)
    low_db = min(rows[k]["db"] for k in cand)
    low_bic = min(rows[k]["bic"] for k in [1, *cand])
    out = []
    for k in cand:
        r, up, down = rows[k], rows[k + 1], rows[k - 1]
        out.append(
            (
                k,
                [
                    *(k, math.log(n), d["k_max"], shipped, g, gg, b),
                    *(k - shipped, k - g, k - gg, k - b),
                    r["gap"] - up["gap"] + up["se"],
                    r["gap_gauss"] - up["gap_gauss"] + up["se_gauss"],
                    *(r["gap"] - top_gap, r["gap_gauss"] - top_gauss, (r["bic"] - low_bic) / n),
                    *(r["sil"], r["sil"] - top_sil, r["db"] - low_db),
                    *(down["log_w"] - r["log_w"], r["log_w"] - up["log_w"]),
                ],
            )
        )
    return shipped, out


def learned(data: dict[tuple[str, int], list[Record]], seeds: list[int], kinds: list[str]) -> None:
    """Leave one seed out: a random forest fitted on the other seeds' mixes (every kind) to
    the gain in NMI + ARI of each candidate k over the shipped k picks, on the held-out seed,
    the k it predicts best. It was *given the answers* to learn from, and it sees every field a
    rule here reads, so it bounds what a rule built from these curves can do. (The seeds'
    mixes share playlists, so this bound is, if anything, optimistic.)"""
    from sklearn.ensemble import RandomForestRegressor

    def rows_of(mixes: list[Record]) -> tuple[list[list[float]], list[float]]:
        X, y = [], []
        for d in mixes:
            shipped, feats = curve_features(d)
            base = d["rows"][shipped]["nmi_merged"] + d["rows"][shipped]["ari_merged"]
            for k, f in feats:
                X.append(f)
                y.append(d["rows"][k]["nmi_merged"] + d["rows"][k]["ari_merged"] - base)
        return X, y

    print("\nlearned k (random forest, leave one seed out): auto − k given, NMI / ARI\n")
    print("| kind | " + " | ".join(f"seed {s}" for s in seeds) + " | mean Δ | shipped |")
    print("|:---|" + "---:|" * (len(seeds) + 2))
    out: dict[tuple[str, int], tuple[float, float, float, float]] = {}
    for held in seeds:
        X, y = [], []
        for (_, s), mixes in data.items():
            if s != held:
                X_s, y_s = rows_of(mixes)
                X, y = X + X_s, y + y_s
        forest = RandomForestRegressor(300, min_samples_leaf=10, random_state=0).fit(X, y)
        for kind in kinds:
            deltas = []
            for d in data[kind, held]:
                shipped, feats = curve_features(d)
                gain = forest.predict(np.array([f for _, f in feats]))
                k = feats[int(np.argmax(gain))][0]
                given = d["rows"][d["m"]]
                for pick in (k, shipped):
                    r = d["rows"][pick]
                    deltas.append((r["nmi_merged"] - given["nmi"], r["ari_merged"] - given["ari"]))
            mine, ship = np.mean(deltas[0::2], axis=0), np.mean(deltas[1::2], axis=0)
            out[kind, held] = (*mine, *ship)
    for kind in kinds:
        cells = [f"{out[kind, s][0]:+.3f} / {out[kind, s][1]:+.3f}" for s in seeds]
        mean = np.mean([out[kind, s] for s in seeds], axis=0)
        print(
            f"| {kind} | " + " | ".join(cells) + f" | {mean[0]:+.3f} / {mean[1]:+.3f} |"
            f" {mean[2]:+.3f} / {mean[3]:+.3f} |"
        )


def paired(data: dict[tuple[str, int], list[Record]], kinds: list[str]) -> None:
    """The shipped rule's auto − k given per kind over all seeds' mixes, with a bootstrap 95%
    interval of the mean (5,000 resamples of the mixes) and the count of mixes it wins/loses."""
    rule = RULES["shipped: median(gap, Gaussian gap, BIC)"]
    rng = np.random.default_rng(0)
    print("\nshipped rule, auto − k given over the mixes: mean [95% bootstrap interval]\n")
    print("| kind | mixes | NMI | ARI | NMI wins / ties / losses |")
    print("|:---|---:|---:|---:|---:|")
    for kind in kinds:
        diffs = np.array(
            [
                (
                    d["rows"][rule(d)]["nmi_merged"] - d["rows"][d["m"]]["nmi"],
                    d["rows"][rule(d)]["ari_merged"] - d["rows"][d["m"]]["ari"],
                )
                for (kd, _), mixes in data.items()
                if kd == kind
                for d in mixes
            ]
        )
        means = np.array(
            [diffs[rng.integers(0, len(diffs), len(diffs))].mean(axis=0) for _ in range(5000)]
        )
        lo, hi = np.percentile(means, [2.5, 97.5], axis=0)
        mean = diffs.mean(axis=0)
        nmi = diffs[:, 0]
        wins, losses = int((nmi > 1e-9).sum()), int((nmi < -1e-9).sum())
        print(
            f"| {kind} | {len(diffs)} | {mean[0]:+.4f} [{lo[0]:+.4f}, {hi[0]:+.4f}] | "
            f"{mean[1]:+.4f} [{lo[1]:+.4f}, {hi[1]:+.4f}] | "
            f"{wins} / {len(nmi) - wins - losses} / {losses} |"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--table", action="store_true", help="print what each rule gives")
    ap.add_argument("--learned", action="store_true", help="bound: a k rule trained on answers")
    ap.add_argument("--paired", action="store_true", help="shipped rule's gap, with intervals")
    args = ap.parse_args(argv)
    threadpool_limits(1)
    data = {(kind, s): build(s, kind, args.cache) for kind in args.kinds for s in args.seeds}
    for (kind, s), mixes in data.items():
        shipped = RULES["shipped: median(gap, Gaussian gap, BIC)"]
        if (bad := sum(shipped(d) != d["shipped"] for d in mixes)) != 0:
            print(f"{kind} seed {s}: RULES' shipped rule differs from _search_k in {bad} mixes")
    if args.table:
        table(data, args.seeds, args.kinds)
    if args.paired:
        paired(data, args.kinds)
    if args.learned:
        learned(data, args.seeds, args.kinds)


if __name__ == "__main__":
    main()
