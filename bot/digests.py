"""Scheduled playlist digests: schedule maths, change summaries and the scheduler loop.

A guild subscribes a channel to a playlist (daily or weekly, at a local time in an IANA time
zone). At each slot the :class:`DigestScheduler` re-reads the playlist through the job queue —
which reuses the stored analysis when the playlist's ``snapshot_id`` did not change — and
hands a :class:`DigestMessage` to a ``poster`` coroutine (provided by ``cogs/digest.py``) that
turns it into Discord messages. This module never imports discord.

Schedule rules (see :meth:`Schedule.next_after`):

* local wall-clock times via :mod:`zoneinfo`, so a daily 09:00 stays 09:00 across DST changes;
* a local time that does not exist (spring-forward gap) moves forward by the length of the
  gap (02:30 → 03:30), an ambiguous one (fall-back) runs at its first occurrence — exactly
  what ``fold=0`` means in PEP 495;
* missed slots (bot down) run once when the bot is back, not once per miss: a run claims the
  subscription by moving ``next_run_at`` to the first slot after *now* before doing any work.

Errors: a playlist that became unreadable (:data:`PAUSE_ERRORS`) or a channel that vanished
(:class:`DestinationGone`, raised by the poster) pauses the subscription and reports it once
to the guild; transient errors (rate limits, Spotify outages) just wait for the next slot; a
full job queue for the subscriber (LimitReached) retries five minutes later; a playlist that is
empty or too small to cluster is said once in the channel and retried at each slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.errors import (
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
)
from bot.models import Analysis, Track
from bot.pipeline import AnalysisRequest
from storage.db import Database
from storage.digests import DigestStore, Subscription, iso, parse_iso
from storage.repo import Store

log = logging.getLogger(__name__)

Every = Literal["daily", "weekly"]
WEEKDAYS: tuple[str, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
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
# Errors that are nobody's fault and usually pass: silently retry at the next slot.
TRANSIENT_ERRORS: tuple[type[PipelineError], ...] = (
    RateLimited,
    SpotifyUnavailable,
    StorageError,
)
# The subscriber (or the guild) has jobs running right now (e.g. a /cluster): try again soon
# rather than tomorrow, but never later than the next slot.
RETRY_SOON_S = 300.0

# Shown first by the time-zone autocomplete when the user has not typed anything.
COMMON_TIMEZONES: tuple[str, ...] = (
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Amsterdam",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Istanbul",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Sydney",
    "Pacific/Auckland",
)


class DigestError(PipelineError):
    """A digest command that cannot be done (bad time, unknown zone, limits, unknown id)."""

    code = "digest"


class DestinationGone(Exception):
    """Raised by the poster when the channel is gone or the bot may no longer write there
    (Discord 404 Unknown Channel / 403 Missing Access). The subscription gets paused."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- time zones and times -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _zones_by_lower() -> dict[str, str]:
    zones = {z.lower(): z for z in available_timezones()}
    zones.setdefault("utc", "UTC")
    return zones


def resolve_timezone(name: str | None) -> str:
    """The canonical IANA name for ``name`` (case-insensitive), default UTC.

    Raises :class:`DigestError` for anything zoneinfo does not know (only names from the tz
    database are accepted, never file paths)."""
    text = (name or "UTC").strip()
    canonical = _zones_by_lower().get(text.lower())
    if canonical is None:
        raise DigestError(
            f"Unknown time zone `{text[:60]}`. Use an IANA name such as `Europe/Paris`, "
            "`America/New_York` or `UTC` (the option suggests names as you type)."
        )
    try:
        ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - tzdata mismatch
        raise DigestError(f"The time zone `{canonical}` is not available on this bot.") from exc
    return canonical


def suggest_timezones(query: str, *, limit: int = 25) -> list[str]:
    """Time-zone names for autocomplete: common ones first, then any zone containing ``query``
    (matches at the start of the city part rank before matches elsewhere)."""
    q = query.strip().lower().replace(" ", "_")
    if not q:
        return list(COMMON_TIMEZONES[:limit])
    zones = sorted(set(_zones_by_lower().values()))
    common = [z for z in COMMON_TIMEZONES if q in z.lower()]

    def rank(zone: str) -> tuple[int, str]:
        low = zone.lower()
        city = low.rsplit("/", 1)[-1]
        if city.startswith(q) or low.startswith(q):
            return (0, zone)
        return (1, zone)

    rest = sorted((z for z in zones if q in z.lower() and z not in common), key=rank)
    return (common + rest)[:limit]


_TIME_RE = re.compile(r"^\s*(\d{1,2})[:.h](\d{2})\s*$")


def parse_at(text: str) -> str:
    """``"9:05"``, ``"09:05"``, ``"09.05"`` or ``"9h05"`` → ``"09:05"``; else DigestError."""
    match = _TIME_RE.match(text or "")
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour < 24 and minute < 60:
            return f"{hour:02d}:{minute:02d}"
    raise DigestError(
        f"`{(text or '')[:20]}` is not a time. Use 24-hour `HH:MM`, e.g. `09:00` or `18:30`."
    )


def parse_weekday(value: str | int | None) -> int:
    """A weekday name (any case, 3+ letters) or 0–6 (0 = Monday) → 0–6; default Monday."""
    if value is None or value == "":
        return 0
    if isinstance(value, int):
        if 0 <= value <= 6:
            return value
    else:
        text = value.strip().lower()
        if text.isdigit() and int(text) <= 6:
            return int(text)
        for i, name in enumerate(WEEKDAYS):
            if len(text) >= 3 and name.lower().startswith(text):
                return i
    raise DigestError(f"`{value}` is not a weekday. Use Monday … Sunday.")


# --- schedules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """When a digest runs: every day or week (on ``weekday``) at local ``at`` in ``timezone``."""

    every: Every
    at: str  # HH:MM
    timezone: str = "UTC"
    weekday: int | None = None  # 0 = Monday; weekly only

    @classmethod
    def build(
        cls,
        every: str,
        at: str,
        timezone: str | None = None,
        weekday: str | int | None = None,
    ) -> Schedule:
        """Validate user input (raises DigestError with a message fit for the user)."""
        if every not in ("daily", "weekly"):
            raise DigestError("`every` must be `daily` or `weekly`.")
        return cls(
            every=every,  # type: ignore[arg-type]
            at=parse_at(at),
            timezone=resolve_timezone(timezone),
            weekday=parse_weekday(weekday) if every == "weekly" else None,
        )

    @classmethod
    def of(cls, sub: Subscription) -> Schedule:
        """The schedule of a stored subscription (re-validated: tzdata can change)."""
        return cls.build(sub.every, sub.at_time, sub.timezone, sub.weekday)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment`` (aware), as an aware UTC datetime."""
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        zone = self.zone
        hour, minute = (int(x) for x in self.at.split(":"))
        local_day = moment.astimezone(zone).date()
        # Start a day early: near midnight the previous local day's slot can still be ahead.
        for offset in range(-1, 9):
            day = local_day + timedelta(days=offset)
            if self.every == "weekly" and day.weekday() != (self.weekday or 0):
                continue
            # fold=0: a gap time is read with the pre-transition offset, which lands after the
            # gap (02:30 → 03:30); an ambiguous time is its first occurrence.
            slot = datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
            if slot > moment:
                return slot
        raise AssertionError("unreachable: a slot exists within 8 days")  # pragma: no cover

    def describe(self) -> str:
        """e.g. ``every Monday at 09:00 (Europe/Paris)``."""
        when = "every day" if self.every == "daily" else f"every {WEEKDAYS[self.weekday or 0]}"
        return f"{when} at {self.at} ({self.timezone})"


# --- change summary -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackChange:
    """A track added or removed.

    ``cluster``/``cluster_name`` always refer to the *current* analysis: for an added track
    the cluster it joined; for a removed one the current cluster that continues the one it
    left (None, with the old name, when that cluster vanished). ``previous_cluster`` is the
    removed track's index in the previous analysis."""

    track_id: str
    name: str
    artists: list[str]
    cluster: int | None
    cluster_name: str | None
    previous_cluster: int | None = None


@dataclass(frozen=True)
class ClusterChange:
    """A current cluster matched to its previous counterpart (or new: ``previous_index`` None).

    ``joined``: members that were not in the matched previous cluster (added tracks, or tracks
    that moved in); ``left``: the reverse."""

    index: int
    name: str
    size: int
    previous_index: int | None
    previous_size: int
    jaccard: float
    joined: int
    left: int

    @property
    def delta(self) -> int:
        return self.size - self.previous_size


@dataclass
class DigestChanges:
    """What changed between two analyses of the same playlist. Pure data; the cog renders it."""

    previous_analysis_id: int | None
    previous_created_at: str | None
    added: list[TrackChange] = field(default_factory=list)
    removed: list[TrackChange] = field(default_factory=list)
    clusters: list[ClusterChange] = field(default_factory=list)  # every current cluster
    vanished: list[ClusterChange] = field(default_factory=list)  # previous, no counterpart
    moved: int = 0  # kept tracks now in a cluster other than their old cluster's counterpart

    @property
    def grew(self) -> list[ClusterChange]:
        return [c for c in self.clusters if c.previous_index is not None and c.delta > 0]

    @property
    def shrank(self) -> list[ClusterChange]:
        return [c for c in self.clusters if c.previous_index is not None and c.delta < 0]

    @property
    def new_clusters(self) -> list[ClusterChange]:
        return [c for c in self.clusters if c.previous_index is None]

    @property
    def kept(self) -> int:
        """Tracks in both analyses."""
        return sum(c.size for c in self.clusters) - len(self.added)

    @property
    def reshuffled(self) -> bool:
        """Re-clustering regrouped the playlist (over a quarter of the kept tracks changed
        cluster): per-cluster growth says little then, the cog says "regrouped" instead."""
        return self.kept > 0 and self.moved * 4 > self.kept

    @property
    def has_changes(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.vanished
            or self.new_clusters
            or self.moved
            or any(c.delta for c in self.clusters)
        )


def _members(analysis: Analysis) -> list[set[str]]:
    sets: list[set[str]] = [set() for _ in analysis.clusters]
    pos = {c.index: i for i, c in enumerate(analysis.clusters)}
    for track_id, idx in analysis.assignments.items():
        if idx in pos:
            sets[pos[idx]].add(track_id)
    return sets


def match_clusters(
    previous: Sequence[set[str]], current: Sequence[set[str]]
) -> dict[int, tuple[int, float]]:
    """Pair current clusters (by position) with previous ones: Hungarian assignment maximising
    the total Jaccard overlap of members. Returns ``{current_pos: (previous_pos, jaccard)}``;
    pairs with no common member are left out (the cluster is new / vanished)."""
    if not previous or not current:
        return {}
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    overlap = np.zeros((len(current), len(previous)))
    for i, cur in enumerate(current):
        for j, prev in enumerate(previous):
            union = len(cur | prev)
            overlap[i, j] = len(cur & prev) / union if union else 0.0
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return {
        int(i): (int(j), float(overlap[i, j]))
        for i, j in zip(rows, cols, strict=True)
        if overlap[i, j] > 0
    }


def _track_change(
    track: Track, cluster: int | None, cluster_name: str | None, previous: int | None = None
) -> TrackChange:
    return TrackChange(
        track_id=track.id,
        name=track.name,
        artists=list(track.artists),
        cluster=cluster,
        cluster_name=cluster_name,
        previous_cluster=previous,
    )


def summarize_changes(previous: Analysis, current: Analysis) -> DigestChanges:
    """Tracks added/removed and how clusters grew or shrank between two analyses.

    Cluster indices are arbitrary across runs, so clusters are matched by member overlap
    (:func:`match_clusters`) before sizes are compared."""
    prev_sets, cur_sets = _members(previous), _members(current)
    matches = match_clusters(prev_sets, cur_sets)
    prev_ids = {t.id for t in previous.tracks}
    cur_ids = {t.id for t in current.tracks}
    cur_names = {c.index: c.name for c in current.clusters}
    prev_names = {c.index: c.name for c in previous.clusters}

    added = [
        _track_change(
            t,
            current.assignments.get(t.id),
            cur_names.get(current.assignments.get(t.id, -1)),
        )
        for t in current.tracks
        if t.id not in prev_ids
    ]
    # previous cluster index -> the current cluster that continues it
    counterpart = {
        previous.clusters[ppos].index: current.clusters[pos].index
        for pos, (ppos, _) in matches.items()
    }
    removed = []
    for t in previous.tracks:
        if t.id in cur_ids:
            continue
        old = previous.assignments.get(t.id)
        now = counterpart.get(old) if old is not None else None
        name = cur_names.get(now) if now is not None else prev_names.get(old)  # type: ignore[arg-type]
        removed.append(_track_change(t, now, name, old))

    clusters: list[ClusterChange] = []
    matched_prev: set[int] = set()
    for pos, cluster in enumerate(current.clusters):
        members = cur_sets[pos]
        if pos in matches:
            ppos, jac = matches[pos]
            matched_prev.add(ppos)
            before = prev_sets[ppos]
            clusters.append(
                ClusterChange(
                    index=cluster.index,
                    name=cluster.name,
                    size=len(members),
                    previous_index=previous.clusters[ppos].index,
                    previous_size=len(before),
                    jaccard=jac,
                    joined=len(members - before),
                    left=len(before - members),
                )
            )
        else:
            clusters.append(
                ClusterChange(cluster.index, cluster.name, len(members), None, 0, 0.0, 0, 0)
            )
    vanished = [
        ClusterChange(c.index, c.name, 0, c.index, len(prev_sets[p]), 0.0, 0, len(prev_sets[p]))
        for p, c in enumerate(previous.clusters)
        if p not in matched_prev
    ]

    # Kept tracks whose new cluster is not the counterpart of their old one.
    moved = sum(
        1
        for tid in prev_ids & cur_ids
        if tid in previous.assignments
        and tid in current.assignments
        and counterpart.get(previous.assignments[tid]) != current.assignments[tid]
    )
    return DigestChanges(
        previous_analysis_id=previous.analysis_id,
        previous_created_at=previous.created_at,
        added=added,
        removed=removed,
        clusters=clusters,
        vanished=vanished,
        moved=moved,
    )


# --- what the scheduler hands the poster ---------------------------------------------------

MessageKind = Literal["digest", "unchanged", "skipped", "paused"]


@dataclass
class DigestMessage:
    """One thing for the cog to post.

    * ``digest``: full clusters (``outcome`` is the JobOutcome: analysis, rendered PNG…) plus
      ``changes`` since the previous digest (None on the first one) — to the channel.
    * ``unchanged``: the playlist did not change since ``since`` (ISO time) — to the channel.
    * ``skipped``: this slot was skipped for a reason worth saying once (``text``) — channel.
    * ``paused``: the subscription is paused (``text`` = reason) — to the guild (system
      channel or the first channel the bot can write in), since the channel may be gone.
    """

    kind: MessageKind
    subscription: Subscription
    text: str | None = None
    outcome: Any = None  # bot.jobs.JobOutcome
    changes: DigestChanges | None = None
    since: str | None = None
    manual: bool = False  # /digest run rather than the schedule

    @property
    def schedule(self) -> Schedule | None:
        try:
            return Schedule.of(self.subscription)
        except DigestError:
            return None


Poster = Callable[[DigestMessage], Awaitable[None]]
RunStatus = Literal["posted", "unchanged", "skipped", "paused", "failed"]


@dataclass(frozen=True)
class RunResult:
    """How one run ended (``/digest run`` shows ``message`` to the person who asked)."""

    status: RunStatus
    message: str
    analysis_id: int | None = None


# --- clocks ---------------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall clock (UTC) and real sleeps."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock tests move by hand: ``sleep`` returns when :meth:`advance` passes its deadline."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("naive datetime")
        self._now = start.astimezone(UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._now + timedelta(seconds=seconds), future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            with contextlib.suppress(ValueError):
                self._sleepers.remove(entry)

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (forwards or backwards) and wake sleepers that are due."""
        self._now = moment.astimezone(UTC)
        for deadline, future in list(self._sleepers):
            if deadline <= self._now and not future.done():
                future.set_result(None)

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)

    @property
    def sleeping(self) -> int:
        """How many sleeps are pending (tests use it to know the loop went back to sleep)."""
        return sum(1 for _, f in self._sleepers if not f.done())

    @property
    def next_wake(self) -> datetime | None:
        """The earliest deadline of a pending sleep."""
        pending = [d for d, f in self._sleepers if not f.done()]
        return min(pending) if pending else None


# --- the scheduler --------------------------------------------------------------------------


class DigestScheduler:
    """Runs due digests in the background and serves the ``/digest`` commands.

    ``concurrency`` (default 1) bounds digests running at once: they are not urgent, and each
    one counts against its subscriber's job limit (``MAX_JOBS_PER_USER``), which interactive
    ``/cluster`` requests need more.

    ``DigestScheduler(db, queue, poster=..., clock=...)``. ``queue`` needs ``submit(request)``
    returning a handle with ``await handle.result()`` (bot.jobs.JobQueue). ``poster`` may be set
    later (:meth:`set_poster`): the loop waits for it before running anything, so the bot can
    build the scheduler before the cog that knows how to post exists.
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
        self.analyses = Store(store_db)  # the previous digest's analysis, for the changes
        self.queue = queue
        self.clock: Clock = clock or SystemClock()
        self.max_per_guild = max_per_guild
        self._poster: Poster | None = poster
        self._poster_set = asyncio.Event()
        if poster is not None:
            self._poster_set.set()
        self._semaphore = asyncio.Semaphore(max(1, concurrency))
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[RunResult]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def set_poster(self, poster: Poster | None) -> None:
        self._poster = poster
        if poster is None:
            self._poster_set.clear()
        else:
            self._poster_set.set()
            self.wake()

    async def start(self) -> None:
        """Start the background loop (idempotent)."""
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._loop(), name="digest-scheduler")

    async def close(self) -> None:
        """Stop the loop and wait for digests in progress to finish or be cancelled."""
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

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def wake(self) -> None:
        """Re-arm the loop (a subscription was added, removed or resumed)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._poster_set.wait()  # nothing runs while no cog can post
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

    def _spawn(self, sub: Subscription, *, claim_at: datetime | None) -> asyncio.Task[RunResult]:
        """Start a run; registered as running at once, so no other tick picks it up."""
        coro = self._guarded_run(sub, claim_at=claim_at)
        task = asyncio.create_task(coro, name=f"digest-{sub.id}")
        self._running[sub.id] = task
        task.add_done_callback(lambda _t, sid=sub.id: self._finished(sid))
        return task

    def _finished(self, sub_id: int) -> None:
        self._running.pop(sub_id, None)
        self.wake()

    async def _claim(self, sub: Subscription, now: datetime) -> bool:
        """Move ``next_run_at`` past ``now``. False (and paused) if the schedule is invalid."""
        try:
            schedule = Schedule.of(sub)
        except DigestError as err:
            await self._pause(sub, err.user_message)
            return False
        await self.subs.set_next_run(sub.id, iso(schedule.next_after(now)))
        return True

    async def settle(self) -> None:
        """Wait until no digest is running and none is due at the clock's current time
        (tests: call after moving a :class:`ManualClock`)."""
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
    async def _guarded_run(self, sub: Subscription, *, claim_at: datetime | None) -> RunResult:
        """``claim_at`` None: a manual run (``/digest run``), which leaves the schedule alone."""
        manual = claim_at is None
        if claim_at is not None:
            if not await self._claim(sub, claim_at):
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

    def _request(self, sub: Subscription) -> AnalysisRequest:
        """The job for one digest run.

        ``user_id`` = the subscriber: their linked Spotify account (if any) reads the playlist,
        which is what makes their own private playlists work in Development Mode.
        ``channel_id`` is deliberately left out: the /cluster cog posts every finished job that
        carries a channel and that nobody awaits (jobs resumed after a restart), which would
        post each digest a second time. The scheduler posts digests itself; a digest job
        interrupted by a restart is simply superseded by the next slot."""
        return AnalysisRequest(
            link=sub.playlist_ref,
            k=sub.k,
            user_id=sub.created_by,
            guild_id=sub.guild_id,
        )

    async def _run(self, sub: Subscription, *, manual: bool) -> RunResult:
        now = iso(self.clock.now())
        try:
            handle = await self.queue.submit(self._request(sub))
            outcome = await handle.result()
        except PAUSE_ERRORS as err:
            await self._pause(sub, err.user_message)
            return RunResult("paused", f"Paused: {err.user_message}")
        except LimitReached as err:
            retry = self.clock.now() + timedelta(seconds=RETRY_SOON_S)
            # ``sub`` was re-read after the claim: its next_run_at is the next slot.
            if not manual and iso(retry) < sub.next_run_at:
                await self.subs.set_next_run(sub.id, iso(retry))
            await self.subs.record_run(sub.id, run_at=now, status="waiting: job limit reached")
            return RunResult("skipped", f"Skipped for now: {err.user_message}")
        except TRANSIENT_ERRORS as err:
            log.info("digest %s skipped (%s)", sub.id, err.code)
            await self.subs.record_run(sub.id, run_at=now, status=f"skipped: {err.user_message}")
            return RunResult("skipped", f"Skipped: {err.user_message}")
        except PipelineError as err:  # empty / too small / bad k: say it once, retry next slot
            status = f"skipped: {err.user_message}"
            if status != sub.last_status or manual:
                await self._post(
                    DigestMessage("skipped", sub, text=err.user_message, manual=manual)
                )
            await self.subs.record_run(sub.id, run_at=now, status=status)
            return RunResult("skipped", f"Skipped: {err.user_message}")

        analysis: Analysis = outcome.analysis
        analysis_id: int = outcome.analysis_id
        snapshot = analysis.source.snapshot_id
        previous: Analysis | None = None
        changes: DigestChanges | None = None
        unchanged = sub.last_analysis_id is not None and (
            analysis_id == sub.last_analysis_id
            or (snapshot is not None and snapshot == sub.last_snapshot_id)
        )
        if not unchanged and sub.last_analysis_id is not None:
            previous = await self.analyses.get_analysis(sub.last_analysis_id)
            if previous is not None:
                changes = summarize_changes(previous, analysis)
                # Edited (e.g. reordered) but the same tracks in the same clusters: say so briefly.
                unchanged = not changes.has_changes

        since = sub.last_posted_at or sub.last_run_at
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
            await self.subs.record_run(sub.id, run_at=now, status="no changes")
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
