"""Bench: bot processes + procrastinate workers on one PostgreSQL, a worker killed mid-run.

    python -m bench.scale [--jobs 50] [--bots 2] [--workers 3] [--kill-after 8] [--json out.json]

* Starts a throwaway PostgreSQL (``.ci/postgres``) unless TEST_DATABASE_URL is set, and makes
  a fresh database in it.
* ``--bots`` submitter processes each build the bot's services on DATABASE_URL (so their queue
  is the DistributedQueue the /cluster cog uses) and submit their share of ``--jobs`` distinct
  analyses (Exportify-style CSV slices of the bundled real tracks: no network), then wait for
  every result through the database.
* ``--workers`` ``python -m bot worker`` processes run them; once ``--kill-after`` jobs are done
  one worker is killed with SIGKILL while it holds jobs; the others pick its jobs up when its
  heartbeat goes stale (``--stalled-after``, 5 s here).
* Checks: every analysis answered exactly once (each submitter got one result per job, the
  ``analyses`` table has one row per job, all jobs ``done``), none lost; prints the wall time
  and throughput next to the same jobs in one embedded process (SQLite, in-process queue,
  local pool) as the baseline.

The submitters are the bot's job path without a gateway: the fake Discord serves one process
per test, so the Discord side of several processes is covered by tests/test_shards.py instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO_CSV = ROOT / "bot" / "demo_data" / "demo_mix.csv"
ROWS_PER_JOB = 120


def requests(n: int) -> list[Any]:
    """``n`` distinct CSV analyses: overlapping 120-row windows of the bundled real tracks."""
    from bot.models import AnalysisRequest

    lines = DEMO_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    head, rows = lines[0], lines[1:]
    step = max(1, (len(rows) - ROWS_PER_JOB) // max(1, n))
    out = []
    for i in range(n):
        start = (i * step) % max(1, len(rows) - ROWS_PER_JOB)
        text = head + "".join(rows[start : start + ROWS_PER_JOB - (i // 50)])
        out.append(AnalysisRequest(csv_text=text, csv_name=f"mix-{i}.csv", k=4, user_id=1000 + i))
    return out


# --- submitter process ----------------------------------------------------------------------
async def _submit(part: int, of: int, jobs: int) -> dict[str, Any]:
    from bot.app import build_services, close_services
    from bot.config import Settings

    settings = Settings(_env_file=None, reccobeats_enabled=False, spotify_client_id=None)  # type: ignore[call-arg]
    services = await build_services(settings)
    await services.queue.start()
    mine = [r for i, r in enumerate(requests(jobs)) if i % of == part]
    answers: dict[int, int] = {}
    t0 = time.perf_counter()
    try:
        handles = [await services.queue.submit(r) for r in mine]

        async def wait(handle: Any) -> tuple[int, int | None, str | None]:
            try:
                outcome = await handle.result()
                return handle.job_id, outcome.analysis_id, None
            except Exception as exc:
                return handle.job_id, None, type(exc).__name__

        results = await asyncio.gather(*(wait(h) for h in handles))
    finally:
        await close_services(services)
    for job_id, _aid, _err in results:
        answers[job_id] = answers.get(job_id, 0) + 1
    return {
        "part": part,
        "submitted": len(mine),
        "results": [list(r) for r in results],
        "answers_per_job": sorted(set(answers.values())),
        "wall_s": time.perf_counter() - t0,
    }


async def _embedded(jobs: int, workers: int) -> dict[str, Any]:
    """The baseline: the same jobs in one process (SQLite, in-process queue, local pool)."""
    from bot.app import build_services, close_services
    from bot.config import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_path=Path(tmp) / "one.sqlite3",
            worker_processes=workers,
            reccobeats_enabled=False,
            spotify_client_id=None,
            max_jobs_per_user=0,
        )
        services = await build_services(settings)
        await services.queue.start()
        t0 = time.perf_counter()
        try:
            handles = [await services.queue.submit(r) for r in requests(jobs)]
            done = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
        finally:
            await close_services(services)
        ok = sum(1 for d in done if not isinstance(d, BaseException))
        return {"ok": ok, "wall_s": time.perf_counter() - t0}


# --- orchestration --------------------------------------------------------------------------
def _env(url: str, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        DATABASE_PATH=str(tmp / "unused.sqlite3"),
        PYTHONPATH=str(ROOT),
        DISCORD_TOKEN="",
        RECCOBEATS_ENABLED="false",
        WORKER_PROCESSES="1",
        LOG_LEVEL="WARNING",
    )
    return env


def _start_postgres(tmp: Path) -> str:
    tmp.chmod(0o755)  # .ci/postgres runs the server as the postgres user when we are root
    out = subprocess.run(
        [str(ROOT / ".ci" / "postgres"), "start", str(tmp / "pg")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for part in out.split():
        if part.startswith("TEST_DATABASE_URL="):
            return part.split("=", 1)[1]
    raise SystemExit("could not start PostgreSQL (is it installed?)")


def _spawn(args: list[str], cwd: Path, env: dict[str, str], *, capture: bool) -> Any:
    """A Python subprocess (its stdout piped when ``capture``)."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _stop_postgres(tmp: Path) -> None:
    subprocess.run([str(ROOT / ".ci" / "postgres"), "stop", str(tmp / "pg")], check=False)


async def _count_done(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'done'") or 0)
    finally:
        await conn.close()


async def _fetch(url: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def _orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg

    tmp = Path(tempfile.mkdtemp(prefix="pc-scale-"))
    own_pg = not os.environ.get("TEST_DATABASE_URL")
    base = os.environ.get("TEST_DATABASE_URL") or _start_postgres(tmp)
    name = "bench_" + uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    env = _env(url, tmp)
    procs: list[subprocess.Popen[str]] = []
    try:
        # Schema first (any process would do it; done here so workers start together).
        from storage.postgres import PostgresDatabase

        await (await PostgresDatabase(url).open()).close()
        worker_cmd = ["-m", "bot", "worker", "--concurrency", "2", "--stalled-after", "5"]
        workers = [_spawn(worker_cmd, tmp, env, capture=False) for _ in range(args.workers)]
        procs += workers
        t0 = time.perf_counter()
        bots = [
            _spawn(
                ["-m", "bench.scale", "--submit", str(i), str(args.bots), "--jobs", str(args.jobs)],
                ROOT,
                env,
                capture=True,
            )
            for i in range(args.bots)
        ]
        procs += bots
        killed_at = None
        while killed_at is None and all(b.poll() is None for b in bots):
            await asyncio.sleep(0.2)
            if await _count_done(url) >= args.kill_after:
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait()
                killed_at = time.perf_counter() - t0
        outs = [json.loads(b.communicate(timeout=900)[0]) for b in bots]
        wall = time.perf_counter() - t0
        jobs = await _fetch(url, "SELECT id, state, analysis_id, attempts FROM jobs")
        analyses = await _fetch(url, "SELECT id FROM analyses")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if own_pg:
            _stop_postgres(tmp)
    results = [r for o in outs for r in o["results"]]
    answered = [r for r in results if r[1] is not None]
    return {
        "jobs": args.jobs,
        "bots": args.bots,
        "workers": args.workers,
        "killed_worker_after_s": killed_at,
        "wall_s": wall,
        "answered": len(answered),
        "errors": [r for r in results if r[1] is None],
        "answers_per_job": sorted({n for o in outs for n in o["answers_per_job"]}),
        "distinct_analyses_answered": len({r[1] for r in answered}),
        "jobs_done": sum(1 for j in jobs if j["state"] == "done"),
        "analysis_rows": len(analyses),
        "jobs_resumed_after_kill": sum(1 for j in jobs if j["attempts"] > 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--bots", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-after", type=int, default=8, help="done jobs before the kill")
    parser.add_argument("--baseline-workers", type=int, default=2)
    parser.add_argument(
        "--submit", nargs=2, type=int, metavar=("PART", "OF"), help=argparse.SUPPRESS
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.submit:
        print(json.dumps(asyncio.run(_submit(args.submit[0], args.submit[1], args.jobs))))
        return 0
    dist = asyncio.run(_orchestrate(args))
    base = asyncio.run(_embedded(args.jobs, args.baseline_workers))
    ok = (
        dist["answered"] == args.jobs
        and dist["answers_per_job"] == [1]
        and dist["distinct_analyses_answered"] == args.jobs
        and dist["jobs_done"] == args.jobs
        and dist["analysis_rows"] == args.jobs
    )
    report = {"distributed": dist, "embedded": base, "exactly_once": ok}
    print(
        f"{args.jobs} analyses, {args.bots} bot processes, {args.workers} workers "
        f"(one killed with SIGKILL at {dist['killed_worker_after_s']:.1f} s)"
    )
    print(
        f"  answered {dist['answered']}/{args.jobs}, answers per job {dist['answers_per_job']}, "
        f"analysis rows {dist['analysis_rows']}, jobs done {dist['jobs_done']}, "
        f"resumed after the kill {dist['jobs_resumed_after_kill']}  -> "
        f"{'every analysis answered exactly once' if ok else 'FAILED'}"
    )
    print(f"  distributed: {dist['wall_s']:.1f} s = {60 * args.jobs / dist['wall_s']:.1f} jobs/min")
    print(
        f"  one process (SQLite, {args.baseline_workers} CPU workers): {base['wall_s']:.1f} s = "
        f"{60 * base['ok'] / base['wall_s']:.1f} jobs/min ({base['ok']} ok)"
    )
    print(f"  machine: {os.cpu_count()} cores (shared with other sessions)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
