"""Runs one job's steps with a committed checkpoint after each, so a crash resumes mid-way.

States: queued → fetching → featurizing → clustering → rendering → done | failed. The state
is the step being run; ``checkpoint_json`` holds the outputs of the finished ones:

* ``fetch``: ``{"playlist_id", "snapshot"}`` — the entries are in ``playlist_tracks``
  (Store.snapshots.save), so resuming reads them back with no network call;
* ``features``: the FeatureTable (CSV values included, which the feature cache does not hold);
* ``analysis_z``: the clustered Analysis (then rendering only needs it), its stored text
  (``bot.codecs.parts_text``) compressed by ``bot.codecs.compress_text``; checkpoints of
  older versions hold it as ``analysis`` (its parts, or one ``to_dict()`` object): all read.

The final step stores the analysis and marks the job done in one transaction.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import dataclasses
import functools
import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from bot import codecs, pipeline
from bot.config import Settings
from bot.errors import PipelineError
from bot.features.prefetch import FeaturePrefetch, start_prefetch
from bot.jobs import cpu
from bot.jobs.pool import CpuPool
from bot.models import (
    AUDIO_FEATURES,
    Analysis,
    AnalysisRequest,
    FeatureTable,
    FetchResult,
    PlaylistMeta,
    Progress,
    ProgressCallback,
    Rendered,
)
from bot.pipeline import PipelineContext, Reused, ReuseLookup
from bot.safety import reader_may_reuse, user_reader
from storage.store import Store

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

# Sources whose id is a hash of their content (same id, same entries) even without a
# snapshot id. Other sources are reused only when they carry a snapshot id (playlists, albums,
# the versioned demo); Liked Songs never are.
CONTENT_ADDRESSED_KINDS = ("csv",)

CommitHook = Callable[[int, str, dict[str, Any]], Awaitable[None]]


@dataclass
class JobOutcome:
    """A finished job: the stored analysis, its rendered files, and whether it was reused."""

    analysis_id: int
    analysis: Analysis
    rendered: Rendered
    reused: bool = False


class _GcFreeze:
    """Keeps a job's big, long-lived data out of the garbage collector's full collections.

    A full (generation 2) collection walks every tracked object holding the GIL: with a
    10,000-track job's fetched tracks and features alive (hundreds of thousands of objects)
    each one stalled the event loop 50-90 ms. ``freeze()`` after each loaded step moves what
    is alive into the permanent generation, so later collections walk only newer objects.
    Frozen objects are still freed by reference counting; only cyclic garbage among them
    waits until the last running job ends, when everything is unfrozen (collectable again).
    """

    def __init__(self) -> None:
        self.active = 0

    def enter(self) -> None:
        self.active += 1

    def freeze(self) -> None:
        if self.active:
            gc.freeze()

    def exit(self) -> None:
        self.active -= 1
        if self.active == 0:
            gc.unfreeze()


_gc = _GcFreeze()

# glibc's mallopt() parameter (malloc.h) and the size from which blocks get their own mapping.
_M_MMAP_THRESHOLD = -3
BIG_BLOCK = 256 * 1024


def return_big_blocks_to_the_os() -> bool:
    """Have glibc's malloc give blocks of ``BIG_BLOCK`` bytes or more their own mapping,
    always, so each one goes back to the system when freed. Returns whether it applied
    (glibc only; elsewhere nothing changes).

    A job makes several short-lived texts of megabytes: the analysis' JSON for the checkpoint
    and for storage (~7 MB each at 10,000 tracks) and SQLite's copies of them. glibc raises
    its mapping threshold to the size of each big block freed (up to 32 MB), so from the
    second on they came from the heap, whose freed memory the process keeps: the bot's peak
    RSS grew with every copy (10k bench: ~12 MB less with a fixed threshold). Costs a mapping
    and its page faults per big block: nothing next to encoding or writing it.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, BIG_BLOCK))


def _freezing(progress: ProgressCallback) -> ProgressCallback:
    """``progress`` that first freezes what is alive (see :class:`_GcFreeze`).

    Progress comes with each page of items and each batch of features: the job's tracks and
    features are frozen as they arrive. Frozen only after the fetch step, a 10,000-track
    playlist's pages (~150,000 tracked objects by then) were walked by full collections
    during the fetch: 75-130 ms event-loop stalls. ``gc.freeze()`` itself costs ~nothing.
    """

    async def frozen_then(event: Progress) -> None:
        _gc.freeze()
        await progress(event)

    return frozen_then


def _gc_held(job: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """``job`` runs between ``_gc.enter()`` and ``_gc.exit()`` (see :class:`_GcFreeze`)."""

    @functools.wraps(job)
    async def held(*args: P.args, **kwargs: P.kwargs) -> T:
        _gc.enter()
        try:
            return await job(*args, **kwargs)
        finally:
            _gc.exit()

    return held


def _checkpointed_analysis(cp: dict[str, Any]) -> Analysis:
    """The analysis a "rendering" checkpoint holds (taken out of ``cp``): compressed
    (``analysis_z``, :func:`bot.codecs.compress_text`) or, written by older versions, as it is."""
    if "analysis_z" in cp:
        return codecs.decode_text(codecs.decompress_text(cp.pop("analysis_z")))
    return Analysis.from_dict(cp.pop("analysis"))


class StepRunner:
    """Executes the pipeline steps for a job (shared by every job of a JobQueue)."""

    def __init__(
        self,
        store: Store,
        ctx: PipelineContext,
        settings: Settings,
        pool: CpuPool,
        network: asyncio.Semaphore,
        on_commit: CommitHook,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.settings = settings
        self.pool = pool
        self.network = network
        self.on_commit = on_commit
        return_big_blocks_to_the_os()  # this process holds the jobs' big texts

    async def _commit(self, job_id: int, state: str, cp: dict[str, Any]) -> None:
        await self.store.jobs.set_state(job_id, state, cp)
        await self.on_commit(job_id, state, cp)

    @_gc_held
    async def run(
        self,
        job_id: int,
        request: AnalysisRequest,
        checkpoint: dict[str, Any],
        progress: ProgressCallback,
    ) -> JobOutcome:
        """Run the steps not yet in ``checkpoint``; each one is committed before the next."""
        req = dataclasses.replace(
            request, max_tracks=request.max_tracks or self.settings.max_playlist_tracks
        )
        pkey = req.params_key()
        cp = dict(checkpoint)
        if "analysis_z" in cp or "analysis" in cp:  # resumed in "rendering": only that is left
            analysis = await asyncio.to_thread(_checkpointed_analysis, cp)
            packed = await asyncio.to_thread(cpu.pack, analysis)
            render = self._render_phase(job_id, req, pkey, packed, progress, analysis=analysis)
        else:
            got = await self._cluster_phase(job_id, req, pkey, cp, _freezing(progress))
            if isinstance(got, int):
                return await self._reused(job_id, got)
            packed = got
            del got
            fetch_ref = cp.get("fetch")
            render = self._render_phase(job_id, req, pkey, packed, progress, fetch_ref=fetch_ref)
        # Only the render phase holds the packed analysis: it lets go of it once drawn (5.5 MB
        # at 10,000 tracks, which this frame kept until the job's end, through storing it).
        del packed
        return await render

    async def _cluster_phase(
        self,
        job_id: int,
        req: AnalysisRequest,
        pkey: str,
        cp: dict[str, Any],
        progress: ProgressCallback,
    ) -> cpu.PackedAnalysis | int:
        """Fetch, featurize and cluster (each step committed); the packed analysis, or the id
        of a stored one to reuse.

        The job's tracks and features live only in this call: once they are pickled for the
        worker process the bot process lets them go (a 10,000-track job's ~40 MB of objects
        used to stay until the reply was sent; the bot's peak RSS was ~320 MB).
        """
        fetched = await self._load_fetch(cp)
        prefetch: FeaturePrefetch | None = None
        if fetched is None:
            # Features are asked for as the pages arrive (issue #16); only the features
            # checkpoint (after the featurize step) records them, as before.
            prefetch = start_prefetch(self.ctx.reccobeats, self.ctx.spotify, self.ctx.feature_cache)
            try:
                got = await self._fetch_phase(job_id, req, pkey, cp, progress, prefetch)
            except BaseException:
                if prefetch is not None:
                    prefetch.cancel()
                raise
            if isinstance(got, int):
                if prefetch is not None:
                    prefetch.cancel()
                return got
            fetched = got
            del got  # else it kept the tracks alive through clustering (~8 MB at 10,000)
        _gc.freeze()  # the tracks live until they are handed to the worker process
        try:
            features = await self._featurize_phase(job_id, fetched, cp, progress, prefetch)
        finally:
            if prefetch is not None:
                prefetch.cancel()  # no-op when collected; a failed step leaves none running
        del prefetch  # its answers are in ``features`` now
        _gc.freeze()  # and so do the features
        await progress(Progress("clustering", message="Clustering"))
        inputs = await asyncio.to_thread(cpu.pickle_inputs, fetched, features)
        del fetched, features
        cp.pop("features", None)  # its dict form, for the checkpoint (committed already)
        return await self.pool.run(cpu.cluster_pickled_step, *inputs, req.k, req.previous_clusters)

    async def _render_phase(
        self,
        job_id: int,
        req: AnalysisRequest,
        pkey: str,
        packed: cpu.PackedAnalysis,
        progress: ProgressCallback,
        *,
        analysis: Analysis | None = None,
        fetch_ref: dict[str, Any] | None = None,
    ) -> JobOutcome:
        """Draw the charts and the texts in two workers at once, meanwhile unpack the analysis
        here (in a thread, piece by piece) and commit the "rendering" checkpoint (skipped when
        ``analysis`` is given: the job resumed from it); then store everything, done.

        The texts' worker also JSON-encodes the analysis for storage, so this process encodes
        nothing big: at 10,000 tracks the steps after clustering went from ~1.7 s one after
        another (encode, decode, commit, render, store) to ~0.8 s. It hands it over compressed
        (``squeezed``, :func:`bot.codecs.compress_text`: 3.4 MB instead of 8.25 at 10,000
        tracks), as the checkpoint holds it, and it is decompressed only to be stored: taking
        the text itself made an 8 MB pickle and its 8 MB copy here at the bot's peak, then
        held the text through the commit.
        """
        await progress(Progress("rendering", message="Drawing the chart"))
        charts = asyncio.ensure_future(self.pool.run(cpu.render_packed_step, packed, "charts"))
        texts = asyncio.ensure_future(self.pool.run(cpu.render_packed_step, packed, "texts"))
        tasks: list[asyncio.Future[Any]] = [charts, texts]
        try:
            resumed = analysis is not None
            if analysis is None:
                analysis = await asyncio.to_thread(cpu.unpack, packed, on_part=_gc.freeze)
            del packed
            drawn_texts, squeezed = await texts
            # The pool's feeder thread keeps the last call it sent (multiprocessing's
            # Queue._feed holds it until the next one): the texts call, 5.8 MB of pickled
            # analysis at 10,000 tracks, held through storing. A tiny call replaces it.
            sent = asyncio.ensure_future(self.pool.run(cpu.nothing))
            tasks.append(sent)
            if not resumed:
                cp = {"fetch": fetch_ref, "analysis_z": squeezed}
                await self._commit(job_id, "rendering", cp)
                del cp
            # Decompressed (~50 ms at 10,000 tracks) while the charts are still being drawn.
            unsqueezed = asyncio.ensure_future(asyncio.to_thread(codecs.decompress_text, squeezed))
            tasks.append(unsqueezed)
            drawn_charts, _ = await charts
            await sent
            text = await unsqueezed
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        rendered = cpu.merge_rendered(drawn_charts, drawn_texts)
        del tasks, texts, unsqueezed, squeezed  # the tasks hold the texts too
        analysis_id = await self.store.analyses.save(
            analysis, rendered, req, params_key=pkey, job_id=job_id, result_text=text
        )
        await self.on_commit(job_id, "done", {})
        return JobOutcome(analysis_id, analysis, rendered, reused=False)

    async def _fetch_phase(
        self,
        job_id: int,
        req: AnalysisRequest,
        pkey: str,
        cp: dict[str, Any],
        progress: ProgressCallback,
        prefetch: FeaturePrefetch | None = None,
    ) -> FetchResult | int:
        """Fetch (or take the stored entries of an unchanged snapshot) and commit them.

        Returns the id of the stored analysis instead when this content was already analysed
        with these parameters.
        """
        await self._commit(job_id, "fetching", cp)
        readers: list[str] = []
        async with self.network:
            lookup = self._lookup(req, pkey, readers)
            got = await pipeline.fetch_step(
                req, self.ctx, progress, reuse=lookup, prefetch=prefetch
            )
        if isinstance(got, Reused) and got.analysis_id is not None:
            return got.analysis_id
        fetched = got.stored if isinstance(got, Reused) else got
        assert fetched is not None  # a Reused holds an analysis id or the stored entries
        _gc.freeze()  # the fetched tracks live until the job ends
        meta = fetched.meta
        if readers and meta.snapshot_id and not isinstance(got, Reused):
            # A fresh read of the items: this reader may be served the snapshot again.
            await self.store.readers.add(meta.id, meta.snapshot_id, readers[-1])
        if meta.snapshot_id or meta.kind in CONTENT_ADDRESSED_KINDS:
            found = await self._find_reusable(meta, pkey)
            if found is not None:
                return found
        if isinstance(got, Reused) and meta.snapshot_id:
            key = meta.snapshot_id  # already in storage, unchanged
        else:
            key = await self.store.snapshots.save(fetched)
        cp["fetch"] = {"playlist_id": meta.id, "snapshot": key}
        await self._commit(job_id, "featurizing", cp)
        return fetched

    async def _featurize_phase(
        self,
        job_id: int,
        fetched: FetchResult,
        cp: dict[str, Any],
        progress: ProgressCallback,
        prefetch: FeaturePrefetch | None = None,
    ) -> FeatureTable:
        if "features" in cp:
            return FeatureTable.from_dict(cp["features"])
        async with self.network:
            features = await pipeline.featurize_step(
                fetched, self.ctx, progress, prefetched=prefetch
            )
        cp["features"] = features.to_dict()
        await self._commit(job_id, "clustering", cp)
        return features

    async def _load_fetch(self, cp: dict[str, Any]) -> FetchResult | None:
        ref = cp.get("fetch")
        if not ref:
            return None
        return await self.store.snapshots.load(ref["playlist_id"], ref["snapshot"])

    def _lookup(self, req: AnalysisRequest, pkey: str, readers: list[str]) -> ReuseLookup:
        """The fetch step's ``reuse``: for an unchanged snapshot, the stored analysis with
        these parameters, else the stored entries — only for a requester who could read it
        now (the same reader, or it was read publicly); anyone else reads the items
        themselves (and is refused if they can't). ``readers`` gets who is reading."""

        async def lookup(meta: PlaylistMeta) -> Reused | None:
            if not meta.snapshot_id:
                return None
            reader = await self._reader(req)
            readers.append(reader)
            if not reader_may_reuse(await self.store.readers.of(meta.id, meta.snapshot_id), reader):
                return None
            found = await self._find_reusable(meta, pkey)
            if found is not None:
                return Reused(meta, analysis_id=found)
            loaded = await self.store.snapshots.load(meta.id, meta.snapshot_id)
            return Reused(meta, stored=loaded) if loaded is not None else None

        return lookup

    async def _find_reusable(self, meta: PlaylistMeta, pkey: str) -> int | None:
        """The stored analysis of this content with these parameters, unless its feature
        coverage could be better now.

        An analysis made while ReccoBeats (or Spotify's audio-features) was down has tracks
        with metadata only; reusing it as "unchanged" kept them so after the outage ended.
        It is reused only when every track it lacked features for is known to have none
        (the providers said so and the feature cache remembers); otherwise the snapshot is
        analysed again, asking only for the tracks that lacked features.
        """
        found = await self.store.analyses.find(meta.id, meta.snapshot_id, pkey)
        if found is None or not (await self.store.analyses.coverage(found)).get("metadata"):
            return found
        analysis = await self.store.analyses.get(found, on_part=_gc.freeze)
        if analysis is None:  # pragma: no cover - deleted meanwhile
            return None
        lacking = [
            t.id
            for t in analysis.tracks
            if not set(AUDIO_FEATURES) <= set(analysis.features.get(t.id, {}))
        ]
        cache = self.ctx.feature_cache
        providers = []
        if self.ctx.spotify is not None and self.ctx.spotify.audio_features_available:
            providers.append("spotify")
        if self.ctx.reccobeats is not None:
            providers.append("reccobeats")
        for source in providers:
            known = await cache.get_many(source, lacking) if cache is not None else {}
            if len(known) < len(lacking):
                log.info(
                    "not reusing analysis %d: %d of its %d tracks without features were never "
                    "answered by %s (an outage?); asking again",
                    found,
                    len(lacking) - len(known),
                    len(lacking),
                    source,
                )
                return None
        return found

    async def _reader(self, req: AnalysisRequest) -> str:
        """Who reads a link for ``req``: the requester's linked account when they have a
        token (the pipeline reads with it), else the app (see :mod:`bot.safety`)."""
        if req.user_id is None or self.ctx.user_tokens is None:
            return "app"
        try:
            token = await self.ctx.user_tokens(req.user_id)
        except PipelineError:  # e.g. the link must be renewed: no stored read is theirs
            return user_reader(req.user_id)
        return user_reader(req.user_id) if token else "app"

    async def _reused(self, job_id: int, analysis_id: int) -> JobOutcome:
        analysis = await self.store.analyses.get(analysis_id, on_part=_gc.freeze)
        rendered = await self.store.analyses.rendered(analysis_id)
        if analysis is None or rendered is None:  # pragma: no cover - deleted meanwhile
            raise RuntimeError(f"stored analysis {analysis_id} is incomplete")
        await self.store.jobs.finish(job_id, analysis_id)
        await self.on_commit(job_id, "done", {})
        return JobOutcome(analysis_id, analysis, rendered, reused=True)
