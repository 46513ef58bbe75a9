"""The job queue: persisted jobs, dedupe, limits, progress fan-out, crash resume.

Every job is written to SQLite (state ``queued``, full request including CSV text) before
anything runs. Jobs run as asyncio tasks; network steps share a semaphore, CPU steps go to the
process pool. On start-up, jobs a previous process left unfinished are resumed from their last
committed step and their end is announced to listeners (nobody awaits them any more). A job
asked for by a slash command may carry the reply to finish (``JobRepository.attach_reply``, the
interaction token encrypted); the listener that attached it reads and drops it when the end is
announced (tokens of jobs that ended unannounced are dropped at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.errors import InvalidInput, LimitReached, PipelineError, new_incident_id
from bot.jobs.admission import Admission, queued_message
from bot.jobs.pool import CpuPool
from bot.jobs.worker import JobOutcome, StepRunner
from bot.models import AnalysisRequest, Progress, ProgressCallback
from bot.pipeline import PipelineContext, with_parsed_link
from bot.redact import redact
from storage.store import Store

log = logging.getLogger(__name__)

Listener = Callable[
    [int, AnalysisRequest, JobOutcome | None, PipelineError | None], Awaitable[None]
]

# A job started this many times without finishing (it keeps killing the process) is failed.
MAX_ATTEMPTS = 3
# A progress callback (e.g. a Discord message edit) that takes longer is abandoned.
PROGRESS_TIMEOUT_S = 15.0


class JobCrashed(PipelineError):
    """An unexpected error inside a job; details are in the log under ``incident_id``."""

    code = "internal"

    def __init__(self, incident_id: str) -> None:
        super().__init__(
            "Something went wrong while analysing this playlist (incident "
            f"{incident_id}). Please try again later; the bot's owner can look the incident "
            "up in the logs."
        )
        self.incident_id = incident_id


class JobInterrupted(PipelineError):
    """The bot shut down while the job ran; it resumes at the next start."""

    code = "interrupted"
    # Public on purpose: it promises the result here, where the resumed job finishes the reply
    # (its token still valid) or posts to the channel.
    ephemeral = False

    def __init__(self) -> None:
        super().__init__(
            "The bot is restarting. This analysis will continue when it is back, and the "
            "result will replace this message (or be posted in this channel)."
        )


class JobHandle:
    """What :meth:`JobQueue.submit` returns. ``shared``: joined an identical running job."""

    def __init__(self, job_id: int, future: asyncio.Future[JobOutcome], shared: bool) -> None:
        self.job_id = job_id
        self.shared = shared
        self._future = future

    async def result(self) -> JobOutcome:
        """Wait for the job; raises its PipelineError when it failed."""
        return await asyncio.shield(self._future)

    def done(self) -> bool:
        return self._future.done()


@dataclass
class _Running:
    job_id: int
    request: AnalysisRequest
    dedupe_key: str
    future: asyncio.Future[JobOutcome]
    subscribers: list[ProgressCallback] = field(default_factory=list)
    last: Progress | None = None
    task: asyncio.Task[Any] | None = None
    outbox: list[Progress] = field(default_factory=list)
    courier: asyncio.Task[None] | None = None

    async def emit(self, event: Progress) -> None:
        """Send a progress event (tagged with the job id) to everyone sharing the job.

        Returns at once: one task per job delivers the events in order, so the job never
        waits for a message edit. It used to, at each stage (a Discord edit is ~0.1-0.3 s,
        up to ``PROGRESS_TIMEOUT_S`` when stuck), on the job's critical path: before the
        first request, between clustering and rendering. :meth:`drain` waits for them.
        """
        event = dataclasses.replace(event, job_id=self.job_id)
        self.last = event
        self.outbox.append(event)
        if self.courier is None or self.courier.done():
            self.courier = asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        while self.outbox:
            event = self.outbox.pop(0)
            for cb in list(self.subscribers):
                try:
                    await asyncio.wait_for(cb(event), PROGRESS_TIMEOUT_S)
                except Exception:  # a failed or stuck message edit must not fail the job
                    log.warning("progress callback failed for job %d", self.job_id, exc_info=True)

    async def drain(self) -> None:
        """Wait until every event emitted so far has been delivered (at the job's end, so
        the last progress edit never lands after the result)."""
        while self.courier is not None and not self.courier.done():
            await asyncio.shield(self.courier)


def source_key(request: AnalysisRequest) -> str:
    """Identity of the requested source, for dedupe. Raises InvalidLink/InvalidInput."""
    if request.csv_text is not None:
        digest = hashlib.sha1(request.csv_text.encode("utf-8")).hexdigest()[:16]
        # An upload is its uploader's: identical files of two members are two jobs.
        return f"csv:u{request.user_id}:{digest}"
    if request.demo:
        return "demo"
    if request.liked:
        return f"liked:{request.user_id}"
    if request.link:
        ref = with_parsed_link(request).ref
        if ref is None:  # a short link: followed when the job runs (pipeline)
            return f"short:{request.link.strip().strip('<>')}"
        return f"{ref.kind}:{ref.id}"
    raise InvalidInput(
        "Nothing to analyse: give a Spotify playlist or album link, attach an Exportify CSV, "
        "or ask for your Liked Songs."
    )


def dedupe_key(request: AnalysisRequest) -> str:
    params = request.params_key()
    return f"{source_key(request)}|{params}|max={request.max_tracks or ''}"


class JobQueue:
    """Submit analyses, share identical ones, enforce limits, resume after a crash."""

    def __init__(
        self,
        store: Store,
        ctx: PipelineContext,
        settings: Settings,
        *,
        network_concurrency: int | None = None,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.settings = settings
        if ctx.feature_cache is None:
            ctx.feature_cache = store.features  # features are cached across playlists
        self.pool = CpuPool(
            settings.worker_processes,
            executor=ctx.executor,
            step_timeout_s=settings.cpu_step_timeout_s,
        )
        # Jobs reading from Spotify/ReccoBeats at once; by default every admitted job. The
        # services' own slots (8 requests each, a read takes at most its share) are the real
        # bound; with 4 here the 5th of 5 concurrent 1,000-track jobs started 1.4 s late
        # (bench.parallel_jobs), with every admitted job it starts at once.
        if network_concurrency is None:
            network_concurrency = settings.max_jobs_total or 8
        self._network = asyncio.Semaphore(max(1, network_concurrency))
        self.admission = Admission(settings.max_jobs_total)  # jobs in flight, all servers
        self._running: dict[int, _Running] = {}
        self._by_key: dict[str, _Running] = {}
        self._listeners: list[Listener] = []
        self._submit_lock = asyncio.Lock()
        self._started = False
        self._closing = False
        self._warm_task: asyncio.Task[None] | None = None
        self.runner = StepRunner(store, ctx, settings, self.pool, self._network, self._after_commit)

    # --- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Warm the process pool and resume the jobs a previous process left unfinished."""
        if self._started:
            return
        self._started = True
        try:
            pruned = await self.store.prune()
            # Interaction tokens of jobs that ended unannounced (killed in between): not kept.
            pruned["replies"] = await self.store.jobs.drop_finished_replies()
            log.info("storage pruned: %s", pruned)
        except PipelineError:
            log.warning("could not prune old snapshots and jobs", exc_info=True)
        # Warm the pool in the background: start-up (and Discord login) need not wait for it;
        # CPU steps submitted meanwhile simply queue in the executor.
        self._warm_task = asyncio.create_task(self.pool.start(), name="cpu-pool-warm-up")
        self._warm_task.add_done_callback(_log_warm_up_failure)
        for job in await self.store.jobs.unfinished():
            if job.id in self._running:
                continue
            log.info("resuming job %d from state %s", job.id, job.state)
            running = self._track(job.id, job.request, job.dedupe_key)
            running.task = asyncio.create_task(
                self._run(running, job.checkpoint, job.attempts), name=f"job-{job.id}"
            )

    async def close(self) -> None:
        """Stop running jobs (they stay in their state and resume at the next start)."""
        self._closing = True
        tasks = [r.task for r in self._running.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        if self._warm_task is not None:
            tasks.append(self._warm_task)
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pool.close()

    async def __aenter__(self) -> JobQueue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def add_listener(self, cb: Listener) -> None:
        """``cb(job_id, request, outcome, error)`` runs when any job ends (resumed ones too)."""
        self._listeners.append(cb)

    @property
    def active_job_ids(self) -> list[int]:
        return sorted(self._running)

    # --- submit ---------------------------------------------------------------------------
    async def submit(
        self, request: AnalysisRequest, progress: ProgressCallback | None = None
    ) -> JobHandle:
        """Queue an analysis, or join the identical one already running.

        Raises LimitReached when the user or the server has too many jobs running, and
        InvalidLink for a link that is not a Spotify playlist/album.
        """
        if self._closing:
            raise JobInterrupted()
        request = with_parsed_link(request)  # parsed once, carried to the fetch step
        key = dedupe_key(request) + await self._reader_key(request)
        async with self._submit_lock:
            running = self._by_key.get(key)
            if running is not None and not running.future.done():
                if progress is not None:
                    running.subscribers.append(progress)
                    if running.last is not None:
                        await _safe(progress, running.last)
                return JobHandle(running.job_id, running.future, shared=True)
            await self._check_limits(request)
            job_id = await self.store.jobs.create(key, request)
            running = self._track(job_id, request, key)
            if progress is not None:
                running.subscribers.append(progress)
        await running.emit(Progress("queued", message="Queued"))
        running.task = asyncio.create_task(self._run(running, {}), name=f"job-{job_id}")
        return JobHandle(job_id, running.future, shared=False)

    async def _reader_key(self, request: AnalysisRequest) -> str:
        """Whose Spotify access reads a link: the requester's linked account, or the app.

        Part of the dedupe key, so a request never joins a job that reads a private playlist
        with somebody else's token.
        """
        if not request.link or self.ctx.user_tokens is None or request.user_id is None:
            return ""
        try:
            token = await self.ctx.user_tokens(request.user_id)
        except PipelineError:  # e.g. storage trouble: keep this member's job to themselves
            return f"|as={request.user_id}"
        return f"|as={request.user_id}" if token else ""

    async def _check_limits(self, request: AnalysisRequest) -> None:
        per_user = self.settings.max_jobs_per_user
        if request.user_id is not None and per_user > 0:
            n = await self.store.jobs.count_active(user_id=request.user_id)
            if n >= per_user:
                raise LimitReached(
                    f"You already have {n} analyses running (the limit is {per_user}). "
                    "Wait for one to finish, then try again."
                )
        per_guild = self.settings.max_jobs_per_guild
        if request.guild_id is not None and per_guild > 0:
            n = await self.store.jobs.count_active(guild_id=request.guild_id)
            if n >= per_guild:
                raise LimitReached(
                    f"This server already has {n} analyses running (the limit is "
                    f"{per_guild}). Try again when one has finished."
                )

    def _track(self, job_id: int, request: AnalysisRequest, key: str) -> _Running:
        future: asyncio.Future[JobOutcome] = asyncio.get_running_loop().create_future()
        # Resumed jobs often have no waiter: mark exceptions retrieved to keep logs clean.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        running = _Running(job_id, request, key, future)
        self._running[job_id] = running
        self._by_key[key] = running
        return running

    # --- running --------------------------------------------------------------------------
    async def _run(self, running: _Running, checkpoint: dict[str, Any], attempts: int = 0) -> None:
        """Run a job once admitted (``attempts``: its count when this process took it)."""
        job_id = running.job_id
        outcome: JobOutcome | None = None
        error: PipelineError | None = None

        async def in_line(ahead: int) -> None:
            await running.emit(Progress("queued", message=queued_message(ahead)))

        try:
            async with self.admission.slot(in_line):
                attempt = await self.store.jobs.start_attempt(job_id, seen=attempts)
                if attempt is None:
                    raise _ClaimedElsewhere
                if attempt > MAX_ATTEMPTS:
                    raise _GaveUp(attempt)
                outcome = await self.runner.run(job_id, running.request, checkpoint, running.emit)
        except _ClaimedElsewhere:
            log.warning("job %d was started by another process; leaving it to that one", job_id)
            self._forget(running)
            if not running.future.done():
                running.future.set_exception(JobInterrupted())
            return
        except asyncio.CancelledError:
            self._forget(running)
            if not running.future.done():
                running.future.set_exception(JobInterrupted())
            raise
        except _GaveUp as exc:
            incident = new_incident_id()
            log.error("job %d gave up after %d starts (incident %s)", job_id, exc.n, incident)
            error = JobCrashed(incident)
        except PipelineError as exc:
            log.info("job %d failed: %s", job_id, exc.code)
            error = exc
        except Exception as exc:
            incident = new_incident_id()
            log.error(
                "job %d failed unexpectedly (incident %s):\n%s",
                job_id,
                incident,
                redacted_traceback(exc),
            )
            error = JobCrashed(incident)
        if error is not None:
            try:
                await self.store.jobs.fail(job_id, error.code, error.user_message)
            except PipelineError:
                log.error("could not record the failure of job %d", job_id, exc_info=True)
        self._forget(running)
        if outcome is not None:
            await running.emit(Progress("done", message="Done"))
            await running.drain()
            running.future.set_result(outcome)
        else:
            assert error is not None
            await running.emit(Progress("failed", message=error.user_message))
            await running.drain()
            running.future.set_exception(error)
        await self._notify(job_id, running.request, outcome, error)

    def _forget(self, running: _Running) -> None:
        self._running.pop(running.job_id, None)
        if self._by_key.get(running.dedupe_key) is running:
            del self._by_key[running.dedupe_key]

    async def _notify(
        self,
        job_id: int,
        request: AnalysisRequest,
        outcome: JobOutcome | None,
        error: PipelineError | None,
    ) -> None:
        for cb in list(self._listeners):
            try:
                await cb(job_id, request, outcome, error)
            except Exception:
                log.warning("job listener failed for job %d", job_id, exc_info=True)

    async def _after_commit(self, job_id: int, state: str, checkpoint: dict[str, Any]) -> None:
        """Called after each committed step. A seam for tests (crash injection)."""


class _ClaimedElsewhere(Exception):
    """The compare-and-set claim of a job failed: another process runs it."""


class _GaveUp(Exception):
    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.n = n


def _log_warm_up_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("CPU pool warm-up failed", exc_info=task.exception())


def redacted_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` with bearer tokens and secret-looking values blanked."""
    return redact("".join(traceback.format_exception(exc)))


async def _safe(cb: ProgressCallback, event: Progress) -> None:
    with contextlib.suppress(Exception):
        await cb(event)
