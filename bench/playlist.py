"""Benchmark one playlist of N real tracks end to end through the real JobQueue.

Measures, for a development-mode app reading its user's own playlist through the loopback
fake (``--latency-ms`` per request, default 100):

* requests made (fake's log, and the clients' ``request_count``) versus the minimum
  ``1 meta + ceil(N/50) item pages + ceil(N/40) ReccoBeats calls``; then a second run of the
  unchanged playlist, whose minimum is the 1 meta request;
* wall time from ``JobQueue.submit`` to the finished ``JobOutcome`` (PNG + markdown rendered);
* the largest event-loop stall during the job (a task sleeping 5 ms in a loop);
* peak RSS of this (bot) process and of the live worker-pool processes.

    python -m bench.playlist --n 1000 [--latency-ms 100] [--workers 2] [--no-warmup]
                             [--json out.json]

Before the measured run a warm-up job (the bundled demo, no network) starts the worker pool;
its cached features are then deleted so the measured run is cold for every network cache.
``--no-warmup`` measures a first job in a freshly started bot instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    BotEnv,
    FakeServer,
    JobTiming,
    PlaylistSpec,
    classify,
    env_summary,
    floor_s,
    minimum_requests,
)
from bench.monitor import (
    GcMonitor,
    LoopMonitor,
    StallTracer,
    children_peak_rss_mb,
    self_peak_rss_mb,
)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuClock:
    """CPU time spent between :meth:`start` and :meth:`stop`: the whole bot process, its
    event-loop thread alone, and each pool worker — what a 2-core machine's wall time is
    made of, less noisy than wall time on a shared machine."""

    def __init__(self, env: BotEnv) -> None:
        self.env = env
        self.before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out = {"bot_process": usage.ru_utime + usage.ru_stime, "event_loop": time.thread_time()}
        for pid in self.env.queue.pool.worker_pids():
            out[f"worker:{pid}"] = _cpu_s(pid)
        return out

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> dict[str, float]:
        after = self._now()
        return {k: round(v - self.before.get(k, 0.0), 3) for k, v in after.items()}


async def warm_up(env: BotEnv) -> float | None:
    """Run the bundled demo through the queue (starts the pool); return its wall time.

    Then forget every cached feature/fetch so the measured job starts cold.
    """
    from bot.models import AnalysisRequest

    start = time.perf_counter()
    try:
        handle = await env.queue.submit(AnalysisRequest(demo=True, user_id=999))
        await handle.result()
    except Exception as exc:  # the demo is optional for the benchmark
        print(f"  (warm-up demo job failed: {type(exc).__name__}: {exc}; continuing cold)")
        return None
    wall = time.perf_counter() - start
    await env.db.execute("DELETE FROM track_features")
    return wall


def _job_summary(t: JobTiming) -> dict[str, Any]:
    out: dict[str, Any] = {"wall_s": round(t.wall_s, 3), "stages": t.stage_offsets()}
    if t.error is not None:
        out["error"] = f"{type(t.error).__name__}: {t.error}"
    elif t.outcome is not None:
        analysis = t.outcome.analysis
        out.update(
            reused=bool(t.outcome.reused),
            n_tracks=len(analysis.tracks),
            k=analysis.k,
            feature_mode=analysis.feature_mode,
            coverage=dict(analysis.coverage),
            png_bytes=len(t.outcome.rendered.png),
            markdown_chars=len(t.outcome.rendered.markdown),
        )
    return out


async def run(
    n: int,
    latency_ms: float,
    workers: int,
    warmup: bool,
    probe_mode: bool = True,
    trace_threads: bool = False,
    profile_loop: bool = False,
) -> dict[str, Any]:
    spec = PlaylistSpec("bench", n)
    result: dict[str, Any] = {"n": n, "latency_ms": latency_ms, "workers": workers}
    result["env"] = env_summary()
    fake = FakeServer([spec], latency_ms=latency_ms)
    async with fake as info, BotEnv(info, workers=workers, probe_mode=probe_mode) as env:
        playlist_id = info.playlists[spec.name]
        result["startup"] = {"mode": env.mode, "probe_requests": env.startup_requests}
        result["warmup_s"] = await warm_up(env) if warmup else None
        await fake.reset()
        before = env.request_counts()
        rss_before = self_peak_rss_mb()

        tracer = StallTracer(all_threads=trace_threads)
        prof = cProfile.Profile() if profile_loop else None
        clock = CpuClock(env)
        clock.start()
        with GcMonitor() as gc_monitor:
            async with LoopMonitor() as monitor, tracer:
                if prof is not None:
                    prof.enable()  # profiles this thread only: the event loop's own work
                first = await env.run_job(f"{n} tracks", playlist_id)
                if prof is not None:
                    prof.disable()
        if prof is not None:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
            result["loop_profile"] = out.getvalue()
        cpu_used = clock.stop()
        rss_first = self_peak_rss_mb()
        log = await fake.requests()
        after = env.request_counts()
        children = children_peak_rss_mb(exclude=frozenset({info.pid}))

        result["first"] = _job_summary(first)
        # What a bot keeps of a delivered result: nothing (the reply is sent, the analysis is
        # stored). Held on here, the rerun's peak RSS counted two 10,000-track analyses.
        first.outcome = None
        result["first"]["cpu_used_s"] = cpu_used
        result["first"]["requests"] = dict(classify(log, playlist_id))
        result["first"]["client_counts"] = {k: after[k] - before[k] for k in after}
        result["first"]["statuses"] = _status_counts(log)
        result["minimum"] = minimum_requests(n)
        _add_floor(result["first"], latency_ms / 1000)
        result["loop_stall_ms"] = round(monitor.max_ms, 1)
        result["loop_samples"] = monitor.samples
        result["loop_stalls_over_50ms"] = monitor.over_50ms
        result["stall_stacks"] = tracer.report()
        result["gc_pauses"] = [
            {"at_s": round(at - first.submitted, 3), "gen": gen, "ms": round(ms, 1)}
            for at, gen, ms in gc_monitor.pauses
        ]
        result["stalls_over_50ms"] = [
            {
                "at_s": round(at - first.submitted, 3),
                "ms": round(ms, 1),
                "stage": _stage_at(first, at),
            }
            for at, ms in monitor.stalls
        ]
        if trace_threads:
            result["other_threads"] = [
                (n * 5, list(stack)) for stack, n in tracer.other_samples.most_common(10)
            ]

        # Second run, same snapshot: only the meta request should reach the network.
        await fake.reset()
        before = env.request_counts()
        async with LoopMonitor() as monitor2:
            second = await env.run_job(f"{n} tracks (unchanged)", playlist_id)
        log = await fake.requests()
        after = env.request_counts()
        result["second"] = _job_summary(second)
        result["second"]["requests"] = dict(classify(log, playlist_id))
        result["second"]["client_counts"] = {k: after[k] - before[k] for k in after}
        result["second"]["loop_stall_ms"] = round(monitor2.max_ms, 1)

        result["rss_mb"] = {
            "bot_peak": round(self_peak_rss_mb(), 1),
            "bot_before_job": round(rss_before, 1),
            "bot_peak_first_job": round(rss_first, 1),
            "children_peak": {k: round(v, 1) for k, v in children.items()},
        }
    return result


def _add_floor(job: dict[str, Any], latency_s: float) -> None:
    """``floor_s``: the job's own requests at ``latency_s`` (item pages and feature calls
    overlapped, 8 at a time per service) plus its CPU steps as measured (from the clustering
    stage to done: pickling, the pool's clustering and rendering, storing); ``ratio``: wall
    time over that floor."""
    stages = job.get("stages") or {}
    if "error" in job or "clustering" not in stages or "done" not in stages:
        return
    cpu = stages["done"] - stages["clustering"]
    job["cpu_s"] = round(cpu, 3)
    job["floor_s"] = round(floor_s(job["requests"], latency_s, cpu), 3)
    job["network_floor_s"] = round(job["floor_s"] - cpu, 3)
    job["ratio"] = round(job["wall_s"] / job["floor_s"], 2) if job["floor_s"] else None


def _stage_at(timing: JobTiming, at: float) -> str:
    """The pipeline stage the job was in at perf_counter() ``at``."""
    current = "before submit"
    for stage, started in sorted(timing.stages.items(), key=lambda kv: kv[1]):
        if started <= at:
            current = stage
    return current


def _status_counts(log: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for entry in log:
        key = str(entry.get("status"))
        out[key] = out.get(key, 0) + 1
    return out


def print_result(r: dict[str, Any]) -> None:
    n, mins = r["n"], r["minimum"]
    first, second = r["first"], r["second"]
    print(
        f"\n== playlist of {n} tracks, {r['latency_ms']:.0f} ms/request, {r['workers']} workers =="
    )
    print(f"env: {r['env']}")
    startup = r.get("startup") or {}
    if startup.get("mode"):
        print(
            f"bot start-up: app mode {startup['mode']} "
            f"({startup['probe_requests']} audio-features probe request, once per process)"
        )
    if r.get("warmup_s") is not None:
        print(f"warm-up (demo job, starts the pool): {r['warmup_s']:.2f} s")
    for label, job in (("first run", first), ("unchanged rerun", second)):
        print(f"{label}: wall {job['wall_s']:.2f} s; stages at {job['stages']}")
        if job.get("floor_s"):
            print(
                f"  floor {job['floor_s']:.2f} s (network {job['network_floor_s']:.2f} s for "
                f"its requests + CPU steps {job['cpu_s']:.2f} s measured): "
                f"wall / floor = {job['ratio']:.2f}"
            )
        if job.get("cpu_used_s"):
            used = job["cpu_used_s"]
            workers = sum(v for k, v in used.items() if k.startswith("worker:"))
            print(
                f"  CPU used: bot process {used['bot_process']:.2f} s (its event loop "
                f"{used['event_loop']:.2f} s), pool workers {workers:.2f} s ("
                + ", ".join(f"{v:.2f}" for k, v in used.items() if k.startswith("worker:"))
                + ")"
            )
        if "error" in job:
            print(f"  ERROR {job['error']}")
        else:
            print(
                f"  {job['n_tracks']} tracks, k={job['k']}, mode={job['feature_mode']}, "
                f"coverage={job['coverage']}, reused={job['reused']}"
            )
        print(f"  requests (fake log): {job['requests']}; client counters: {job['client_counts']}")
        if "loop_stall_ms" in job:
            print(f"  max event-loop stall during the rerun: {job['loop_stall_ms']:.1f} ms")
    print(f"minimum requests (cold): {mins}")
    print(
        f"max event-loop stall: {r['loop_stall_ms']:.1f} ms "
        f"({r['loop_samples']} samples, {r['loop_stalls_over_50ms']} over 50 ms)"
    )
    if r.get("stalls_over_50ms"):
        print("stalls over 50 ms (s after submit, ms, stage):")
        print(
            "  "
            + ", ".join(
                f"{x['at_s']:.2f}s {x['ms']:.0f}ms {x['stage']}" for x in r["stalls_over_50ms"]
            )
        )
    if r.get("gc_pauses"):
        pauses = r["gc_pauses"]
        print("garbage-collector pauses ≥10 ms during the job (s after submit, generation, ms):")
        print("  " + ", ".join(f"{p['at_s']:.2f}s g{p['gen']} {p['ms']:.0f}ms" for p in pauses))
    if r.get("other_threads"):
        print("other threads during stalls (samples × 5 ms):")
        for ms, stack in r["other_threads"]:
            print(f"  {ms:7.1f} ms  " + " > ".join(stack))
    if r.get("stall_stacks"):
        print("where the loop was blocked (≥20 ms stalls; sampled ms, innermost frame last):")
        for ms, stack in r["stall_stacks"]:
            print(f"  {ms:7.1f} ms  " + " > ".join(stack))
    print(f"peak RSS: {r['rss_mb']}")
    if r.get("loop_profile"):
        print(r["loop_profile"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark one playlist of N real tracks.")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (≥1)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    parser.add_argument(
        "--no-mode-probe",
        dest="probe_mode",
        action="store_false",
        help="do not detect the app mode at start-up (the first job then probes it)",
    )
    parser.add_argument(
        "--trace-threads",
        action="store_true",
        help="also sample the other threads' stacks during loop stalls (GIL holders)",
    )
    parser.add_argument(
        "--profile-loop",
        action="store_true",
        help="cProfile the event-loop thread during the job (slows it; for finding stalls)",
    )
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(
            args.n,
            args.latency_ms,
            max(1, args.workers),
            args.warmup,
            probe_mode=args.probe_mode,
            trace_threads=args.trace_threads,
            profile_loop=args.profile_loop,
        )
    )
    print_result(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    failed = "error" in result["first"] or "error" in result["second"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
