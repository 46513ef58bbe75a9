"""Bench: 2 bot processes (shards) + 3 workers on one PostgreSQL, driven by the fake Discord.

    python -m bench.scale [--jobs 50] [--workers 3] [--kill-after 10] [--latency-ms 50]
                          [--json out.json] [--only distributed|embedded]

What runs (all on this machine, loopback only):

* this process hosts the fake Discord (``tests.fakes.discord_fake``: gateway + REST, Discord's
  limits enforced) with 4 guilds, 2 on each shard of 2, and the fake Spotify/ReccoBeats in
  Development Mode (50 public 100-track playlists of the bundled real tracks, read from
  Spotify's public page, sound from ReccoBeats), with ``--latency-ms`` on every request;
* a throwaway PostgreSQL (``.ci/postgres``; or ``TEST_DATABASE_URL``), a fresh database;
* **distributed**: 2 ``python -m bot`` processes with ``SHARD_COUNT=2`` and ``SHARD_IDS=0`` /
  ``1`` (each IDENTIFYs its shard and gets only its guilds' events) and 3 ``python -m bot
  worker`` processes (``--concurrency 2``, one CPU process each). Once every process is ready,
  50 analyses are asked for across the 4 guilds, half with ``/cluster playlist:<link>``, half
  as posted messages with a playlist link; after ``--kill-after`` are done one worker is killed
  with SIGKILL while it runs jobs; the others resume them when its heartbeat is stale (5 s).
* **embedded**: the same 50 through one ``python -m bot`` (SQLite, in-process queue, 2 CPU
  processes: the default), against a fresh fake Discord.

Counted at the fake Discord: the result messages (the one carrying ``clusters.png``) per
request. Every analysis answered exactly once = one result per request, none missing, no
error reply, and (distributed) 50 ``done`` jobs with 50 distinct analyses. Also printed: wall
time from the first request to the last result, CPU seconds per kind of process, PostgreSQL
transactions, how long jobs waited for a worker, and progress edits that showed counts.

The bot processes are ``python -m bot`` unchanged, with discord.py pointed at the fake (the
test suite's ``patch_discord``, done by ``python -m bench.scale --bot-process``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRACKS = ROOT / "bench" / "data" / "tracks_10k.csv.gz"
TRACKS_PER_PLAYLIST = 100  # what Spotify's public page shows (Development Mode, unlinked)
GUILDS_PER_SHARD = 2
SHARDS = 2
MEMBERS = 10
STALLED_AFTER_S = 5.0
RESULT_FILE = "clusters.png"
TICK = os.sysconf("SC_CLK_TCK")


# --- a bot process: python -m bot, discord.py pointed at the fake --------------------------
def bot_process() -> int:
    """``python -m bot`` with discord.py's REST base and gateway at ``PC_FAKE_DISCORD``."""
    import discord.gateway
    import discord.http
    import yarl

    base = os.environ["PC_FAKE_DISCORD"]
    discord.http.Route.BASE = f"{base}/api/v10"
    gateway = yarl.URL(base.replace("http://", "ws://") + "/gateway")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway  # type: ignore[misc]
    from bot.__main__ import main as bot_main

    return bot_main([])


# --- processes and their CPU time -----------------------------------------------------------
def _cpu_s(pid: int, *, children: bool = True) -> float:
    """CPU seconds (user + system) of ``pid`` (and of its waited-for children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return sum(int(fields[i]) for i in ((11, 12, 13, 14) if children else (11, 12))) / TICK


def _tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


class CpuMeter:
    """CPU seconds per group of process trees, between :meth:`start` and :meth:`stop`.

    A process that exits in between (the killed worker) takes its time with it: the figures
    are a lower bound for its group."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._first: dict[int, float] = {}
        self.used: dict[str, float] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        me = os.getpid()  # this process alone: the others are its children
        return {
            name: {
                pid: _cpu_s(pid, children=pid != me)
                for root in roots
                for pid in ([me] if root == me else _tree(root))
            }
            for name, roots in self.groups.items()
        }

    def start(self) -> None:
        self._first = {pid: s for g in self._sample().values() for pid, s in g.items()}

    def stop(self) -> dict[str, float]:
        for name, pids in self._sample().items():
            self.used[name] = round(
                sum(max(0.0, s - self._first.get(pid, 0.0)) for pid, s in pids.items()), 1
            )
        return self.used


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then SIGKILL after 30 s. Run in a thread (``asyncio.to_thread``): the fake
    Discord lives on this process's event loop and the bots talk to it as they close."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# --- PostgreSQL -----------------------------------------------------------------------------
def _start_postgres(tmp: Path) -> tuple[str, int | None]:
    """A throwaway cluster: (its URL, its postmaster's pid)."""
    tmp.chmod(0o755)  # .ci/postgres runs the server as the postgres user when we are root
    out = subprocess.run(
        [str(ROOT / ".ci" / "postgres"), "start", str(tmp / "pg")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    url = next(
        (p.split("=", 1)[1] for p in out.split() if p.startswith("TEST_DATABASE_URL=")), None
    )
    if url is None:
        raise SystemExit("could not start PostgreSQL (is it installed?)")
    pid = int((tmp / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    return url, pid


def _stop_postgres(tmp: Path) -> None:
    subprocess.run([str(ROOT / ".ci" / "postgres"), "stop", str(tmp / "pg")], check=False)


def _statements(log: Path, start: int, end: int) -> dict[str, Any]:
    """Statements PostgreSQL logged (``log_statement = all``) between two offsets of its log,
    per application (process kind) and the most frequent per kind."""
    with log.open("rb") as fh:
        fh.seek(start)
        text = fh.read(end - start).decode("utf-8", "replace")
    per_app: Counter[str] = Counter()
    per_stmt: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        m = re.search(r"\] (\S*): LOG:  (?:statement|execute [^:]*): (.*)", line)
        if m is None:
            continue
        app, sql = m.group(1) or "?", " ".join(m.group(2).split())
        per_app[app] += 1
        per_stmt[(app, sql[:70])] += 1
    top = [f"{n} {app}: {sql}" for (app, sql), n in per_stmt.most_common(15)]
    return {"per_process_kind": dict(per_app), "top": top}


async def _fetch(url: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


# --- the fakes ------------------------------------------------------------------------------
async def start_spotify(jobs: int, latency_ms: float) -> tuple[Any, list[str]]:
    """The fake Spotify/ReccoBeats (Development Mode) with ``jobs`` distinct public playlists
    of disjoint real tracks: no analysis can reuse another's features."""
    from tests.fakes.spotify_api import FakeSpotify

    with gzip.open(TRACKS, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if jobs * TRACKS_PER_PLAYLIST > len(rows):
        raise SystemExit(f"at most {len(rows) // TRACKS_PER_PLAYLIST} jobs")
    fake = FakeSpotify("development")
    fake.latency = latency_ms / 1000
    fake.add_user("bench-owner", "Bench Owner")
    links = []
    for i in range(jobs):
        chunk = rows[i * TRACKS_PER_PLAYLIST : (i + 1) * TRACKS_PER_PLAYLIST]
        fake.add_rows(chunk)
        ids = [r["track_id"] for r in chunk]
        pl = fake.add_playlist(ids, name=f"Mix {i}", owner_id="bench-owner")
        links.append(f"https://open.spotify.com/playlist/{pl.id}")
    await fake.start()
    return fake, links


def start_discord_guilds(fake: Any) -> list[int]:
    """4 guilds, 2 on each shard of 2; returns their #general channel ids."""
    return [
        fake.add_guild(f"Guild {shard}.{j}", shard=shard, shard_count=SHARDS)[1]
        for shard in range(SHARDS)
        for j in range(GUILDS_PER_SHARD)
    ]


def _settings_env(spotify: Any, discord_base: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARD_", "DATABASE_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        PC_FAKE_DISCORD=discord_base,
        DISCORD_TOKEN="fake-token",
        SPOTIFY_CLIENT_ID=spotify.client_id,
        SPOTIFY_CLIENT_SECRET=spotify.client_secret,
        SPOTIFY_API_BASE=spotify.api_base,
        SPOTIFY_ACCOUNTS_BASE=spotify.accounts_base,
        SPOTIFY_WEB_BASE=spotify.web_base,
        SPOTIFY_PUBLIC_PAGES="true",
        RECCOBEATS_ENABLED="true",
        RECCOBEATS_BASE=spotify.reccobeats_base,
        TOKEN_ENCRYPTION_KEY=key,
        MAX_JOBS_PER_USER="0",  # 50 requests from 10 members, all at once
        MAX_JOBS_PER_GUILD="0",
        LOG_LEVEL="WARNING",
        MPLBACKEND="Agg",
    )
    return env


# --- driving the fake Discord ---------------------------------------------------------------
class Requests:
    """The analyses asked for through the fake Discord, and the replies each one got."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.slash: list[Any] = []  # FakeInteraction
        self.posted: list[int] = []  # message ids
        self.first_result: dict[str, float] = {}

    async def ask(self, links: list[str], channels: list[int], members: list[int]) -> None:
        for i, link in enumerate(links):
            channel, user = channels[i % len(channels)], members[i % len(members)]
            if i % 2 == 0:
                it = await self.fake.slash(
                    "cluster", {"playlist": link}, user_id=user, channel_id=channel
                )
                self.slash.append(it)
            else:
                mid = await self.fake.send_message(
                    f"new mix, what's in it? {link}", user_id=user, channel_id=channel
                )
                self.posted.append(mid)

    def _replies(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {f"i{it.id}": self.fake.responses(it) for it in self.slash}
        by_ref: dict[int, list[Any]] = {}
        for m in self.fake.sent(via="channel"):
            if m.reference_id is not None:
                by_ref.setdefault(m.reference_id, []).append(m)
        for mid in self.posted:
            out[f"m{mid}"] = by_ref.get(mid, [])
        return out

    def results(self) -> dict[str, int]:
        """Result messages (the ones carrying the chart) per request."""
        now = time.perf_counter()
        counts = {}
        for key, msgs in self._replies().items():
            n = sum(1 for m in msgs if any(f.filename == RESULT_FILE for f in m.files))
            counts[key] = n
            if n and key not in self.first_result:
                self.first_result[key] = now
        return counts

    def errors(self) -> list[str]:
        return [
            m.content[:120]
            for msgs in self._replies().values()
            for m in msgs
            if m.content.startswith("❌") or (m.ephemeral and not m.files and "❌" in m.text)
        ]

    def progress_edits(self) -> list[str]:
        """The texts of the progress edits the bots made (``📥 Fetched 100/100 tracks…``)."""
        return [
            payload.get("content") or ""
            for method, _path, payload in self.fake.requests
            if method == "PATCH" and isinstance(payload, dict) and not payload.get("embeds")
        ]


def _answer_counts(counts: dict[str, int], links: list[str], asked: Requests) -> dict[str, Any]:
    """How the requests were answered (results per request), the same for both topologies."""
    return {
        "answers": sorted(Counter(counts.values()).items()),
        "answered": sum(1 for n in counts.values() if n),
        "exactly_once": all(n == 1 for n in counts.values()) and len(counts) == len(links),
        "errors": asked.errors(),
    }


def _progress_summary(texts: list[str]) -> dict[str, Any]:
    counted = [t for t in texts if re.search(r"\d+/\d+ tracks", t)]
    return {"edits": len(texts), "with_counts": len(counted), "examples": sorted(set(texts))[:8]}


async def _wait_ready(fake: Any, channels: list[int], within: float = 180) -> None:
    """Every shard's bot answers /about in one of its guilds (connected, cogs loaded)."""
    for channel in channels[::GUILDS_PER_SHARD]:
        deadline = time.monotonic() + within
        while True:
            try:
                it = await fake.slash("about", channel_id=channel)
                await fake.wait_response(it, within=30)
                break
            except (RuntimeError, TimeoutError):  # not connected yet / not ready yet
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)


async def _wait_workers(url: str, n: int, within: float = 180) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(Exception):
            rows = await _fetch(url, "SELECT count(*) AS n FROM procrastinate_workers")
            if rows[0]["n"] >= n:
                return
        if time.monotonic() > deadline:
            raise TimeoutError("the workers did not start")
        await asyncio.sleep(0.5)


async def _wait_answers(asked: Requests, jobs: int, within: float, on_tick: Any = None) -> float:
    """Until every request has a result (or ``within`` s); returns when the last one came."""
    deadline = time.perf_counter() + within
    said = time.perf_counter()
    while time.perf_counter() < deadline:
        counts = asked.results()
        answered = sum(1 for n in counts.values() if n)
        if answered >= jobs:
            break
        if time.perf_counter() - said > 15:
            said = time.perf_counter()
            print(f"  … {answered}/{jobs} answered", file=sys.stderr, flush=True)
        if on_tick is not None:
            await on_tick()
        await asyncio.sleep(0.2)
    return max(asked.first_result.values(), default=time.perf_counter())


# --- the two set-ups ------------------------------------------------------------------------
async def run_distributed(args: argparse.Namespace, spotify: Any, links: list[str]) -> dict:
    import asyncpg
    from cryptography.fernet import Fernet

    from storage.postgres import PostgresDatabase
    from tests.fakes.discord_fake import FakeDiscord

    tmp = Path(tempfile.mkdtemp(prefix="pc-scale-"))
    own_pg = not os.environ.get("TEST_DATABASE_URL")
    base, pg_pid = _start_postgres(tmp) if own_pg else (os.environ["TEST_DATABASE_URL"], None)
    name = "bench_" + uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    fake = await FakeDiscord().start()
    channels = start_discord_guilds(fake)
    members = [fake.add_user(f"member{i}") for i in range(MEMBERS)]
    env = _settings_env(spotify, fake.base, Fernet.generate_key().decode())
    env.update(DATABASE_URL=url, SHARD_COUNT=str(SHARDS))
    pg_log = tmp / "pg" / "log"
    trace = args.count_statements and own_pg
    if trace:  # every statement logged with its process kind (application_name)
        await admin.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] %a: '")
        await admin.execute("SELECT pg_reload_conf()")
        await admin.execute(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
    procs: list[subprocess.Popen[bytes]] = []
    log = tmp / "processes.log"
    try:
        await (await PostgresDatabase(url).open()).close()  # schema once, before the crowd
        bots = [
            _spawn(
                ["-m", "bench.scale", "--bot-process"],
                {
                    **env,
                    "SHARD_IDS": str(shard),
                    "DATABASE_URL": f"{url}?application_name=bot",
                    "DATABASE_PATH": str(tmp / f"shard{shard}.sqlite3"),  # heartbeat file only
                    "WORKER_PROCESSES": "0",  # jobs run in the workers
                },
                log,
            )
            for shard in range(SHARDS)
        ]
        worker_cmd = ["-m", "bot", "worker", "--concurrency", "2"]
        worker_cmd += ["--stalled-after", str(STALLED_AFTER_S)]
        workers = [
            _spawn(
                worker_cmd,
                {
                    **env,
                    "WORKER_PROCESSES": "1",
                    "DATABASE_PATH": str(tmp / "w.sqlite3"),
                    "DATABASE_URL": f"{url}?application_name=worker",
                },
                log,
            )
            for _ in range(args.workers)
        ]
        procs += bots + workers
        await _wait_ready(fake, channels)
        await _wait_workers(url, args.workers)
        groups = {"bot processes": [b.pid for b in bots], "workers": [w.pid for w in workers]}
        if pg_pid is not None:
            groups["PostgreSQL"] = [pg_pid]
        groups["fakes (this process)"] = [os.getpid()]
        meter = CpuMeter(groups)
        xacts = await _fetch(
            url, "SELECT xact_commit FROM pg_stat_database WHERE datname = " + f"'{name}'"
        )
        fake.requests.clear()
        asked = Requests(fake)
        log_start = pg_log.stat().st_size if trace else 0
        meter.start()
        t0 = time.perf_counter()
        await asked.ask(links, channels, members)
        killed: dict[str, Any] = {}

        checked = [0.0]

        async def maybe_kill() -> None:
            if killed or args.kill_after < 0 or time.perf_counter() - checked[0] < 1:
                return
            checked[0] = time.perf_counter()
            done = await _fetch(url, "SELECT count(*) AS n FROM jobs WHERE state = 'done'")
            if done[0]["n"] >= args.kill_after:
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait()
                killed["at_s"] = time.perf_counter() - t0
                killed["done_before"] = int(done[0]["n"])

        last = await _wait_answers(asked, len(links), args.timeout, maybe_kill)
        wall = last - t0
        cpu = meter.stop()
        statements = _statements(pg_log, log_start, pg_log.stat().st_size) if trace else {}
        await asyncio.sleep(args.settle)  # a duplicate answer would come now
        counts = asked.results()
        xacts_after = await _fetch(
            url, f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{name}'"
        )
        jobs = await _fetch(url, "SELECT id, state, analysis_id, attempts FROM jobs")
        waits = await _fetch(
            url,
            "SELECT extract(epoch FROM s.at - d.at) AS wait_s, extract(epoch FROM e.at - s.at)"
            " AS run_s FROM procrastinate_events d"
            " JOIN procrastinate_events s ON s.job_id = d.job_id AND s.type = 'started'"
            " JOIN procrastinate_events e ON e.job_id = s.job_id AND e.type = 'succeeded'"
            " AND e.at > s.at WHERE d.type = 'deferred'",
        )
        gaps = await _fetch(url, _PICKUP_GAPS)
    finally:
        await asyncio.to_thread(_stop, procs)
        await fake.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if own_pg:
            _stop_postgres(tmp)
    return {
        "wall_s": round(wall, 1),
        **_answer_counts(counts, links, asked),
        "jobs_done": sum(1 for j in jobs if j["state"] == "done"),
        "distinct_analyses": len({j["analysis_id"] for j in jobs if j["analysis_id"]}),
        "jobs_resumed_after_kill": sum(1 for j in jobs if j["attempts"] > 1),
        "killed": killed,
        "cpu_s": cpu,
        "pg_transactions": int(xacts_after[0]["xact_commit"]) - int(xacts[0]["xact_commit"]),
        "queue_wait_s": _spread([float(w["wait_s"]) for w in waits]),
        "job_run_s": _spread([float(w["run_s"]) for w in waits]),
        "pickup_gap_s": _spread([float(g["gap_s"]) for g in gaps if g["gap_s"] is not None]),
        "progress": _progress_summary(asked.progress_edits()),
        "statements": statements,
        "log": str(log),
    }


async def run_embedded(args: argparse.Namespace, spotify: Any, links: list[str]) -> dict:
    """The same requests through one ``python -m bot`` (SQLite, 2 CPU processes)."""
    from cryptography.fernet import Fernet

    from tests.fakes.discord_fake import FakeDiscord

    tmp = Path(tempfile.mkdtemp(prefix="pc-scale-one-"))
    fake = await FakeDiscord().start()
    channels = start_discord_guilds(fake)
    members = [fake.add_user(f"member{i}") for i in range(MEMBERS)]
    env = _settings_env(spotify, fake.base, Fernet.generate_key().decode())
    env.update(DATABASE_PATH=str(tmp / "one.sqlite3"), WORKER_PROCESSES="2")
    log = tmp / "processes.log"
    bot = _spawn(["-m", "bench.scale", "--bot-process"], env, log)
    try:
        await _wait_ready(fake, channels)
        meter = CpuMeter({"bot process": [bot.pid], "fakes (this process)": [os.getpid()]})
        fake.requests.clear()
        asked = Requests(fake)
        meter.start()
        t0 = time.perf_counter()
        await asked.ask(links, channels, members)
        last = await _wait_answers(asked, len(links), args.timeout)
        wall = last - t0
        cpu = meter.stop()
        await asyncio.sleep(args.settle)
        counts = asked.results()
    finally:
        await asyncio.to_thread(_stop, [bot])
        await fake.close()
    return {
        "wall_s": round(wall, 1),
        **_answer_counts(counts, links, asked),
        "cpu_s": cpu,
        "progress": _progress_summary(asked.progress_edits()),
        "log": str(log),
    }


# How long a worker's slot stays empty: from a job's end to the start of the next job on the
# same worker (the queue is never empty here), i.e. procrastinate's finish + fetch + wake-up.
_PICKUP_GAPS = """
WITH ev AS (
    SELECT e.type, e.at, j.worker_id FROM procrastinate_events e
    JOIN procrastinate_jobs j ON j.id = e.job_id WHERE e.type IN ('started', 'succeeded')
)
SELECT extract(epoch FROM s.at - (
    SELECT max(f.at) FROM ev f
    WHERE f.worker_id = s.worker_id AND f.type = 'succeeded' AND f.at <= s.at
)) AS gap_s
FROM ev s WHERE s.type = 'started'
"""


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    return {
        "median": round(values[len(values) // 2], 2),
        "max": round(values[-1], 2),
        "n": len(values),
    }


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    spotify, links = await start_spotify(args.jobs, args.latency_ms)
    try:
        report: dict[str, Any] = {"jobs": args.jobs, "cores": os.cpu_count()}
        if args.only in (None, "distributed"):
            report["distributed"] = await run_distributed(args, spotify, links)
        if args.only in (None, "embedded"):
            report["embedded"] = await run_embedded(args, spotify, links)
        report["load_average"] = os.getloadavg()
        return report
    finally:
        await spotify.stop()


def _print(report: dict[str, Any], args: argparse.Namespace) -> bool:
    ok = True
    jobs = report["jobs"]
    dist, one = report.get("distributed"), report.get("embedded")
    if dist is not None:
        good = (
            dist["exactly_once"]
            and not dist["errors"]
            and dist["jobs_done"] == jobs
            and dist["distinct_analyses"] == jobs
        )
        ok &= good
        kill = dist["killed"]
        print(
            f"{jobs} analyses from the fake Discord (/cluster and posted links, 4 guilds on 2 "
            f"shards): 2 bot processes + {args.workers} workers + PostgreSQL"
        )
        if kill:
            print(
                f"  one worker killed with SIGKILL at {kill['at_s']:.1f} s "
                f"({kill['done_before']} done); {dist['jobs_resumed_after_kill']} jobs resumed"
            )
        print(
            f"  result messages per request {dict(dist['answers'])}, errors "
            f"{len(dist['errors'])}, jobs done {dist['jobs_done']}, distinct analyses "
            f"{dist['distinct_analyses']} -> "
            f"{'every analysis answered exactly once' if good else 'FAILED'}"
        )
        print(
            f"  wall {dist['wall_s']:.1f} s = {60 * jobs / dist['wall_s']:.1f} jobs/min; "
            f"CPU s {dist['cpu_s']}; PostgreSQL transactions {dist['pg_transactions']}"
        )
        print(
            f"  wait for a worker {dist['queue_wait_s']}, run {dist['job_run_s']}, a worker's "
            f"slot empty between jobs {dist['pickup_gap_s']}; progress "
            f"edits {dist['progress']}"
        )
        if dist["statements"]:
            print(f"  statements per process kind {dist['statements']['per_process_kind']}")
            for line in dist["statements"]["top"]:
                print(f"    {line}")
    if one is not None:
        good = one["exactly_once"] and not one["errors"]
        ok &= good
        print(
            f"one python -m bot (SQLite, 2 CPU processes): wall {one['wall_s']:.1f} s = "
            f"{60 * jobs / one['wall_s']:.1f} jobs/min; result messages per request "
            f"{dict(one['answers'])}, errors {len(one['errors'])}; CPU s {one['cpu_s']}; "
            f"progress edits {one['progress']}"
        )
    print(f"machine: {report['cores']} cores, load average after {report['load_average']}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-after", type=int, default=10, help="done jobs before the kill")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--settle", type=float, default=5.0, help="wait for late duplicates")
    parser.add_argument("--only", choices=("distributed", "embedded"))
    parser.add_argument(
        "--count-statements",
        action="store_true",
        help="log every statement (own PostgreSQL only) and count them per process kind",
    )
    parser.add_argument("--bot-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs")
    args = parser.parse_args(argv)
    if args.bot_process:
        return bot_process()
    report = asyncio.run(_bench(args))
    ok = _print(report, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    for part in ("distributed", "embedded"):  # the processes' logs and the SQLite files
        log = Path(report[part]["log"]) if part in report else None
        if log is not None and ok and not args.keep:
            shutil.rmtree(log.parent, ignore_errors=True)
        elif log is not None:
            print(f"  {part}: the processes' output is in {log}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
