"""The benchmark harness: a fake Spotify/ReccoBeats in a subprocess, the real bot pipeline here.

``FakeServer`` starts ``python -m bench.fake_server`` (the project's loopback fake,
``tests/fakes/spotify_api.py``, with a per-request latency and the benchmark playlists),
reads the one JSON line it prints (bases, token, playlist ids) and talks to its control
endpoint for the request log. Running it in a subprocess keeps its CPU (JSON encoding of
10,000 tracks) off this process's event loop, so the loop-stall figure is the bot's own.

``BotEnv`` builds what ``bot.app.build_services`` builds for the worker path — Database,
Store (also the feature cache), SpotifyGateway on the playlist owner's token, ReccoBeatsClient
and the real ``JobQueue`` with a process pool — all pointed at the fake.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.config import Settings
from bot.models import AnalysisRequest, Progress
from bot.pipeline import PipelineContext

ITEMS_PAGE = 50  # GET /playlists/{id}/items limit
RECCO_BATCH = 40  # ReccoBeats ids per call
STARTUP_TIMEOUT_S = 60.0
REPO_ROOT = Path(__file__).resolve().parent.parent


# --- the fake server subprocess ------------------------------------------------------------
@dataclass(frozen=True)
class PlaylistSpec:
    """A benchmark playlist: ``n`` bundled tracks starting at ``offset``."""

    name: str
    n: int
    offset: int = 0

    def arg(self) -> str:
        return f"{self.name}:{self.n}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> PlaylistSpec:
        name, n, offset = [*text.split(":"), "0"][:3]
        return cls(name=name, n=int(n), offset=int(offset))


@dataclass
class FakeInfo:
    api_base: str
    accounts_base: str
    reccobeats_base: str
    control: str
    client_id: str
    client_secret: str
    user_token: str
    user_id: str
    mode: str
    latency_ms: float
    playlists: dict[str, str]  # spec name -> playlist id
    pid: int = 0


class FakeServer:
    """``python -m bench.fake_server`` as an async context manager."""

    def __init__(
        self,
        playlists: Sequence[PlaylistSpec],
        *,
        latency_ms: float = 100.0,
        mode: str = "development",
    ) -> None:
        self.specs = list(playlists)
        self.latency_ms = latency_ms
        self.mode = mode
        self.proc: asyncio.subprocess.Process | None = None
        self.info: FakeInfo | None = None
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> FakeInfo:
        args = [sys.executable, "-m", "bench.fake_server", "--latency-ms", str(self.latency_ms)]
        args += ["--mode", self.mode]
        for spec in self.specs:
            args += ["--playlist", spec.arg()]
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(REPO_ROOT),
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), STARTUP_TIMEOUT_S)
        except TimeoutError:
            await self._stop()
            raise RuntimeError("the fake Spotify server did not start in time") from None
        if not line:
            await self._stop()
            raise RuntimeError("the fake Spotify server exited at start-up (see stderr)")
        data = json.loads(line)
        self.info = FakeInfo(**data, pid=self.proc.pid)
        self._http = aiohttp.ClientSession()
        return self.info

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def requests(self) -> list[dict[str, Any]]:
        """The fake's request log: dicts with host ("spotify"|"reccobeats"|"accounts"),
        method, path, query, status."""
        assert self._http is not None and self.info is not None
        async with self._http.get(self.info.control + "requests") as resp:
            resp.raise_for_status()
            return await resp.json()

    async def reset(self) -> None:
        assert self._http is not None and self.info is not None
        async with self._http.post(self.info.control + "reset") as resp:
            resp.raise_for_status()


# --- request accounting ---------------------------------------------------------------------
def minimum_requests(n: int) -> dict[str, int]:
    """The fewest requests a cold analysis of an ``n``-track dev-mode playlist can make."""
    return {
        "meta": 1,
        "items": math.ceil(n / ITEMS_PAGE),
        "features": math.ceil(n / RECCO_BATCH),
        "total": 1 + math.ceil(n / ITEMS_PAGE) + math.ceil(n / RECCO_BATCH),
    }


#: Requests in flight per service (``spotify_concurrency``, the ReccoBeats client's default).
SERVICE_CONCURRENCY = 8


def floor_s(
    requests: Mapping[str, int],
    latency_s: float,
    cpu_s: float,
    *,
    concurrency: int = SERVICE_CONCURRENCY,
) -> float:
    """The fastest a job making ``requests`` could finish (issue #16): the metadata request,
    then the item pages and the feature calls, which go to different services and can overlap
    (each service ``concurrency`` requests at a time), then ``cpu_s`` of measured CPU steps."""
    items = int(requests.get("items", 0))
    features = int(requests.get("features", 0)) + int(requests.get("spotify_features", 0))
    waves = int(requests.get("meta", 0)) + math.ceil(max(items, features) / concurrency)
    return waves * latency_s + cpu_s


def classify(log: list[dict[str, Any]], playlist_id: str | None = None) -> Counter[str]:
    """Count logged requests by kind.

    * ``meta``: GET /playlists/{id} (the playlist object, no /items)
    * ``items``: GET /playlists/{id}/items (or the older /tracks)
    * ``features``: GET ReccoBeats /audio-features
    * ``spotify_features``: GET Spotify /audio-features (a dev-mode app gets 403)
    * ``token``: accounts-service token requests (not Spotify API requests)
    * ``other``: anything else (e.g. /me)
    When ``playlist_id`` is given, playlist requests for other playlists are ``other``.
    """
    counts: Counter[str] = Counter()
    for entry in log:
        host, path = entry.get("host", "spotify"), entry["path"].rstrip("/")
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "v1":
            parts = parts[1:]
        if host == "accounts":
            counts["token"] += 1
        elif host == "reccobeats":
            counts["features" if parts[-1:] == ["audio-features"] else "other"] += 1
        elif parts[:1] == ["playlists"] and len(parts) >= 2:
            if playlist_id is not None and parts[1] != playlist_id:
                counts["other"] += 1
            elif len(parts) == 2:
                counts["meta"] += 1
            elif parts[2] in ("items", "tracks"):
                counts["items"] += 1
            else:
                counts["other"] += 1
        elif parts[:1] == ["audio-features"]:
            counts["spotify_features"] += 1
        else:
            counts["other"] += 1
    counts["total"] = sum(v for k, v in counts.items() if k != "token")
    return counts


# --- the bot side ------------------------------------------------------------------------------
def bench_settings(info: FakeInfo, db_path: Path, **overrides: Any) -> Settings:
    """Settings pointed at the fake (no .env, so a developer's real credentials are not used)."""
    values: dict[str, Any] = {
        "spotify_client_id": info.client_id,
        "spotify_client_secret": info.client_secret,
        "spotify_api_base": info.api_base,
        "spotify_accounts_base": info.accounts_base,
        "reccobeats_base": info.reccobeats_base,
        "database_path": db_path,
        "worker_processes": 2,
        "max_jobs_per_user": 10,
        "max_jobs_per_guild": 10,
        "max_playlist_tracks": 10_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class JobTiming:
    """One job: submit → result wall time, and when each pipeline stage was first reported."""

    label: str
    submitted: float
    finished: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    outcome: Any = None
    error: BaseException | None = None

    @property
    def wall_s(self) -> float:
        return self.finished - self.submitted

    def stage_offsets(self) -> dict[str, float]:
        return {k: round(v - self.submitted, 3) for k, v in self.stages.items()}


class BotEnv:
    """Database + Store + gateways + JobQueue (real process pool), pointed at the fake."""

    def __init__(
        self,
        info: FakeInfo,
        *,
        workers: int = 2,
        db_dir: Path | None = None,
        probe_mode: bool = True,
    ) -> None:
        self.info = info
        self.workers = workers
        self.probe_mode = probe_mode
        self.mode: str | None = None
        self.startup_requests = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.db_dir = db_dir
        self.db: Any = None
        self.store: Any = None
        self.spotify: Any = None
        self.reccobeats: Any = None
        self.queue: Any = None
        self.ctx: PipelineContext | None = None
        self.settings: Settings | None = None

    async def __aenter__(self) -> BotEnv:
        from bot.features.reccobeats import ReccoBeatsClient
        from bot.jobs import JobQueue
        from bot.sources.spotify import SpotifyGateway
        from storage.db import Database
        from storage.store import Store

        if self.db_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pc-bench-")
            self.db_dir = Path(self._tmp.name)
        self.settings = bench_settings(
            self.info, self.db_dir / "bench.sqlite3", worker_processes=self.workers
        )
        self.db = await Database(self.settings.database_path).open()
        self.store = Store(self.db, feature_cache_days=self.settings.feature_cache_days)
        # The playlist owner's token: a development-mode app may read only the signed-in
        # user's own playlists, which is the benchmark's case.
        self.spotify = SpotifyGateway(self.settings, access_token=self.info.user_token)
        # As bot.app.build_services makes it (default concurrency).
        self.reccobeats = ReccoBeatsClient(
            self.settings.reccobeats_base, timeout_s=self.settings.reccobeats_timeout_s
        )
        self.ctx = PipelineContext(
            settings=self.settings,
            spotify=self.spotify,
            reccobeats=self.reccobeats,
            feature_cache=self.store.features,
            user_tokens=None,
        )
        self.queue = JobQueue(self.store, self.ctx, self.settings)
        await self.queue.start()
        if self.probe_mode:
            # What /about does: learn once per process whether the app still has Spotify's
            # audio-features (a dev-mode app gets one 403). Without it, the first analysis
            # in a process makes this probe itself (1 extra request, once).
            before = self.spotify.request_count
            spotipy_log = logging.getLogger("spotipy.client")
            level = spotipy_log.level
            spotipy_log.setLevel(logging.CRITICAL)  # the expected 403 is logged as an error
            try:
                self.mode = await self.spotify.detect_mode()
            finally:
                spotipy_log.setLevel(level)
            self.startup_requests = self.spotify.request_count - before
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.queue is not None:
            await self.queue.close()
        if self.reccobeats is not None:
            await self.reccobeats.close()
        close = getattr(self.spotify, "close", None)
        if close is not None:
            res = close()
            if asyncio.iscoroutine(res):
                await res
        if self.db is not None:
            await self.db.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def request_counts(self) -> dict[str, int]:
        """The clients' own counters (cumulative)."""
        return {
            "spotify": int(getattr(self.spotify, "request_count", -1)),
            "reccobeats": int(getattr(self.reccobeats, "request_count", -1)),
        }

    async def run_job(self, label: str, playlist_id: str, *, user_id: int = 1) -> JobTiming:
        """Submit an analysis of ``playlist_id`` and wait for its rendered report."""
        timing = JobTiming(label=label, submitted=time.perf_counter())

        async def progress(p: Progress) -> None:
            timing.stages.setdefault(p.stage, time.perf_counter())

        request = AnalysisRequest(
            link=f"https://open.spotify.com/playlist/{playlist_id}",
            user_id=user_id,
            guild_id=None,
            channel_id=None,
        )
        try:
            handle = await self.queue.submit(request, progress)
            timing.outcome = await handle.result()
        except BaseException as exc:  # reported, not raised: one failure must not hide others
            timing.error = exc
        timing.finished = time.perf_counter()
        return timing


def worker_start_method() -> str:
    """How the JobQueue's CPU pool starts its workers."""
    try:
        from bot.jobs.pool import mp_context
    except ImportError:
        return "unknown"
    return mp_context().get_start_method()


def env_summary() -> dict[str, Any]:
    """Machine facts printed with every result (timings depend on them)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "loadavg_1m": round(load[0], 2),
        "start_method": worker_start_method(),
    }
