"""Benchmark several concurrent jobs of different playlists (default 5 × 1,000 real tracks).

Each job is a different playlist (disjoint slices of the bundled tracks) submitted at the same
moment by a different user to the real JobQueue. Prints when each job started (its first
progress event after "queued") and finished, relative to the common submit time, the spread
of finish times, the slowest/fastest wall-time ratio, requests versus the minimum and the
largest event-loop stall.

    python -m bench.parallel_jobs [--jobs 5] [--n 1000] [--latency-ms 100] [--workers 2]
                                  [--json out.json]

Starvation criterion (printed as pass/miss): every job finishes, every job starts working
within 1 s of submission, and the slowest job's wall time is at most 2 × the fastest one's —
a queue that ran jobs one after another would show 1×, 2×, …, 5×.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import BotEnv, FakeServer, PlaylistSpec, classify, env_summary, minimum_requests
from bench.monitor import LoopMonitor, children_peak_rss_mb, self_peak_rss_mb
from bench.playlist import warm_up

START_WITHIN_S = 1.0
MAX_WALL_RATIO = 2.0


async def run(jobs: int, n: int, latency_ms: float, workers: int, warmup: bool) -> dict[str, Any]:
    specs = [PlaylistSpec(f"c{i}", n, offset=i * n) for i in range(jobs)]
    result: dict[str, Any] = {"jobs": jobs, "n": n, "latency_ms": latency_ms, "workers": workers}
    result["env"] = env_summary()
    fake = FakeServer(specs, latency_ms=latency_ms)
    async with fake as info, BotEnv(info, workers=workers) as env:
        result["warmup_s"] = await warm_up(env) if warmup else None
        await fake.reset()
        t0 = time.perf_counter()
        async with LoopMonitor() as monitor:
            timings = await asyncio.gather(
                *(
                    env.run_job(spec.name, info.playlists[spec.name], user_id=100 + i)
                    for i, spec in enumerate(specs)
                )
            )
        log = await fake.requests()
        children = children_peak_rss_mb(exclude=frozenset({info.pid}))

    rows = []
    for t in timings:
        stages = {k: v - t0 for k, v in t.stages.items()}
        started = min((v for k, v in stages.items() if k != "queued"), default=None)
        rows.append(
            {
                "job": t.label,
                "submitted_s": round(t.submitted - t0, 3),
                "started_s": None if started is None else round(started, 3),
                "finished_s": round(t.finished - t0, 3),
                "wall_s": round(t.wall_s, 3),
                "stages": {k: round(v, 3) for k, v in stages.items()},
                "error": None if t.error is None else f"{type(t.error).__name__}: {t.error}",
            }
        )
    finishes = [r["finished_s"] for r in rows]
    walls = [r["wall_s"] for r in rows]
    mins = minimum_requests(n)
    counts = classify(log)
    result.update(
        rows=rows,
        finish_spread_s=round(max(finishes) - min(finishes), 3),
        wall_ratio=round(max(walls) / max(min(walls), 1e-9), 2),
        total_s=round(max(finishes), 3),
        requests=dict(counts),
        minimum_total={k: v * jobs for k, v in mins.items()},
        loop_stall_ms=round(monitor.max_ms, 1),
        rss_mb={
            "bot_peak": round(self_peak_rss_mb(), 1),
            "children_peak": {k: round(v, 1) for k, v in children.items()},
        },
    )
    ok = all(r["error"] is None for r in rows)
    ok = ok and all(r["started_s"] is not None and r["started_s"] <= START_WITHIN_S for r in rows)
    result["no_starvation"] = bool(ok and result["wall_ratio"] <= MAX_WALL_RATIO)
    return result


def print_result(r: dict[str, Any]) -> None:
    print(
        f"\n== {r['jobs']} concurrent jobs × {r['n']} tracks, {r['latency_ms']:.0f} ms/request, "
        f"{r['workers']} workers =="
    )
    print(f"env: {r['env']}")
    print(f"{'job':<6} {'started':>8} {'finished':>9} {'wall':>7}  stages (s after submit)")
    for row in r["rows"]:
        started = "-" if row["started_s"] is None else f"{row['started_s']:.2f}"
        print(
            f"{row['job']:<6} {started:>8} {row['finished_s']:>9.2f} {row['wall_s']:>7.2f}  "
            f"{row['stages']}" + (f"  ERROR {row['error']}" if row["error"] else "")
        )
    print(
        f"finish spread {r['finish_spread_s']:.2f} s; slowest/fastest wall {r['wall_ratio']:.2f}; "
        f"all done after {r['total_s']:.2f} s; no starvation: {r['no_starvation']}"
    )
    print(f"requests: {r['requests']} (minimum {r['minimum_total']})")
    print(f"max event-loop stall {r['loop_stall_ms']:.1f} ms; peak RSS {r['rss_mb']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Concurrent jobs of different playlists.")
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.jobs * args.n > 10_000:
        parser.error("jobs × n must be ≤ 10,000 (the bundled unique tracks)")
    result = asyncio.run(run(args.jobs, args.n, args.latency_ms, max(1, args.workers), args.warmup))
    print_result(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if all(row["error"] is None for row in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
