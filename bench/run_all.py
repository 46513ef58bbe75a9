"""Run every benchmark and print one table: target, measured, pass/miss.

    python -m bench.run_all [--sizes 100,1000,10000] [--latency-ms 100] [--workers 2]
                            [--jobs 5] [--jobs-n 1000] [--quality-draws 60] [--no-quality]
                            [--json results.json]

Each playlist size runs in its own process (``python -m bench.playlist``) so the peak RSS
(``ru_maxrss``) of one size is not carried into the next; then the concurrent-jobs benchmark
(``python -m bench.parallel_jobs``) and H2's clustering-quality benchmark
(``python bench/quality.py``, NMI/ARI against the source playlists of real mixes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT

WALL_TARGETS_S = {1000: 4.0, 10_000: 15.0}
STALL_TARGET_MS = 100.0
RSS_TARGET_MB = 400.0
BIG = 10_000


@dataclass
class Row:
    what: str
    target: str
    measured: str
    ok: bool | None  # None: informational, no target

    @property
    def verdict(self) -> str:
        return "-" if self.ok is None else ("pass" if self.ok else "MISS")


def _run_json(module: str, args: list[str]) -> dict[str, Any] | None:
    """Run ``python -m module args --json tmp``, streaming its output; return its JSON."""
    with tempfile.TemporaryDirectory(prefix="pc-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", module, *args, "--json", str(out)]
        print(f"\n$ {' '.join(cmd[1:-2])}", flush=True)
        proc = subprocess.run(cmd, cwd=REPO_ROOT, check=False)
        if not out.exists():
            print(f"  ({module} exited with {proc.returncode} and no result)")
            return None
        return json.loads(out.read_text())


def playlist_rows(r: dict[str, Any]) -> list[Row]:
    n = r["n"]
    rows: list[Row] = []
    first, second, mins = r["first"], r["second"], r["minimum"]
    if "error" in first:
        return [Row(f"{n:,} tracks", "finishes", first["error"], False)]
    got = first["requests"]
    ratio = got.get("total", 0) / mins["total"]
    detail = (
        f"{got.get('total', 0)} / {mins['total']} = {ratio:.2f} "
        f"(meta {got.get('meta', 0)}, items {got.get('items', 0)}, "
        f"ReccoBeats {got.get('features', 0)}"
        + (
            f", Spotify audio-features {got['spotify_features']}"
            if got.get("spotify_features")
            else ""
        )
        + (f", other {got['other']}" if got.get("other") else "")
        + ")"
    )
    rows.append(Row(f"requests, {n:,} tracks (cold)", "ratio 1.00", detail, ratio == 1.0))
    if "error" in second:
        rows.append(Row(f"requests, {n:,} tracks unchanged", "1", second["error"], False))
    else:
        total2 = second["requests"].get("total", 0)
        rows.append(
            Row(
                f"requests, {n:,} tracks unchanged rerun",
                "1 (meta)",
                f"{total2} (reused={second.get('reused')})",
                total2 == 1,
            )
        )
    target = WALL_TARGETS_S.get(n)
    rows.append(
        Row(
            f"wall time, {n:,} tracks",
            f"< {target:.0f} s" if target else "-",
            f"{first['wall_s']:.2f} s (rerun {second.get('wall_s', float('nan')):.2f} s)",
            None if target is None else first["wall_s"] < target,
        )
    )
    if n == BIG:
        rows.append(
            Row(
                f"max event-loop stall, {n:,} tracks",
                f"< {STALL_TARGET_MS:.0f} ms",
                f"{r['loop_stall_ms']:.1f} ms",
                r["loop_stall_ms"] < STALL_TARGET_MS,
            )
        )
        rss = r["rss_mb"]
        children = rss["children_peak"]
        workers = [v for k, v in children.items() if k.startswith("worker:")]
        helpers = sum(v for k, v in children.items() if not k.startswith("worker:"))
        rows.append(
            Row(
                f"peak RSS bot process, {n:,} tracks",
                f"< {RSS_TARGET_MB:.0f} MB",
                f"{rss['bot_peak']:.0f} MB",
                rss["bot_peak"] < RSS_TARGET_MB,
            )
        )
        rows.append(
            Row(
                "peak RSS per pool worker process",
                "- (separate)",
                (", ".join(f"{v:.0f} MB" for v in workers) or "n/a")
                + f" (+ fork server/resource tracker {helpers:.0f} MB)",
                None,
            )
        )
    else:
        rows.append(
            Row(f"max event-loop stall, {n:,} tracks", "-", f"{r['loop_stall_ms']:.1f} ms", None)
        )
    return rows


def parallel_rows(r: dict[str, Any]) -> list[Row]:
    label = f"{r['jobs']} concurrent jobs × {r['n']:,}"
    errors = [row["error"] for row in r["rows"] if row["error"]]
    measured = (
        f"all done {r['total_s']:.2f} s, finish spread {r['finish_spread_s']:.2f} s, "
        f"slowest/fastest {r['wall_ratio']:.2f}"
    )
    if errors:
        measured += f"; errors: {errors}"
    mins = r["minimum_total"]["total"]
    got = r["requests"].get("total", 0)
    return [
        Row(label, "no starvation (≤2× wall, start ≤1 s)", measured, r["no_starvation"]),
        Row(f"requests, {label}", f"{mins}", f"{got} = {got / mins:.2f}", got == mins),
        Row(f"max event-loop stall, {label}", "-", f"{r['loop_stall_ms']:.1f} ms", None),
    ]


def run_quality(draws: int) -> Row:
    cmd = [sys.executable, "bench/quality.py", "--draws", str(draws)]
    print(f"\n$ {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, check=False, capture_output=True, text=True)
    print(proc.stdout, end="")
    if proc.returncode != 0:
        print(proc.stderr, end="")
        return Row("clustering quality (bench/quality.py)", "-", "failed (see above)", False)
    return Row("clustering quality (bench/quality.py)", "-", "see the NMI/ARI table above", None)


def print_table(rows: list[Row]) -> None:
    widths = [
        max(len(r.what) for r in rows),
        max(len(r.target) for r in rows),
        max(len(r.measured) for r in rows),
    ]
    head = ("benchmark", "target", "measured", "")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=False)]
    print()
    print(f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]:<{widths[2]}}  result")
    print("-" * (sum(widths) + 14))
    for r in rows:
        print(
            f"{r.what:<{widths[0]}}  {r.target:<{widths[1]}}  {r.measured:<{widths[2]}}  "
            f"{r.verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run all Playlist Clusters benchmarks.")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--jobs-n", type=int, default=1000)
    parser.add_argument("--quality-draws", type=int, default=60)
    parser.add_argument("--no-quality", dest="quality", action="store_false")
    parser.add_argument("--json", type=Path, help="write every raw result here")
    args = parser.parse_args(argv)

    common = ["--latency-ms", str(args.latency_ms), "--workers", str(args.workers)]
    raw: dict[str, Any] = {"playlist": [], "parallel": None}
    rows: list[Row] = []
    for n in (int(s) for s in args.sizes.split(",") if s.strip()):
        r = _run_json("bench.playlist", ["--n", str(n), *common])
        if r is None:
            rows.append(Row(f"{n:,} tracks", "finishes", "crashed (see above)", False))
            continue
        raw["playlist"].append(r)
        rows += playlist_rows(r)
    if args.jobs > 0:
        r = _run_json(
            "bench.parallel_jobs", ["--jobs", str(args.jobs), "--n", str(args.jobs_n), *common]
        )
        raw["parallel"] = r
        if r is None:
            rows.append(Row("concurrent jobs", "finishes", "crashed (see above)", False))
        else:
            rows += parallel_rows(r)
    if args.quality:
        rows.append(run_quality(args.quality_draws))

    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2))
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
