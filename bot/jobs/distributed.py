"""Jobs on procrastinate (PostgreSQL task queue) when storage is PostgreSQL.

Why procrastinate: the database is already PostgreSQL, so the queue needs no second server
(saq and taskiq need Redis); it is asyncio-native, keeps every job in a table (states, retries,
``queueing_lock`` against duplicates, ``lock`` so one job never runs twice at once) and its
workers send heartbeats, so a job whose worker was killed (``kill -9``) is found "stalled" and
retried. Procrastinate speaks psycopg 3; the storage keeps asyncpg (two pools to one database).

Split of work:

* **Bot processes** (:class:`DistributedQueue`, same ``submit``/``add_listener`` interface as
  :class:`bot.jobs.queue.JobQueue`): dedupe (an identical active job) and check the
  per-user/per-server limits in the database under transaction-scoped advisory locks, so two
  bot processes never create the same job twice nor both take a member's last slot; write the
  ``jobs`` row, and defer the procrastinate task.
  The handle follows the job's row (state → progress message, ``done`` → the stored analysis):
  progress reaches the Discord reply through the database, not through process memory.
* **Workers** (``python -m bot worker``, :func:`bot.worker_main.run_worker`): run the task,
  which runs the same :class:`bot.jobs.worker.StepRunner` as the embedded queue from the job's
  last committed checkpoint. A finished job is never run again (the row says ``done``), so a
  retried task after a kill answers once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from typing import TYPE_CHECKING, Any, cast

from bot.config import Settings
from bot.errors import PipelineError
from bot.jobs.queue import (
    MAX_ATTEMPTS,
    JobHandle,
    JobInterrupted,
    JobQueue,
    Listener,
    ProgressCallback,
    _safe,
    dedupe_key,
)
from bot.jobs.worker import JobOutcome
from bot.models import AnalysisRequest, Progress, Stage
from storage.jobs import ACTIVE_STATES, IN_ACTIVE
from storage.store import Store

if TYPE_CHECKING:
    from storage.postgres import PostgresDatabase

log = logging.getLogger(__name__)

TASK_NAME = "analyse"
QUEUE_NAME = "analyses"
# A bot process learns of each step from the worker's notification (PROGRESS_CHANNEL) at once;
# it also reads the rows of the jobs it waits for this often, in case a notification was lost
# (its listening connection dropped): a fallback, so it can be slow.
POLL_S = 2.0
STALLED_AFTER_S = 15.0  # a worker silent this long may be dead: its jobs are retried
HEARTBEAT_S = 3.0
# Workers publish progress (stage, tracks done of total) with NOTIFY on this channel: it goes
# through the database to every bot process, and the one following the job edits the reply.
PROGRESS_CHANNEL = "pc_job_progress"
COUNTS_EVERY_S = 0.5  # counts within one stage are published at most this often per job
# Session advisory lock (RUN_LOCK, job id) held by the worker running a job: the lock dies
# with the worker's connection (kill -9), so "held" means a live worker still runs it.
RUN_LOCK = zlib.crc32(b"playlist-clusters:job-run") & 0x7FFFFFFF
_ORDER = {s: i for i, s in enumerate((*ACTIVE_STATES, "done", "failed"))}

_MESSAGES = {
    "queued": "Queued",
    "fetching": "Reading the playlist…",
    "featurizing": "Gathering audio features…",
    "clustering": "Clustering…",
    "rendering": "Drawing the chart…",
}


class JobFailed(PipelineError):
    """A job that failed in a worker: its stored code and user message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.user_message = message


def make_app(url: str, worker: JobQueue | None = None) -> Any:
    """The procrastinate App on ``url`` (DATABASE_URL) with the analysis task registered;
    ``worker``: the queue whose step runner runs the task (worker processes only)."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name=TASK_NAME, queue=QUEUE_NAME)
    async def analyse(job_id: int) -> None:
        if worker is None:
            raise RuntimeError("analyses run in worker processes (python -m bot worker)")
        await _run_job(worker, job_id)

    return app


async def ensure_schema(app: Any, url: str) -> None:
    """Create procrastinate's tables once (under an advisory lock: many processes start).
    ``app`` must be open."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            row = await cur.fetchone()
            if not (row and row[0]):
                await app.schema_manager.apply_schema_async()
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


_SCHEMA_LOCK = zlib.crc32(b"playlist-clusters:procrastinate-schema")


# --- bot side --------------------------------------------------------------------------------
class DistributedQueue:
    """Submits analyses to procrastinate and follows them through the ``jobs`` table."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.url = settings.database_url_value or ""
        self.app = make_app(self.url)
        self._listeners: list[Listener] = []
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._futures: dict[int, asyncio.Future[JobOutcome]] = {}
        self._subscribers: dict[int, list[ProgressCallback]] = {}
        self._closing = False
        self._opened: Any = None
        self._wake: dict[int, asyncio.Event] = {}  # job id -> set by its notifications
        self._notified: dict[int, Progress] = {}  # job id -> its latest notified progress
        self._unlisten: Any = None
        self._submitting = asyncio.Lock()
        self._must_read: set[int] = set()  # jobs whose end was notified: read their row
        self._polled: dict[int, Any] = {}  # job id -> its row (None: gone) read by _poll
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the queue, and follow again the unfinished /cluster and link jobs of this
        process's shards (a restarted bot posts their results to their channel, as the
        embedded queue does; digest jobs are superseded by their next slot)."""
        self._opened = self.app.open_async()
        await self._opened.__aenter__()
        await ensure_schema(self.app, self.url)
        pg: PostgresDatabase = self.store.db  # type: ignore[assignment]  # Store types SQLite
        self._unlisten = await pg.listen(PROGRESS_CHANNEL, self._on_notification)
        self._poller = asyncio.create_task(self._poll(), name="distributed-jobs-poll")
        for job in await self.store.jobs.unfinished():
            if job.request.origin != "digest" and self._serves(job.guild_id):
                log.info("following job %d again (state %s)", job.id, job.state)
                self._watch(job.id, job.request)

    def _serves(self, guild_id: int | None) -> bool:
        """Whether this process runs the shard of ``guild_id`` (Discord's rule; DMs: 0)."""
        count = self.settings.shard_count
        ids = self.settings.shard_id_list
        if not count or ids is None:
            return True
        return ((guild_id or 0) >> 22) % count in ids

    async def _poll(self) -> None:
        """Every POLL_S, the rows of all the jobs this process follows in one query (was
        one per job: 600 of 700 reads in a bench run were of jobs waiting in the queue), in
        case a notification was lost; each follower is woken with its row."""
        while True:
            await asyncio.sleep(POLL_S)
            ids = sorted(self._wake)
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                try:
                    rows = await self.store.db.fetchall(
                        f"{_ROW_SQL} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                    )
                except Exception:
                    log.warning("reading the followed jobs failed", exc_info=True)
                    continue
                found = {int(r["id"]): r for r in rows}
                for job_id in chunk:
                    wake = self._wake.get(job_id)
                    if wake is not None:
                        self._polled[job_id] = found.get(job_id)
                        wake.set()

    def _on_notification(self, payload: str) -> None:
        """A worker's progress for some job: wake its follower if this process has one."""
        try:
            data = json.loads(payload)
            job_id = int(data["job"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable progress notification ignored")
            return
        wake = self._wake.get(job_id)
        if wake is None:
            return  # another process's job
        if data.get("stage") in _ORDER:
            self._notified[job_id] = Progress(
                cast(Stage, data["stage"]),
                done=data.get("done"),
                total=data.get("total"),
                message=data.get("message"),
            )
        else:  # the job ended: its row says how
            self._must_read.add(job_id)
        wake.set()

    async def close(self) -> None:
        self._closing = True
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        if self._unlisten is not None:
            await self._unlisten()
            self._unlisten = None
        if self._opened is not None:
            await self._opened.__aexit__(None, None, None)
            self._opened = None

    def add_listener(self, cb: Listener) -> None:
        self._listeners.append(cb)

    @property
    def active_job_ids(self) -> list[int]:
        return sorted(self._watchers)

    async def submit(
        self, request: AnalysisRequest, progress: ProgressCallback | None = None
    ) -> JobHandle:
        if self._closing:
            raise JobInterrupted()
        key = dedupe_key(request)
        shared = False
        pg: PostgresDatabase = self.store.db  # type: ignore[assignment]  # Store types SQLite
        # One submission at a time in this process: a submission waiting for a lock holds a
        # pooled connection, and the holder needs two more for the count and the insert, so
        # concurrent submissions to one server once took the whole pool and waited on each
        # other forever (25 at once per process in bench.scale; 20 passed). Each takes a few
        # milliseconds; other processes wait for the advisory locks in PostgreSQL.
        async with self._submitting, pg.transaction() as conn:
            # Transaction-scoped advisory locks (released at commit), always in this order:
            # one creator per dedupe key, and one limit check + insert at a time per member
            # and per server across every bot process. The count and the insert run on other
            # pooled connections and commit while the locks are held, so the next process to
            # get a lock counts this job.
            await conn.execute("SELECT pg_advisory_xact_lock(?)", (_key_lock(key),))
            for scope, value in (("user", request.user_id), ("guild", request.guild_id)):
                if value is not None:
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(?)", (_key_lock(f"{scope}:{value}"),)
                    )
            cur = await conn.fetchone(
                f"SELECT id FROM jobs WHERE dedupe_key = ? AND state {IN_ACTIVE}"
                " ORDER BY id LIMIT 1",
                (key, *ACTIVE_STATES),
            )
            if cur is not None:
                job_id, shared = int(cur["id"]), True
            else:
                await JobQueue._check_limits(self, request)  # type: ignore[arg-type]
                job_id = await self.store.jobs.create(key, request)
        if not shared:
            await (
                self.app.tasks[TASK_NAME]
                .configure(lock=f"job:{job_id}", queueing_lock=f"job:{job_id}")
                .defer_async(job_id=job_id)
            )
        if progress is not None:
            self._subscribers.setdefault(job_id, []).append(progress)
            await _safe(progress, Progress("queued", message="Queued"))
        return JobHandle(job_id, self._watch(job_id, request), shared=shared)

    def _watch(self, job_id: int, request: AnalysisRequest) -> asyncio.Future[JobOutcome]:
        future = self._futures.get(job_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._futures[job_id] = future
            self._watchers[job_id] = asyncio.create_task(
                self._follow(job_id, request, future), name=f"watch-job-{job_id}"
            )
        return future

    async def _follow(
        self, job_id: int, request: AnalysisRequest, future: asyncio.Future[JobOutcome]
    ) -> None:
        """Follow a job until its row says done or failed. A worker's notification of a
        stage (with its counts) is shown as it is; the row is read when the job's end is
        notified, and comes every POLL_S from :meth:`_poll` in case a notification was lost."""
        shown = event = Progress("queued")
        outcome: JobOutcome | None = None
        error: PipelineError | None = None
        wake = self._wake.setdefault(job_id, asyncio.Event())
        read = True
        try:
            while True:
                wake.clear()  # before the read: a notification after it wakes the next wait
                polled = job_id in self._polled
                if read or polled:
                    self._must_read.discard(job_id)
                    job = self._polled.pop(job_id, None)
                    if read or not polled:  # the end was notified: the row as it is now
                        job = await self.store.db.fetchone(f"{_ROW_SQL} WHERE id = ?", (job_id,))
                    if job is None:
                        error = JobFailed("job_lost", "This analysis was lost. Please ask again.")
                        break
                    if job["state"] == "done" and job["analysis_id"] is not None:
                        outcome = await self._outcome(job["analysis_id"])
                        await self._emit(job_id, Progress("done", message="Done"))
                        break
                    if job["state"] == "failed":
                        error = JobFailed(
                            job["error_code"] or "failed", job["error_message"] or "Failed."
                        )
                        await self._emit(job_id, Progress("failed", message=error.user_message))
                        break
                    if _ORDER[job["state"]] >= _ORDER[shown.stage]:  # rows lag notifications
                        event = Progress(cast(Stage, job["state"]), message=_message(job["state"]))
                # A notification as recent as the row wins: it adds the counts.
                notified = self._notified.pop(job_id, None)
                if notified is not None and _ORDER[notified.stage] >= _ORDER[event.stage]:
                    event = notified
                if (event.stage, event.done, event.total) != (shown.stage, shown.done, shown.total):
                    shown = event
                    await self._emit(job_id, event)
                await wake.wait()
                read = job_id in self._must_read
        except asyncio.CancelledError:
            if not future.done():
                future.set_exception(JobInterrupted())
            raise
        except PipelineError as exc:
            error = exc
        finally:
            self._watchers.pop(job_id, None)
            self._futures.pop(job_id, None)
            self._subscribers.pop(job_id, None)
            self._wake.pop(job_id, None)
            self._notified.pop(job_id, None)
            self._must_read.discard(job_id)
            self._polled.pop(job_id, None)
        if outcome is not None:
            future.set_result(outcome)
        elif error is not None:
            future.set_exception(error)
        for cb in list(self._listeners):
            try:
                await cb(job_id, request, outcome, error)
            except Exception:
                log.warning("job listener failed for job %d", job_id, exc_info=True)

    async def _outcome(self, analysis_id: int) -> JobOutcome:
        analysis = await self.store.analyses.get(analysis_id)
        rendered = await self.store.analyses.rendered(analysis_id)
        if analysis is None or rendered is None:
            raise JobFailed("job_lost", "The stored analysis is missing. Please ask again.")
        return JobOutcome(analysis_id, analysis, rendered)

    async def _emit(self, job_id: int, event: Progress) -> None:
        for cb in list(self._subscribers.get(job_id, [])):
            await _safe(cb, event)


_ROW_SQL = "SELECT id, state, analysis_id, error_code, error_message FROM jobs"


def _key_lock(key: str) -> int:
    return zlib.crc32(key.encode()) - 2**31


def _message(state: str) -> str:
    return _MESSAGES.get(state, state)


# --- worker side -----------------------------------------------------------------------------
async def _run_job(queue: JobQueue, job_id: int) -> None:
    """Run (or resume) one job from its last committed checkpoint; a finished one is skipped,
    and so is one that a live worker still runs (its run lock is held: a heartbeat that was
    late under load, not a dead worker)."""
    pg: PostgresDatabase = queue.store.db  # type: ignore[assignment]  # Store types SQLite
    async with pg.session_lock(RUN_LOCK, job_id) as mine:
        if not mine:
            log.warning("job %s is still running in a live worker: not run twice", job_id)
            return
        await _run_locked(queue, pg, job_id)


async def _run_locked(queue: JobQueue, pg: PostgresDatabase, job_id: int) -> None:
    store = queue.store
    job = await store.jobs.get(job_id)
    if job is None or job.state not in ACTIVE_STATES:
        log.info("job %s is already %s: nothing to do", job_id, job.state if job else "gone")
        return
    attempt = await store.jobs.start_attempt(job_id, seen=job.attempts)
    if attempt is None:  # another worker started it since we read it (compare-and-set)
        log.info("job %s was started by another worker", job_id)
        return
    if attempt > MAX_ATTEMPTS:
        await store.jobs.fail(job_id, "crashed", "This analysis kept crashing and was stopped.")
        await _publish(pg, job_id, None)
        return
    publisher = ProgressPublisher(pg, job_id)
    try:
        await queue.runner.run(job_id, job.request, job.checkpoint, publisher)
    except PipelineError as exc:
        log.info("job %d failed: %s", job_id, exc.code)
        await store.jobs.fail(job_id, exc.code, exc.user_message)
    finally:
        await _publish(pg, job_id, None)  # the row has its end state: read it now


class ProgressPublisher:
    """The runner's progress callback in a worker: each new stage at once, counts within a
    stage at most every COUNTS_EVERY_S, as a NOTIFY that the following bot process reads."""

    def __init__(self, pg: PostgresDatabase, job_id: int, clock: Any = time.monotonic) -> None:
        self.pg, self.job_id, self.clock = pg, job_id, clock
        self._stage: str | None = None
        self._at = 0.0

    async def __call__(self, event: Progress) -> None:
        now = self.clock()
        if event.stage == self._stage and now - self._at < COUNTS_EVERY_S:
            return
        self._stage, self._at = event.stage, now
        await _publish(self.pg, self.job_id, event)


async def _publish(pg: PostgresDatabase, job_id: int, event: Progress | None) -> None:
    data: dict[str, Any] = {"job": job_id}
    if event is not None:
        data.update(stage=event.stage, done=event.done, total=event.total)
    try:
        await pg.notify(PROGRESS_CHANNEL, json.dumps(data))
    except Exception:  # progress is advisory: the row still says how the job is
        log.debug("progress notification for job %d failed", job_id, exc_info=True)


async def retry_stalled(
    app: Any, stop: asyncio.Event, stalled_after_s: float, pg: PostgresDatabase | None = None
) -> None:
    """Jobs whose worker stopped sending heartbeats (killed) go back to the queue, unless
    their run lock (``pg``) shows the worker alive."""
    while not stop.is_set():
        with contextlib.suppress(Exception):
            for job in await app.job_manager.get_stalled_jobs(
                queue=QUEUE_NAME, seconds_since_heartbeat=stalled_after_s
            ):
                job_id = int(job.task_kwargs.get("job_id", 0))
                if pg is not None and job_id and await pg.lock_held(RUN_LOCK, job_id):
                    # Heartbeats late (a loaded machine) but the worker's connection lives:
                    # retrying would run the job twice (seen: 52 analyses for 50 jobs).
                    log.info("job %s: heartbeat late but its worker is alive", job.id)
                    continue
                log.warning("job %s stalled (its worker died): retrying", job.id)
                await app.job_manager.retry_job(job)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), stalled_after_s / 3)
