"""The digest scheduler: runs due digests in the background and serves the /digest commands.

Missed slots (bot down) run once when the bot is back, not once per miss: a run claims the
subscription by moving ``next_run_at`` to the first slot after *now* before doing any work.

Errors: a playlist that became unreadable (:data:`PAUSE_ERRORS`), a channel that vanished
(:class:`bot.digests.messages.DestinationGone`, raised by the poster) or a creator who left the
server (:class:`bot.digests.messages.CreatorGone`, raised by the creator check before the
playlist is read with their account) pauses the subscription and reports it once to the
guild; transient errors (rate limits, Spotify outages) are retried after Spotify's Retry-After
or within the hour, never later than the next slot; a full job queue for the subscriber
(LimitReached) retries five minutes later; a playlist that is empty or too small to cluster is
said once in the channel and retried at each slot.

Why one module of ~550 lines: the loop, the compare-and-set claim, a run and its pause/retry
handling, and the /digest command back end (subscribe, resume, run now) all act on the same
subscription row and the same in-flight run map; split apart, each half would have to reach
into the other's state. Pure parts live beside it (schedule, changes, messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.digests.changes import DigestChanges, summarize_changes
from bot.digests.messages import (
    CreatorCheck,
    CreatorGone,
    DestinationGone,
    DigestMessage,
    Poster,
    RunResult,
    public_reason,
)
from bot.digests.schedule import DigestError, Schedule
from bot.errors import (
    AppAuthError,
    AuthError,
    EditorialPlaylist,
    InvalidLink,
    LimitReached,
    NotFound,
    NotOwner,
    PipelineError,
    RateLimited,
    SpotifyUnavailable,
    StorageError,
    TooLarge,
    member_message,
)
from bot.models import Analysis, AnalysisRequest
from storage.db import Database
from storage.digests import DigestStore, Subscription, iso, parse_iso
from storage.store import Store

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS_PER_GUILD = 25
# Longest single sleep of the loop: re-checks the table at least this often, so a changed
# system clock (suspend/resume, NTP step) is noticed within the hour.
MAX_SLEEP_S = 3600.0

# Errors that will not fix themselves by waiting: pause the subscription and tell the guild.
# (RelinkRequired is an AuthError: the subscriber's Spotify link expired.)
PAUSE_ERRORS: tuple[type[PipelineError], ...] = (
    NotOwner,
    NotFound,
    EditorialPlaylist,
    AuthError,
    InvalidLink,
    TooLarge,
)
# The bot's own problem (its Spotify app credentials missing or rejected): every digest would
# fail alike, so none is paused; retried hourly and logged for the operator until fixed.
BOT_WIDE_ERRORS: tuple[type[PipelineError], ...] = (AppAuthError,)
RETRY_BOT_WIDE_S = 3600.0
# Errors that are nobody's fault and usually pass: retried quietly once the wait Spotify asked
# for (a quota's Retry-After can be hours) has passed, else within the hour, never later than
# the next slot. Waiting for the next slot cost a weekly digest its week over a short outage.
TRANSIENT_ERRORS: tuple[type[PipelineError], ...] = (
    RateLimited,
    SpotifyUnavailable,
    StorageError,
)
RETRY_TRANSIENT_S = 3600.0
# The subscriber (or the guild) has jobs running right now (e.g. a /cluster): try again soon
# rather than tomorrow, but never later than the next slot.
RETRY_SOON_S = 300.0
#: ``last_status`` of a run that found the playlist as the last digest left it.
NO_CHANGES = "no changes"


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall clock (UTC) and real sleeps."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class DigestScheduler:
    """Runs due digests in the background and serves the ``/digest`` commands.

    ``concurrency`` (default 1) bounds digests running at once: they are not urgent, and each
    one counts against its subscriber's job limit (``MAX_JOBS_PER_USER``), which interactive
    ``/cluster`` requests need more.

    ``DigestScheduler(db, queue, clock=...)``. ``queue`` needs ``submit(request)`` returning a
    handle with ``await handle.result()`` (bot.jobs.JobQueue). The services build it; its owner
    (the digest cog) runs it: :meth:`start` with the ``poster`` that turns a
    :class:`DigestMessage` into Discord messages starts the loop, :meth:`close` stops the loop
    and forgets the poster. Nothing is posted, and ``/digest run`` is refused, without an owner.
    ``poster=`` in the constructor: runs driven by hand (tests call :meth:`tick`/:meth:`run_now`).
    """

    def __init__(
        self,
        store_db: Database,
        queue: Any,
        *,
        poster: Poster | None = None,
        clock: Clock | None = None,
        concurrency: int = 1,
        max_per_guild: int = MAX_SUBSCRIPTIONS_PER_GUILD,
    ) -> None:
        self.subs = DigestStore(store_db)
        self.analyses = Store(store_db).analyses  # the previous digest's analysis, for the changes
        self.queue = queue
        self.clock: Clock = clock or SystemClock()
        self.max_per_guild = max_per_guild
        self._poster: Poster | None = poster
        self._creator_check: CreatorCheck | None = None
        self._semaphore = asyncio.Semaphore(max(1, concurrency))
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[RunResult]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(
        self, poster: Poster | None = None, *, creator_check: CreatorCheck | None = None
    ) -> None:
        """Start the background loop, posting through ``poster`` (idempotent).

        ``poster`` may be left out only when the constructor got one. ``creator_check``: asked
        before each run whether the creator is still in the server (raises CreatorGone)."""
        if poster is not None:
            self._poster = poster
        if creator_check is not None:
            self._creator_check = creator_check
        if self._poster is None:
            raise RuntimeError("DigestScheduler.start needs a poster")
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._loop(), name="digest-scheduler")

    async def close(self) -> None:
        """Stop the loop, wait for digests in progress to finish or be cancelled, and forget
        the poster (idempotent)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        running = list(self._running.values())
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self._poster = None
        self._creator_check = None

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def wake(self) -> None:
        """Re-arm the loop (a subscription was added, removed or resumed)."""
        self._wake.set()

    async def _loop(self) -> None:
        try:
            await self.resume_interrupted()
        except Exception:  # storage trouble: the runs wait for their next slot instead
            log.exception("could not resume interrupted digest runs")
        while True:
            self._wake.clear()
            try:
                await self.tick()
                delay = await self.next_delay()
            except Exception:  # storage trouble: keep the loop alive, try again in a minute
                log.exception("digest scheduler tick failed")
                delay = 60.0
            await self._wait(delay)

    async def _wait(self, delay: float | None) -> None:
        seconds = MAX_SLEEP_S if delay is None else min(max(delay, 0.0), MAX_SLEEP_S)
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    async def next_delay(self) -> float | None:
        """Seconds until the earliest active subscription is due (None: nothing scheduled)."""
        # Subscriptions running right now (e.g. a /digest run) are left out; their end wakes
        # the loop, so it never spins on one that is due but busy.
        nxt = await self.subs.next_due_at(exclude=set(self._running))
        if nxt is None:
            return None
        return max(0.0, (parse_iso(nxt) - self.clock.now()).total_seconds())

    async def tick(self) -> list[asyncio.Task[RunResult]]:
        """Claim every due subscription and start its run. Returns the started tasks.

        Claiming = moving ``next_run_at`` to the first slot after now *before* running, so a
        subscription that missed many slots runs once, and a failing one is not retried in a
        tight loop."""
        now = self.clock.now()
        return [
            self._spawn(sub, claim_at=now)
            for sub in await self.subs.due(iso(now))
            if sub.id not in self._running
        ]

    async def resume_interrupted(self) -> list[asyncio.Task[RunResult]]:
        """Run again the claimed runs a killed process never finished (at start-up): a crash
        used to lose the digest until the next slot, a week later for weekly ones."""
        subs = [s for s in await self.subs.interrupted() if s.id not in self._running]
        for sub in subs:
            log.info(
                "digest %s: running the slot of %s again (interrupted)", sub.id, sub.claimed_at
            )
        return [self._spawn(sub, claim_at=None, manual=False) for sub in subs]

    def _spawn(
        self, sub: Subscription, *, claim_at: datetime | None, manual: bool | None = None
    ) -> asyncio.Task[RunResult]:
        """Start a run; registered as running at once, so no other tick picks it up."""
        coro = self._guarded_run(sub, claim_at=claim_at, manual=manual)
        task = asyncio.create_task(coro, name=f"digest-{sub.id}")
        sub_id = sub.id
        self._running[sub_id] = task
        task.add_done_callback(lambda _t: self._finished(sub_id))
        return task

    def _finished(self, sub_id: int) -> None:
        self._running.pop(sub_id, None)
        self.wake()

    async def _claim(self, sub: Subscription, now: datetime) -> bool | None:
        """Move ``next_run_at`` past ``now``. False (and paused) if the schedule is invalid;
        None when another process (bot shard) claimed this slot first: only one runs it."""
        try:
            schedule = Schedule.of(sub)
        except DigestError as err:
            await self._pause(sub, member_message(err))
            return False
        if not await self.subs.claim(sub.id, sub.next_run_at, iso(schedule.next_after(now))):
            return None
        return True

    async def settle(self) -> None:
        """Wait until no digest is running and none is due at the clock's current time
        (tests: call after moving their ``tests.manual_clock.ManualClock``)."""
        while True:
            if self._running:
                await asyncio.gather(*list(self._running.values()), return_exceptions=True)
                continue
            if not await self.subs.due(iso(self.clock.now()), limit=1):
                return
            if not self.running:
                await self.tick()
            await asyncio.sleep(0.01)

    # -- one run -------------------------------------------------------------------------------
    async def _guarded_run(
        self, sub: Subscription, *, claim_at: datetime | None, manual: bool | None = None
    ) -> RunResult:
        """``claim_at`` None: a manual run (``/digest run``) or an interrupted one run again
        (``manual=False``); both leave the schedule alone."""
        manual = claim_at is None if manual is None else manual
        if claim_at is not None:
            claimed = await self._claim(sub, claim_at)
            if claimed is None:
                return RunResult("skipped", "Another bot process runs this digest.")
            if not claimed:
                return RunResult("paused", "Paused: invalid schedule.")
            sub = await self.subs.get(sub.id) or sub  # with its new next_run_at
        async with self._semaphore:
            try:
                return await self._run(sub, manual=manual)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("digest %s failed unexpectedly", sub.id)
                with contextlib.suppress(Exception):
                    await self.subs.record_run(
                        sub.id, run_at=iso(self.clock.now()), status="failed (internal error)"
                    )
                return RunResult("failed", "The digest failed with an internal error.")

    def _request(self, sub: Subscription, previous: Analysis | None = None) -> AnalysisRequest:
        """The job for one digest run.

        ``user_id`` = the subscriber: their linked Spotify account (if any) reads the playlist,
        which is what makes their own private playlists work in Development Mode.
        ``origin="digest"``: the scheduler awaits and posts it itself, and the /cluster cog leaves
        digest jobs alone; one interrupted by a restart is simply superseded by the next slot.
        ``previous_clusters``: the last posted digest's assignment, so the clustering starts
        from its clusters and keeps their numbers (bot.warm_start); empty for a first digest
        (its analysis is still a digest's: see :func:`bot.models.params_key`)."""
        return AnalysisRequest(
            link=sub.playlist_ref,
            k=sub.k,
            user_id=sub.created_by,
            guild_id=sub.guild_id,
            channel_id=sub.channel_id,
            origin="digest",
            previous_clusters=dict(previous.assignments) if previous is not None else {},
            digest_id=sub.id,
        )

    async def _run(self, sub: Subscription, *, manual: bool) -> RunResult:
        now = iso(self.clock.now())
        if self._creator_check is not None:
            try:  # before the read: it would use the creator's linked Spotify account
                await self._creator_check(sub)
            except CreatorGone as gone:
                await self._pause(sub, gone.reason)
                return RunResult("paused", f"Paused: {gone.reason}")
        previous: Analysis | None = None
        if sub.last_analysis_id is not None:
            previous = await self.analyses.get(sub.last_analysis_id)
        try:
            handle = await self.queue.submit(self._request(sub, previous))
            outcome = await handle.result()
        except BOT_WIDE_ERRORS as err:
            log.error(
                "digest %s not run: %s This is the bot's problem, not the digest's: it is not "
                "paused and is retried within the hour.",
                sub.id,
                err.user_message,
            )
            retry = self.clock.now() + timedelta(seconds=RETRY_BOT_WIDE_S)
            if not manual and iso(retry) < sub.next_run_at:
                await self.subs.set_next_run(sub.id, iso(retry))
            await self.subs.record_run(sub.id, run_at=now, status="waiting: bot misconfigured")
            return RunResult(
                "skipped", "Skipped: the bot can't use Spotify right now (its owner is told)."
            )
        except PAUSE_ERRORS as err:
            reason = public_reason(err)
            await self._pause(sub, reason)
            return RunResult("paused", f"Paused: {reason}")
        except LimitReached as err:
            retry = self.clock.now() + timedelta(seconds=RETRY_SOON_S)
            # ``sub`` was re-read after the claim: its next_run_at is the next slot.
            if not manual and iso(retry) < sub.next_run_at:
                await self.subs.set_next_run(sub.id, iso(retry))
            await self.subs.record_run(sub.id, run_at=now, status="waiting: job limit reached")
            return RunResult("skipped", f"Skipped for now: {member_message(err)}")
        except TRANSIENT_ERRORS as err:
            wait = getattr(err, "retry_after", None) or RETRY_TRANSIENT_S
            retry = self.clock.now() + timedelta(seconds=max(wait, RETRY_SOON_S))
            if not manual and iso(retry) < sub.next_run_at:
                await self.subs.set_next_run(sub.id, iso(retry))
            log.info("digest %s skipped (%s), next try %s", sub.id, err.code, iso(retry))
            await self.subs.record_run(sub.id, run_at=now, status=f"skipped: {member_message(err)}")
            return RunResult("skipped", f"Skipped: {member_message(err)}")
        except PipelineError as err:  # empty / too small / bad k: say it once, retry next slot
            status = f"skipped: {member_message(err)}"
            if status != sub.last_status or manual:
                await self._post(
                    DigestMessage("skipped", sub, text=member_message(err), manual=manual)
                )
            await self.subs.record_run(sub.id, run_at=now, status=status)
            return RunResult("skipped", f"Skipped: {member_message(err)}")

        analysis: Analysis = outcome.analysis
        analysis_id: int = outcome.analysis_id
        snapshot = analysis.source.snapshot_id
        changes: DigestChanges | None = None
        unchanged = sub.last_analysis_id is not None and (
            analysis_id == sub.last_analysis_id
            or (snapshot is not None and snapshot == sub.last_snapshot_id)
        )
        if not unchanged and previous is not None:
            changes = summarize_changes(previous, analysis)
            # Edited (e.g. reordered) but the same tracks in the same clusters: say so briefly.
            unchanged = not changes.has_changes

        since = sub.last_posted_at or sub.last_run_at
        if unchanged and not manual and sub.last_status == NO_CHANGES:
            # Said at the previous run already: a daily digest of a playlist nobody edits
            # posted the same "no changes since <date>" line every day. Quiet until it changes
            # (``/digest list`` shows the check; ``/digest run`` always answers).
            await self.subs.record_run(sub.id, run_at=now, status=NO_CHANGES)
            return RunResult("unchanged", "No changes since the last digest.", analysis_id)
        if unchanged:
            message = DigestMessage("unchanged", sub, outcome=outcome, since=since, manual=manual)
        else:
            message = DigestMessage(
                "digest", sub, outcome=outcome, changes=changes, since=since, manual=manual
            )
        try:
            await self._require_poster()(message)
        except DestinationGone as gone:
            await self._pause(sub, gone.reason)
            return RunResult("paused", f"Paused: {gone.reason}")
        if unchanged:
            await self.subs.record_run(sub.id, run_at=now, status=NO_CHANGES)
            return RunResult("unchanged", "No changes since the last digest.", analysis_id)
        await self.subs.record_run(
            sub.id,
            run_at=now,
            status="posted",
            analysis_id=analysis_id,
            snapshot_id=snapshot,
            posted=True,
        )
        return RunResult("posted", "Digest posted.", analysis_id)

    def _require_poster(self) -> Poster:
        if self._poster is None:
            raise RuntimeError("DigestScheduler has no poster")
        return self._poster

    async def _post(self, message: DigestMessage) -> None:
        """Post a side message; a vanished channel pauses, other failures are only logged."""
        try:
            await self._require_poster()(message)
        except DestinationGone as gone:
            if message.kind != "paused":
                await self._pause(message.subscription, gone.reason)
        except Exception:
            log.exception("posting a %s digest message failed", message.kind)

    async def _pause(self, sub: Subscription, reason: str) -> None:
        """Pause and report to the guild — once: an already paused subscription stays quiet."""
        if await self.subs.pause(sub.id, reason, at=iso(self.clock.now())):
            log.info("digest %s paused: %s", sub.id, reason)
            paused = await self.subs.get(sub.id) or sub
            await self._post(DigestMessage("paused", paused, text=reason))

    # -- what the commands call ------------------------------------------------------------------
    async def subscribe(
        self,
        *,
        guild_id: int,
        channel_id: int,
        playlist_ref: str,
        playlist_id: str,
        schedule: Schedule,
        k: int | None,
        created_by: int,
    ) -> Subscription:
        """Store a new subscription (the caller validated the link). Raises DigestError."""
        dup = await self.subs.find_duplicate(guild_id, channel_id, playlist_id)
        if dup is not None:
            raise DigestError(
                f"That channel already gets a digest of this playlist (#{dup.id}). "
                f"Remove it first with `/digest remove {dup.id}` to change its schedule."
            )
        if await self.subs.count_for_guild(guild_id) >= self.max_per_guild:
            raise DigestError(
                f"This server already has {self.max_per_guild} digests, the maximum. "
                "Remove one with `/digest remove` first."
            )
        sub = await self.subs.add(
            guild_id=guild_id,
            channel_id=channel_id,
            playlist_ref=playlist_ref,
            playlist_id=playlist_id,
            every=schedule.every,
            at_time=schedule.at,
            timezone=schedule.timezone,
            weekday=schedule.weekday,
            k=k,
            created_by=created_by,
            next_run_at=iso(schedule.next_after(self.clock.now())),
        )
        self.wake()
        return sub

    async def subscriptions(self, guild_id: int) -> list[Subscription]:
        return await self.subs.list_for_guild(guild_id)

    async def get(self, guild_id: int, sub_id: int) -> Subscription:
        sub = await self.subs.get(sub_id, guild_id=guild_id)
        if sub is None:
            raise DigestError(f"There is no digest #{sub_id} in this server. See `/digest list`.")
        return sub

    async def unsubscribe(self, guild_id: int, sub_id: int) -> Subscription:
        sub = await self.get(guild_id, sub_id)
        await self.subs.remove(sub_id, guild_id=guild_id)
        self.wake()
        return sub

    async def pause_guild(
        self, guild_id: int, reason: str, *, channel_id: int | None = None
    ) -> list[int]:
        """Pause a server's active digests at once (only those of ``channel_id``, given one):
        the bot was removed from the server, or the channel deleted, so no slot should read
        Spotify for them. Each is reported as any pause is (nowhere once the bot has left).
        Returns their ids."""
        paused = []
        for sub in await self.subs.list_for_guild(guild_id):
            if sub.paused or channel_id not in (None, sub.channel_id):
                continue
            await self._pause(sub, reason)
            paused.append(sub.id)
        if paused:
            self.wake()
        return paused

    async def resume(self, guild_id: int, sub_id: int) -> Subscription:
        sub = await self.get(guild_id, sub_id)
        if not sub.paused:
            raise DigestError(f"Digest #{sub_id} is not paused.")
        nxt = Schedule.of(sub).next_after(self.clock.now())
        await self.subs.resume(sub_id, guild_id=guild_id, next_run_at=iso(nxt))
        self.wake()
        return await self.get(guild_id, sub_id)

    async def run_now(self, guild_id: int, sub_id: int) -> RunResult:
        """Run a digest at once (``/digest run``); the schedule is unchanged."""
        sub = await self.get(guild_id, sub_id)
        if sub.paused:
            raise DigestError(
                f"Digest #{sub_id} is paused ({sub.pause_reason}). "
                f"Fix that, then `/digest resume {sub_id}`."
            )
        if sub.id in self._running:
            raise DigestError(f"Digest #{sub_id} is already running.")
        if self._poster is None:
            raise DigestError("Digests are not ready yet; try again in a minute.")
        return await self._spawn(sub, claim_at=None)
