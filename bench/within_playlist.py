"""The pooled within-playlist covariance behind ``bot.features.matrix.within_playlist_metric``.

Mixes of real TidyTuesday playlists (the half ``bench/quality.py`` calls ``"fit"``; its
``--held-out`` flag draws only the other half, so the quality figures of the metric are measured
on playlists it never saw) are built into matrices as the bot builds them, without the metric;
within each mix, each track's scaled columns (weights divided out) minus its playlist's mean are
pooled into one covariance. The playlist columns are used only here, to say which tracks belong
together; the bot ships the printed table, never the playlists.

    python bench/within_playlist.py [--draws 80] [--hard 60] [--seed 10]

Prints the table as Python to paste into ``bot/features/matrix.py``, and the within-playlist
correlations over 0.2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quality import DEFAULT_CSV, draws, split
from bot.features import matrix
from bot.models import AUDIO_FEATURES


def within_covariance(mixes: list) -> tuple[list[str], np.ndarray]:
    """(columns, pooled within-playlist covariance) over ``mixes`` (columns every mix has)."""
    total: np.ndarray | None = None
    columns: list[str] = []
    count = 0
    for mix in mixes:
        values = {t.id: t.features for t in mix.tracks}
        fm = matrix.build_matrix(mix.tracks, values, dict.fromkeys(values, "csv"), whiten=False)
        keep = [i for i, c in enumerate(fm.columns) if c in fm.raw]  # not genre components
        names = [fm.columns[i] for i in keep]
        if total is None:
            columns, total = names, np.zeros((len(keep), len(keep)))
        if names != columns:
            raise ValueError(f"a mix has columns {names}, the first {columns}")
        weights = np.array(
            [matrix.AUDIO_WEIGHTS.get(c, matrix.METADATA_WEIGHTS.get(c, 1.0)) for c in names]
        )
        X = np.nan_to_num(fm.X[:, keep]) / weights
        playlist_of = {t.id: int(p) for t, p in zip(mix.tracks, mix.truth, strict=True)}
        truth = np.array([playlist_of[i] for i in fm.ids])
        for p in np.unique(truth):
            centred = X[truth == p] - X[truth == p].mean(axis=0)
            total += centred.T @ centred
        count += len(X)
    assert total is not None
    return columns, total / count


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=80, help="mixes of different genres")
    ap.add_argument("--hard", type=int, default=60, help="mixes of one genre's subgenres")
    ap.add_argument("--seed", type=int, default=10)
    args = ap.parse_args(argv)
    df = split(pd.read_csv(DEFAULT_CSV, dtype=str, keep_default_na=False), "fit")
    mixes = draws(df, args.draws, args.seed) + draws(df, args.hard, args.seed, hard=True)
    columns, cov = within_covariance(mixes)
    print(f"# {len(mixes)} mixes, {df['playlist_id'].nunique()} playlists")
    audio = list(AUDIO_FEATURES)
    rest = columns[len(audio) :] if columns[: len(audio)] == audio else columns
    names = ["*AUDIO_FEATURES"] * (rest is not columns) + [f'"{c}"' for c in rest]
    print(f"WITHIN_PLAYLIST_COLUMNS: tuple[str, ...] = ({', '.join(names)})")
    print("# fmt: off")
    print("WITHIN_PLAYLIST_COVARIANCE = np.array([  # thousandths")
    for row in cov:
        print("    [" + ", ".join(f"{round(v * 1000):4d}" for v in row) + "],")
    print("]) / 1000")
    print("# fmt: on")
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    for i in range(len(columns)):
        for j in range(i + 1, len(columns)):
            if abs(corr[i, j]) > 0.2:
                print(f"# {columns[i]} ~ {columns[j]}: {corr[i, j]:+.2f}")


if __name__ == "__main__":
    main()
