"""A scriptable stand-in for the pipeline steps, and a JobQueue builder, for the jobs tests.

The fake keeps the real steps' contracts (fetch_step calls ``reuse(meta)`` after its one
"metadata request"), counts calls, and can hold a step on an asyncio.Event or raise from it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bot import pipeline
from bot.config import Settings
from bot.jobs import JobQueue, cpu
from bot.models import (
    Analysis,
    AnalysisRequest,
    FeatureTable,
    FetchResult,
    Progress,
    ProgressCallback,
    Rendered,
)
from bot.pipeline import PipelineContext
from bot.sources.links import parse_spotify_link
from storage.db import Database
from storage.store import Store
from tests.storage_backends import database
from tests.storage_helpers import make_analysis, make_fetch, make_rendered

SAMPLE_CSV = Path(__file__).parent / "data" / "tidytuesday_sample.csv"


def sample_csv(rows: int = 150) -> str:
    """The first ``rows`` rows of the real TidyTuesday sample (a CSV the pipeline accepts)."""
    lines = SAMPLE_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(lines[: rows + 1])


def link(n: int) -> str:
    return f"https://open.spotify.com/playlist/{n:022d}"


class FakePipeline:
    def __init__(self, n_tracks: int = 10) -> None:
        self.n_tracks = n_tracks
        self.calls: Counter[str] = Counter()
        self.gates: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = {}
        self.errors: dict[str, BaseException] = {}
        self.snapshots: dict[str, str] = {}
        self.seen_max_tracks: list[int | None] = []

    def hold(self, step: str) -> asyncio.Event:
        """Make ``step`` wait until the returned event is set; see :meth:`reached`."""
        self.gates[step] = asyncio.Event()
        self.entered[step] = asyncio.Event()
        return self.gates[step]

    async def reached(self, step: str) -> None:
        await asyncio.wait_for(self.entered[step].wait(), 60)

    async def _step(self, step: str) -> None:
        self.calls[step] += 1
        if step in self.entered:
            self.entered[step].set()
        if step in self.gates:
            await self.gates[step].wait()
        if step in self.errors:
            raise self.errors[step]

    async def fetch_step(
        self,
        request: AnalysisRequest,
        ctx: PipelineContext,
        progress: ProgressCallback,
        *,
        reuse: Any = None,
        prefetch: Any = None,
    ) -> FetchResult:
        self.seen_max_tracks.append(request.max_tracks)
        await progress(Progress("fetching", 0, self.n_tracks))
        await self._step("fetch")
        pid = parse_spotify_link(request.link or "").id
        fetched = make_fetch(self.n_tracks, playlist_id=pid, snapshot=self.snapshots.get(pid, "s1"))
        self.calls["meta"] += 1
        if reuse is not None:
            stored = await reuse(fetched.meta)
            if stored is not None:
                return stored
        self.calls["items"] += 1
        await progress(Progress("fetching", self.n_tracks, self.n_tracks))
        return fetched

    async def featurize_step(
        self,
        fetched: FetchResult,
        ctx: PipelineContext,
        progress: ProgressCallback,
        *,
        prefetched: Any = None,
    ) -> FeatureTable:
        await self._step("featurize")
        table = FeatureTable()
        for i, t in enumerate(fetched.tracks):
            table.values[t.id] = {"energy": i / 10}
            table.sources[t.id] = "reccobeats"
        return table

    def cluster_step(
        self,
        fetched: FetchResult,
        features: FeatureTable,
        k: int | None,
        seed: int = 0,
        previous: dict[str, int] | None = None,
    ) -> Analysis:
        self.calls["cluster"] += 1
        if "cluster" in self.errors:
            raise self.errors["cluster"]
        return make_analysis(fetched, k or 3)

    def render_step(self, analysis: Analysis, part: str = "all") -> Rendered:
        """``calls["render"]`` counts analyses rendered: the job runner draws the "charts"
        and the "texts" of one analysis in two calls."""
        self.calls["render"] += part != "texts"
        self.calls[f"render:{part}"] += 1
        return make_rendered(analysis)

    def install(
        self,
        monkeypatch: pytest.MonkeyPatch,
        steps: tuple[str, ...] = ("fetch_step", "featurize_step", "cluster_step", "render_step"),
    ) -> FakePipeline:
        """Replace these pipeline steps by the fake ones (the others stay real)."""
        for name in steps:
            monkeypatch.setattr(step_module(name), name, getattr(self, name))
        return self


def step_module(name: str) -> ModuleType:
    """Where the job runner looks a step up: network steps in bot.pipeline, CPU ones in
    bot.jobs.cpu."""
    return cpu if name in ("cluster_step", "render_step") else pipeline


def job_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"worker_processes": 0, "spotify_client_id": None}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def open_queue(
    path: Path,
    settings: Settings | None = None,
    ctx: PipelineContext | None = None,
    *,
    listener: Any = None,
) -> tuple[Database, Store, JobQueue]:
    """Database + Store + started JobQueue; ``listener`` is added before start() resumes."""
    settings = settings or job_settings()
    db = await database(path).open()
    store = Store(db, feature_cache_days=settings.feature_cache_days)
    queue = JobQueue(store, ctx or PipelineContext(settings=settings), settings)
    if listener is not None:
        queue.add_listener(listener)
    await queue.start()
    return db, store, queue


class Recorder:
    """A progress callback and a job listener that remember what they got."""

    def __init__(self) -> None:
        self.events: list[Progress] = []
        self.ended: list[tuple[int, Any, Any]] = []
        self.ended_event = asyncio.Event()

    async def progress(self, event: Progress) -> None:
        self.events.append(event)

    async def listener(self, job_id: int, request: AnalysisRequest, outcome: Any, error: Any):
        self.ended.append((job_id, outcome, error))
        self.ended_event.set()

    @property
    def stages(self) -> list[str]:
        out: list[str] = []
        for e in self.events:
            if not out or out[-1] != e.stage:
                out.append(e.stage)
        return out
