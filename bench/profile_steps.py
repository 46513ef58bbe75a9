"""Time (and optionally cProfile) the CPU steps on N bundled real tracks, with no network.

Where a target is missed, this says which step and function is responsible:

* ``cluster_step`` and ``render_step`` — what the worker pool runs;
* the work the event loop itself does around them for a job of N tracks: the JSON encoding
  of the checkpoints and the stored analysis, and pickling the step arguments/results
  (what crosses the process boundary).

    python -m bench.profile_steps [--n 10000] [--profile cluster|render|all] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import gzip
import json
import pickle
import pstats
import time
from collections.abc import Callable
from typing import Any

from bench.make_data import OUT as DATA_FILE
from bot.jobs.cpu import cluster_step, render_step
from bot.models import AUDIO_FEATURES, FeatureTable, FetchResult, PlaylistMeta, Track


def load_fetch(n: int) -> tuple[FetchResult, FeatureTable]:
    """A dev-mode-like FetchResult (no popularity/label) and ReccoBeats-like features."""
    tracks: list[Track] = []
    table = FeatureTable()
    with gzip.open(DATA_FILE, "rt", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if len(tracks) >= n:
                break
            tid = row["track_id"]
            tracks.append(
                Track(
                    id=tid,
                    name=row["track_name"],
                    artists=[row["track_artist"]],
                    album=row["track_album_name"],
                    album_id=row["track_album_id"],
                    release_date=row["track_album_release_date"],
                    duration_ms=int(float(row["duration_ms"])),
                )
            )
            table.values[tid] = {f: float(row[f]) for f in (*AUDIO_FEATURES, "key", "mode")}
            table.sources[tid] = "reccobeats"
    meta = PlaylistMeta(id="bench", name=f"Bench {n}", snapshot_id="s1", total=n)
    return FetchResult(meta=meta, tracks=tracks), table


def timed(label: str, fn: Callable[[], Any], results: dict[str, float]) -> Any:
    start = time.perf_counter()
    out = fn()
    results[label] = time.perf_counter() - start
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Time the CPU steps on N real tracks.")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--profile", choices=("cluster", "render", "all"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    fetched, features = load_fetch(args.n)
    t: dict[str, float] = {}
    prof = cProfile.Profile() if args.profile else None

    def maybe_profiled(step: str, fn: Callable[[], Any]) -> Any:
        if prof is not None and args.profile in (step, "all"):
            prof.enable()
            try:
                return fn()
            finally:
                prof.disable()
        return fn()

    analysis = timed(
        "cluster_step (worker)",
        lambda: maybe_profiled("cluster", lambda: cluster_step(fetched, features, None)),
        t,
    )
    rendered = timed(
        "render_step (worker)", lambda: maybe_profiled("render", lambda: render_step(analysis)), t
    )
    # Work that happens on the event loop (or in the executor's feeder thread) per job.
    timed("pickle args of cluster_step", lambda: pickle.dumps((fetched, features)), t)
    timed("pickle Analysis (result/arg)", lambda: pickle.dumps(analysis), t)
    timed("pickle Rendered (result)", lambda: pickle.dumps(rendered), t)
    timed("FetchResult.to_dict+json.dumps", lambda: json.dumps(fetched.to_dict()), t)
    timed("FeatureTable checkpoint json.dumps", lambda: json.dumps(features.to_dict()), t)
    dumped = timed("Analysis.to_dict+json.dumps", lambda: json.dumps(analysis.to_dict()), t)
    timed("json.loads+Analysis.from_dict", lambda: type(analysis).from_dict(json.loads(dumped)), t)

    print(f"\n{args.n:,} tracks: k={analysis.k}, mode={analysis.feature_mode}")
    print(f"png {len(rendered.png):,} B, markdown {len(rendered.markdown):,} chars")
    for label, secs in t.items():
        print(f"  {label:<38} {secs * 1000:9.1f} ms")
    if prof is not None:
        print()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
