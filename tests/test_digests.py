"""Digests: schedule maths, change summaries on real data, storage, and the scheduler loop.

Time is driven by :class:`tests.manual_clock.ManualClock` — no real sleeps, no timed assertions. The
job queue here is a small scripted stand-in (the real-queue path is in the integration test at
the end, which also uses the fake Spotify server).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bot.digests import (
    DestinationGone,
    DigestError,
    DigestMessage,
    DigestScheduler,
    Schedule,
    match_clusters,
    parse_at,
    parse_weekday,
    resolve_timezone,
    suggest_timezones,
    summarize_changes,
)
from bot.errors import (
    LimitReached,
    NotOwner,
    QuotaExceeded,
    RateLimited,
    SpotifyUnavailable,
    TooSmall,
)
from bot.models import AUDIO_FEATURES, Analysis, Cluster, PlaylistMeta, Track
from storage.db import Database
from storage.digests import iso, parse_iso
from tests.manual_clock import ManualClock

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT / "bot" / "demo_data" / "demo_mix.csv"  # real TidyTuesday 2020-01-21 rows
GUILD, CHANNEL, USER = 111, 222, 333
LINK = "https://open.spotify.com/playlist/3S03NWbWkrR1e7DPH9rf9Z"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- schedule maths -------------------------------------------------------------------------


def test_daily_slot_is_local_time_in_zone() -> None:
    sched = Schedule.build("daily", "09:00", "Europe/Paris")
    # 2026-11-23 is winter time in Paris (UTC+1): 09:00 local = 08:00 UTC.
    assert sched.next_after(utc(2026, 11, 23, 7, 0)) == utc(2026, 11, 23, 8, 0)
    assert sched.next_after(utc(2026, 11, 23, 8, 0)) == utc(2026, 11, 24, 8, 0)  # strictly after
    # Summer time (UTC+2): 09:00 local = 07:00 UTC.
    assert sched.next_after(utc(2026, 7, 1, 12, 0)) == utc(2026, 7, 2, 7, 0)


def test_daily_slot_keeps_local_time_across_dst_end() -> None:
    sched = Schedule.build("daily", "09:00", "Europe/Paris")
    first = sched.next_after(utc(2026, 10, 24, 6, 0))  # Saturday, still CEST
    second = sched.next_after(first)  # Sunday 25th: clocks went back at 03:00
    assert first == utc(2026, 10, 24, 7, 0)
    assert second == utc(2026, 10, 25, 8, 0)
    paris = ZoneInfo("Europe/Paris")
    assert first.astimezone(paris).hour == second.astimezone(paris).hour == 9


def test_nonexistent_local_time_moves_forward_and_ambiguous_picks_first() -> None:
    ny = ZoneInfo("America/New_York")
    gap = Schedule.build("daily", "02:30", "America/New_York")
    # 2026-03-08 02:00 → 03:00 EDT: 02:30 does not exist; it runs at 03:30 EDT (07:30 UTC).
    slot = gap.next_after(utc(2026, 3, 8, 0, 0))
    assert slot == utc(2026, 3, 8, 7, 30)
    assert slot.astimezone(ny).strftime("%H:%M %Z") == "03:30 EDT"
    # The next day is a normal 02:30 EDT.
    assert gap.next_after(slot) == utc(2026, 3, 9, 6, 30)

    fold = Schedule.build("daily", "01:30", "America/New_York")
    # 2026-11-01 01:30 happens twice (EDT, then EST): the first one, 05:30 UTC.
    slot = fold.next_after(utc(2026, 11, 1, 0, 0))
    assert slot == utc(2026, 11, 1, 5, 30)
    # ...and only once: the next slot is the following day.
    assert fold.next_after(slot) == utc(2026, 11, 2, 6, 30)


def test_weekly_slot_on_weekday_and_across_midnight_in_zone() -> None:
    sched = Schedule.build("weekly", "18:30", "America/Los_Angeles", "friday")
    assert sched.weekday == 4
    # Monday 2026-11-23 → Friday 27th 18:30 PST = Saturday 28th 02:30 UTC.
    assert sched.next_after(utc(2026, 11, 23, 12, 0)) == utc(2026, 11, 28, 2, 30)
    # Just after it: a week later.
    assert sched.next_after(utc(2026, 11, 28, 2, 30)) == utc(2026, 12, 5, 2, 30)
    # Ahead-of-UTC zone: Monday 00:15 in Tokyo is Sunday 15:15 UTC.
    tokyo = Schedule.build("weekly", "00:15", "Asia/Tokyo")
    assert tokyo.weekday == 0
    assert tokyo.next_after(utc(2026, 11, 22, 15, 0)) == utc(2026, 11, 22, 15, 15)
    assert tokyo.describe() == "every Monday at 00:15 (Asia/Tokyo)"


def test_input_validation_messages() -> None:
    assert parse_at("9:05") == "09:05"
    assert parse_at(" 18.30 ") == "18:30"
    assert parse_at("7h00") == "07:00"
    for bad in ("24:00", "12:60", "noon", "", "1230"):
        with pytest.raises(DigestError, match="HH:MM"):
            parse_at(bad)
    assert resolve_timezone(None) == "UTC"
    assert resolve_timezone("europe/paris") == "Europe/Paris"
    for bad in ("Mars/Olympus", "../../etc/passwd", "Europe/"):
        with pytest.raises(DigestError, match="IANA"):
            resolve_timezone(bad)
    assert parse_weekday(None) == 0
    assert parse_weekday("Sun") == 6
    assert parse_weekday(3) == 3
    with pytest.raises(DigestError, match="weekday"):
        parse_weekday("someday")
    with pytest.raises(DigestError, match="daily"):
        Schedule.build("hourly", "09:00")
    # daily ignores a weekday
    assert Schedule.build("daily", "09:00", weekday="friday").weekday is None


def test_timezone_suggestions() -> None:
    assert suggest_timezones("")[0] == "UTC"
    assert len(suggest_timezones("")) <= 25
    assert suggest_timezones("paris")[0] == "Europe/Paris"
    new_york = suggest_timezones("new york")
    assert new_york[0] == "America/New_York"
    assert all("kolkata" in z.lower() for z in suggest_timezones("Kolk"))
    assert suggest_timezones("zzzz") == []


# --- change summary on real data -----------------------------------------------------------


def _real_rows() -> list[dict[str, str]]:
    with REAL_DATA.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _track(row: dict[str, str]) -> Track:
    return Track(
        id=row["track_id"],
        name=row["track_name"],
        artists=[row["track_artist"]],
        album=row["track_album_name"],
        features={f: float(row[f]) for f in AUDIO_FEATURES},
    )


def _analyse(tracks: list[Track], k: int, *, permute: list[int] | None = None) -> Analysis:
    """A small, real k-means clustering of ``tracks`` on their audio features (standardised).

    ``permute`` relabels the clusters, like a fresh run numbering them differently."""
    from sklearn.cluster import KMeans

    ordered = sorted(tracks, key=lambda t: t.id)  # order-independent, like the pipeline
    x = np.array([[t.features[f] for f in AUDIO_FEATURES] for t in ordered])
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(x)
    if permute is not None:
        labels = np.array([permute[v] for v in labels])
    assignments = {t.id: int(v) for t, v in zip(ordered, labels, strict=True)}
    clusters = []
    for idx in range(k):
        ids = [t.id for t in ordered if assignments[t.id] == idx]
        clusters.append(
            Cluster(idx, f"Cluster {idx + 1}", "", len(ids), {}, ids, ids[:10]),
        )
    return Analysis(
        source=PlaylistMeta(id="3S03NWbWkrR1e7DPH9rf9Z", name="Mix"),
        tracks=list(tracks),
        clusters=clusters,
        assignments=assignments,
        coords={t.id: [0.0, 0.0] for t in tracks},
        k=k,
        k_requested=k,
        feature_mode="audio",
        feature_names=list(AUDIO_FEATURES),
        coverage={"csv": len(tracks)},
    )


def _by_playlist() -> dict[str, list[Track]]:
    out: dict[str, list[Track]] = {}
    for row in _real_rows():
        out.setdefault(row["playlist_name"], []).append(_track(row))
    return out


def test_matching_recovers_a_relabelled_clustering_on_real_data() -> None:
    tracks = [t for ts in _by_playlist().values() for t in ts]
    before = _analyse(tracks, 5)
    after = _analyse(tracks, 5, permute=[3, 0, 4, 1, 2])
    changes = summarize_changes(before, after)
    assert not changes.has_changes
    assert changes.added == changes.removed == []
    assert changes.moved == 0
    for c in changes.clusters:
        assert c.jaccard == 1.0
        assert c.previous_index == [3, 0, 4, 1, 2].index(c.index)
        assert c.delta == 0


def test_change_summary_on_real_playlist_edit() -> None:
    """Two snapshots of a real five-playlist mix: 12 rock tracks removed, 15 EDM tracks added."""
    playlists = _by_playlist()
    first = [t for tracks in playlists.values() for t in tracks[:40]]
    removed = playlists["’80s Hard Rock"][:12]
    added = playlists["Big Room EDM"][40:55]
    second = [t for t in first if t not in removed] + added
    before, after = _analyse(first, 5), _analyse(second, 5)

    changes = summarize_changes(before, after)
    assert [c.track_id for c in changes.added] == [t.id for t in added]
    assert [c.track_id for c in changes.removed] == [t.id for t in removed]
    # Each added track reports the cluster it joined; each removed one the cluster it left.
    for c in changes.added:
        assert c.cluster == after.assignments[c.track_id]
        assert c.cluster_name == f"Cluster {c.cluster + 1}"
    for c in changes.removed:
        assert c.previous_cluster == before.assignments[c.track_id]
        # named after the current cluster that continues the one it left
        continued = next(x for x in changes.clusters if x.previous_index == c.previous_cluster)
        assert (c.cluster, c.cluster_name) == (continued.index, continued.name)
    # The per-cluster numbers are explained by the track lists plus tracks that moved:
    # joined = added into it + moved in; left = removed from its counterpart + moved out.
    assert changes.vanished == [] and changes.new_clusters == []
    moved_in = moved_out = 0
    for c in changes.clusters:
        added_here = sum(1 for a in changes.added if a.cluster == c.index)
        removed_here = sum(1 for r in changes.removed if r.previous_cluster == c.previous_index)
        assert c.joined >= added_here and c.left >= removed_here
        assert c.size - c.previous_size == c.joined - c.left
        moved_in += c.joined - added_here
        moved_out += c.left - removed_here
    assert moved_in == moved_out == changes.moved
    assert sum(c.delta for c in changes.clusters) == len(added) - len(removed)
    assert changes.grew and changes.shrank and changes.has_changes
    # Real data, same seed, k=5: clusters stay recognisable and few kept tracks move.
    assert all(c.jaccard > 0.6 for c in changes.clusters)
    assert changes.moved < len(first) // 10
    assert not changes.reshuffled


def test_reshuffled_clusters_on_real_data_are_flagged() -> None:
    """k=3 on rock/EDM/trap: removing 12 rock tracks makes k-means regroup a third of the rest
    (measured: 50 of 108 kept tracks change cluster) — the summary says so rather than
    pretending one cluster "shrank by 33"."""
    playlists = _by_playlist()
    names = ("’80s Hard Rock", "Big Room EDM", "Trap Nation")
    first = [t for n in names for t in playlists[n][:40]]
    second = [t for t in first if t not in playlists[names[0]][:12]] + playlists[names[1]][40:55]
    changes = summarize_changes(_analyse(first, 3), _analyse(second, 3))
    assert changes.moved > (len(first) - 12) // 4
    assert changes.reshuffled


def test_match_clusters_leaves_disjoint_clusters_unmatched() -> None:
    prev = [{"a", "b"}, {"c"}]
    cur = [{"c", "d"}, {"x", "y"}, {"a"}]
    assert match_clusters(prev, cur) == {0: (1, 0.5), 2: (0, 0.5)}
    assert match_clusters([], cur) == {}


# --- the scheduler with a scripted queue ----------------------------------------------------


@dataclass
class Outcome:
    analysis_id: int
    analysis: Analysis
    rendered: object = None
    reused: bool = False


@dataclass
class FakeHandle:
    item: object
    job_id: int = 1
    shared: bool = False

    async def result(self) -> Outcome:
        if isinstance(self.item, Exception):
            raise self.item
        return self.item  # type: ignore[return-value]


@dataclass
class ScriptedQueue:
    """Answers each submit with the next scripted analysis (stored in ``analyses``) or error."""

    db: Database
    script: list[object] = field(default_factory=list)
    requests: list[object] = field(default_factory=list)
    last: Outcome | None = None
    png: bytes | None = None  # the scatter image each outcome carries (Discord tests)
    by_link: dict[str, list[object]] = field(default_factory=dict)  # scripts for other links

    async def submit(self, request, progress=None) -> FakeHandle:
        self.requests.append(request)
        script = self.by_link.get(request.link, self.script)
        item = script.pop(0)
        if item == "same" and self.last is not None:  # unchanged snapshot: stored analysis
            last = self.last
            return FakeHandle(Outcome(last.analysis_id, last.analysis, last.rendered, reused=True))
        if isinstance(item, Analysis):
            analysis_id = await self.db.execute(
                """INSERT INTO analyses (playlist_id, snapshot_id, params_json, params_key, k,
                   feature_mode, coverage_json, result_json, created_at)
                   VALUES (?, ?, '{}', 'k=auto', ?, 'audio', '{}', ?, ?)""",
                (
                    item.source.id,
                    item.source.snapshot_id,
                    item.k,
                    json.dumps(item.to_dict()),
                    "2026-11-20T10:00:00+00:00",
                ),
            )
            item.analysis_id = analysis_id
            rendered = SimpleNamespace(png=self.png, profile_png=b"") if self.png else None
            self.last = Outcome(analysis_id, item, rendered)
            return FakeHandle(self.last)
        return FakeHandle(item)


class Recorder:
    """The poster: records messages; can simulate a vanished channel."""

    def __init__(self) -> None:
        self.messages: list[DigestMessage] = []
        self.channel_gone = False

    async def __call__(self, message: DigestMessage) -> None:
        if self.channel_gone and message.kind != "paused":
            raise DestinationGone("The channel was deleted or the bot can no longer see it.")
        self.messages.append(message)

    def kinds(self) -> list[str]:
        return [m.kind for m in self.messages]


@pytest.fixture
async def db(tmp_path: Path):
    database = await Database(tmp_path / "digests.sqlite3").open()
    yield database
    await database.close()


def _snapshot(tracks: list[Track], snapshot: str, k: int = 3) -> Analysis:
    analysis = _analyse(tracks, k)
    analysis.source.snapshot_id = snapshot
    return analysis


async def _subscribe(sched: DigestScheduler, schedule: Schedule, **kw) -> int:
    sub = await sched.subscribe(
        guild_id=kw.get("guild_id", GUILD),
        channel_id=kw.get("channel_id", CHANNEL),
        playlist_ref=LINK,
        playlist_id=kw.get("playlist_id", "3S03NWbWkrR1e7DPH9rf9Z"),
        schedule=schedule,
        k=3,
        created_by=USER,
    )
    return sub.id


async def _tick(sched: DigestScheduler) -> list:
    return [await t for t in await sched.tick()]


async def test_fires_at_local_time_then_posts_changes_and_unchanged(db: Database) -> None:
    playlists = _by_playlist()
    base = playlists["Neo-Soul"][:30] + playlists["Trap Nation"][:30]
    edited = base[5:] + playlists["Vibra Tropical"][:8]
    queue = ScriptedQueue(db, [_snapshot(base, "s1"), _snapshot(edited, "s2"), "same"])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 7, 0))  # 08:00 in Paris
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    sub_id = await _subscribe(sched, Schedule.build("daily", "09:00", "Europe/Paris"))
    assert (await sched.subs.get(sub_id)).next_run_at == "2026-11-23T08:00:00+00:00"
    assert await sched.next_delay() == 3600.0

    clock.set(utc(2026, 11, 23, 7, 59, 59))
    assert await sched.tick() == []
    clock.set(utc(2026, 11, 23, 8, 0))
    results = await _tick(sched)
    assert [r.status for r in results] == ["posted"]
    first = poster.messages[-1]
    assert first.kind == "digest" and first.changes is None and first.outcome.analysis.k == 3
    assert queue.requests[0].link == LINK and queue.requests[0].guild_id == GUILD
    assert queue.requests[0].origin == "digest" and queue.requests[0].channel_id == CHANNEL
    assert queue.requests[0].user_id == USER and queue.requests[0].k == 3
    sub = await sched.subs.get(sub_id)
    assert sub.next_run_at == "2026-11-24T08:00:00+00:00"
    assert sub.last_snapshot_id == "s1" and sub.last_status == "posted"

    # Next day: the playlist changed → full digest with the change summary.
    clock.set(utc(2026, 11, 24, 8, 0, 30))
    await _tick(sched)
    second = poster.messages[-1]
    assert second.kind == "digest"
    assert second.changes is not None
    assert {c.track_id for c in second.changes.removed} == {t.id for t in base[:5]}
    assert {c.track_id for c in second.changes.added} == {
        t.id for t in playlists["Vibra Tropical"][:8]
    }
    assert second.since == "2026-11-23T08:00:00+00:00"

    # Day after: same snapshot → the queue reuses the stored analysis → brief message.
    clock.set(utc(2026, 11, 25, 8, 0))
    results = await _tick(sched)
    assert results[0].status == "unchanged"
    third = poster.messages[-1]
    assert third.kind == "unchanged" and third.changes is None
    assert third.since == "2026-11-24T08:00:30+00:00"
    sub = await sched.subs.get(sub_id)
    assert sub.last_status == "no changes" and sub.last_snapshot_id == "s2"
    assert sub.last_posted_at == "2026-11-24T08:00:30+00:00"
    assert poster.kinds() == ["digest", "digest", "unchanged"]


async def test_an_unchanged_playlist_is_said_once_not_every_slot(db: Database) -> None:
    """A daily digest of a playlist nobody edits posted "no changes since …" every day."""
    playlists = _by_playlist()
    base = playlists["Neo-Soul"][:30] + playlists["Trap Nation"][:30]
    edited = base[5:]
    queue = ScriptedQueue(db, [_snapshot(base, "s1"), "same", "same", "same", "same"])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 22, 9, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    sub_id = await _subscribe(sched, Schedule.build("daily", "08:00", "UTC"))
    statuses = []
    for day in (23, 24, 25, 26):
        clock.set(utc(2026, 11, day, 8, 0))
        statuses += [r.status for r in await _tick(sched)]
    assert statuses == ["posted", "unchanged", "unchanged", "unchanged"]
    assert poster.kinds() == ["digest", "unchanged"]  # said once
    sub = await sched.subs.get(sub_id)
    assert sub.last_status == "no changes" and sub.last_run_at == "2026-11-26T08:00:00+00:00"
    assert sub.last_posted_at == "2026-11-23T08:00:00+00:00"
    # /digest run always answers, in the channel too
    assert (await sched.run_now(GUILD, sub_id)).status == "unchanged"
    assert poster.kinds() == ["digest", "unchanged", "unchanged"]
    # then an edit: a full digest again, its changes counted from the last one posted
    queue.script.append(_snapshot(edited, "s2"))
    clock.set(utc(2026, 11, 27, 8, 0))
    assert [r.status for r in await _tick(sched)] == ["posted"]
    changed = poster.messages[-1]
    assert changed.kind == "digest" and changed.since == "2026-11-23T08:00:00+00:00"
    assert {c.track_id for c in changed.changes.removed} == {t.id for t in base[:5]}


async def test_weekly_digest_across_dst_change(db: Database) -> None:
    tracks = _by_playlist()["Neo-Soul"][:30]
    queue = ScriptedQueue(db, [_snapshot(tracks, "s1"), "same"])
    poster = Recorder()
    # Weekly Sunday 09:00 in Paris; DST ends Sunday 2026-10-25.
    clock = ManualClock(utc(2026, 10, 19, 12, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    sub_id = await _subscribe(sched, Schedule.build("weekly", "09:00", "Europe/Paris", "Sunday"))
    assert (await sched.subs.get(sub_id)).next_run_at == "2026-10-25T08:00:00+00:00"  # CET
    clock.set(utc(2026, 10, 25, 7, 0))  # 08:00 CET: an hour early in local terms
    assert await sched.tick() == []
    clock.set(utc(2026, 10, 25, 8, 0))
    assert [r.status for r in await _tick(sched)] == ["posted"]
    assert (await sched.subs.get(sub_id)).next_run_at == "2026-11-01T08:00:00+00:00"


async def test_missed_runs_fire_once_after_restart(db: Database, tmp_path: Path) -> None:
    tracks = _by_playlist()["Neo-Soul"][:30]
    clock = ManualClock(utc(2026, 11, 20, 12, 0))
    first = DigestScheduler(db, ScriptedQueue(db), poster=Recorder(), clock=clock)
    sub_id = await _subscribe(first, Schedule.build("daily", "18:00", "UTC"))
    await first.close()
    await db.close()

    # The bot was down for three days and a bit; it comes back on the 23rd at 19:00.
    reopened = await Database(tmp_path / "digests.sqlite3").open()
    try:
        queue = ScriptedQueue(reopened, [_snapshot(tracks, "s1")])
        poster = Recorder()
        later = ManualClock(utc(2026, 11, 23, 19, 0))
        sched = DigestScheduler(reopened, queue, poster=poster, clock=later)
        assert (await sched.subs.get(sub_id)).next_run_at == "2026-11-20T18:00:00+00:00"
        assert await sched.next_delay() == 0.0
        assert [r.status for r in await _tick(sched)] == ["posted"]
        assert await sched.tick() == []  # not once per missed day
        assert len(queue.requests) == 1
        assert (await sched.subs.get(sub_id)).next_run_at == "2026-11-24T18:00:00+00:00"
    finally:
        await reopened.close()


async def test_loop_sleeps_until_due_and_is_rearmed_by_changes(db: Database) -> None:
    tracks = _by_playlist()["Neo-Soul"][:30]
    queue = ScriptedQueue(db, [_snapshot(tracks, "s1")])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 7, 0))
    sched = DigestScheduler(db, queue, clock=clock)  # no owner yet: nothing runs
    try:
        sub_id = await _subscribe(sched, Schedule.build("daily", "07:30", "UTC"))
        clock.set(utc(2026, 11, 23, 8, 0))
        await asyncio.sleep(0)
        assert queue.requests == []  # nothing runs before the cog starts it with its poster
        await sched.start(poster)
        await asyncio.wait_for(sched.settle(), 30)
        assert poster.kinds() == ["digest"]

        # The loop is asleep (capped at an hour: until 09:00); a subscription due at 08:15
        # re-arms it — without that the clock reaching 08:15 would wake nothing.
        await _subscribe(sched, Schedule.build("daily", "08:15", "UTC"), channel_id=CHANNEL + 1)
        queue.script.append("same")
        clock.set(utc(2026, 11, 23, 8, 15))
        await asyncio.wait_for(sched.settle(), 30)
        assert poster.kinds() == ["digest", "digest"]  # the new subscription's first digest
        assert poster.messages[1].outcome.reused and poster.messages[1].changes is None
        assert len(queue.requests) == 2
        assert (await sched.subs.get(sub_id)).next_run_at == "2026-11-24T07:30:00+00:00"
    finally:
        await sched.close()
    assert not sched.running


async def _until(predicate, *, polls: int = 1000) -> None:
    """Poll ``predicate`` between event-loop turns (a guard, not a timing assertion)."""
    for _ in range(polls):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def test_loop_does_not_spin_on_a_due_subscription_that_is_busy(db: Database) -> None:
    """A /digest run still going when the slot comes: the loop waits for it instead of
    re-checking the table in a tight loop, then runs the slot."""
    tracks = _by_playlist()["Neo-Soul"][:30]
    queue = ScriptedQueue(db, [_snapshot(tracks, "s1"), "same"])
    gate = asyncio.Event()
    real_submit = queue.submit

    async def gated_submit(request, progress=None):
        await gate.wait()
        return await real_submit(request, progress)

    queue.submit = gated_submit  # type: ignore[method-assign]
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 7, 59))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    due_calls = 0
    real_due = sched.subs.due

    async def counting_due(*args, **kwargs):
        nonlocal due_calls
        due_calls += 1
        return await real_due(*args, **kwargs)

    sched.subs.due = counting_due  # type: ignore[method-assign]
    await sched.start()
    try:
        sub_id = await _subscribe(sched, Schedule.build("daily", "08:00", "UTC"))
        manual = asyncio.ensure_future(sched.run_now(GUILD, sub_id))
        await asyncio.sleep(0)
        clock.set(utc(2026, 11, 23, 8, 0))
        # The loop goes back to a long sleep (registered after 08:00, so until 09:00) although
        # the subscription is due: it is busy. A spinning loop never sleeps on the clock.
        await _until(lambda: (clock.next_wake or clock.now()) >= utc(2026, 11, 23, 9, 0))
        calls = due_calls
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert due_calls == calls
        assert queue.requests == [] and not manual.done()
        gate.set()
        assert (await asyncio.wait_for(manual, 30)).status == "posted"
        await asyncio.wait_for(sched.settle(), 30)
        assert len(queue.requests) == 2  # the manual run, then the 08:00 slot
        assert poster.kinds() == ["digest", "unchanged"]
    finally:
        await sched.close()


async def test_unreadable_playlist_pauses_and_reports_once(db: Database) -> None:
    queue = ScriptedQueue(db, [NotOwner("This playlist is private to its owner.")])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 7, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    sub_id = await _subscribe(sched, Schedule.build("daily", "08:00", "UTC"))
    clock.set(utc(2026, 11, 23, 8, 0))
    assert [r.status for r in await _tick(sched)] == ["paused"]
    sub = await sched.subs.get(sub_id)
    assert sub.paused and sub.pause_reason.startswith("the bot can't read this playlist any more")
    assert poster.kinds() == ["paused"]
    assert poster.messages[0].text == sub.pause_reason
    # Not retried, not reported again — for days.
    for day in range(1, 4):
        clock.set(utc(2026, 11, 23 + day, 8, 0))
        assert await sched.tick() == []
    assert poster.kinds() == ["paused"] and len(queue.requests) == 1
    assert await sched.next_delay() is None
    with pytest.raises(DigestError, match="paused"):
        await sched.run_now(GUILD, sub_id)

    resumed = await sched.resume(GUILD, sub_id)
    assert not resumed.paused and resumed.pause_reason is None
    assert resumed.next_run_at == "2026-11-27T08:00:00+00:00"
    with pytest.raises(DigestError, match="not paused"):
        await sched.resume(GUILD, sub_id)


async def test_vanished_channel_pauses_and_reports_once(db: Database) -> None:
    tracks = _by_playlist()["Neo-Soul"][:30]
    queue = ScriptedQueue(db, [_snapshot(tracks, "s1")])
    poster = Recorder()
    poster.channel_gone = True
    clock = ManualClock(utc(2026, 11, 23, 8, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    sub_id = await _subscribe(sched, Schedule.build("daily", "08:00", "UTC"))
    clock.set(utc(2026, 11, 24, 8, 0))
    assert [r.status for r in await _tick(sched)] == ["paused"]
    sub = await sched.subs.get(sub_id)
    assert sub.paused and "channel" in sub.pause_reason
    assert poster.kinds() == ["paused"]
    assert sub.last_analysis_id is None  # nothing was delivered
    clock.set(utc(2026, 11, 25, 8, 0))
    assert await sched.tick() == []
    assert poster.kinds() == ["paused"]


async def test_transient_errors_retry_after_the_wait_not_a_slot_later(db: Database) -> None:
    """A Spotify quota or outage at a digest's time cost the whole slot: a weekly digest was
    skipped for a week over a short outage. It is retried, quietly, once Spotify's Retry-After
    has passed (an outage: within the hour), never later than the next slot."""
    tracks = _by_playlist()["Neo-Soul"][:30]
    quota = QuotaExceeded("The bot has used up its Spotify API quota.", retry_after=3 * 3600)
    outage = SpotifyUnavailable("Spotify is having trouble right now.")
    queue = ScriptedQueue(db, [quota, outage, _snapshot(tracks, "s1")])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 7, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    sub_id = await _subscribe(sched, Schedule.build("weekly", "08:00", "UTC", "mon"))
    clock.set(utc(2026, 11, 23, 8, 0))
    assert [r.status for r in await _tick(sched)] == ["skipped"]
    sub = await sched.subs.get(sub_id)
    assert sub.next_run_at == "2026-11-23T11:00:00+00:00"  # after the 3 hours asked for
    assert not sub.paused and sub.last_status.startswith("skipped: The bot has used up")
    clock.set(utc(2026, 11, 23, 11, 0))
    assert [r.status for r in await _tick(sched)] == ["skipped"]
    assert (await sched.subs.get(sub_id)).next_run_at == "2026-11-23T12:00:00+00:00"
    clock.set(utc(2026, 11, 23, 12, 0))
    assert [r.status for r in await _tick(sched)] == ["posted"]
    assert (await sched.subs.get(sub_id)).next_run_at == "2026-11-30T08:00:00+00:00"
    assert poster.kinds() == ["digest"] and len(queue.requests) == 3


async def test_a_wait_past_the_next_slot_waits_for_that_slot(db: Database) -> None:
    tracks = _by_playlist()["Neo-Soul"][:30]
    limited = RateLimited("Spotify is rate limiting the bot.", retry_after=30 * 3600)
    queue = ScriptedQueue(db, [limited, _snapshot(tracks, "s1")])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 8, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    sub_id = await _subscribe(sched, Schedule.build("daily", "08:00", "UTC"))
    clock.set(utc(2026, 11, 24, 8, 0))
    assert [r.status for r in await _tick(sched)] == ["skipped"]
    sub = await sched.subs.get(sub_id)
    assert not sub.paused and sub.last_status.startswith("skipped: Spotify is rate limiting")
    assert sub.next_run_at == "2026-11-25T08:00:00+00:00"
    assert poster.messages == []
    clock.set(utc(2026, 11, 25, 8, 0))
    assert [r.status for r in await _tick(sched)] == ["posted"]


async def test_job_limit_retries_within_minutes_not_next_slot(db: Database) -> None:
    tracks = _by_playlist()["Neo-Soul"][:30]
    busy = LimitReached("You already have 2 analyses running; wait for one to finish.")
    queue = ScriptedQueue(db, [busy, _snapshot(tracks, "s1")])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 8, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    sub_id = await _subscribe(sched, Schedule.build("daily", "08:00", "UTC"))
    clock.set(utc(2026, 11, 24, 8, 0))
    assert [r.status for r in await _tick(sched)] == ["skipped"]
    sub = await sched.subs.get(sub_id)
    assert sub.next_run_at == "2026-11-24T08:05:00+00:00" and not sub.paused
    assert poster.messages == []
    clock.set(utc(2026, 11, 24, 8, 5))
    assert [r.status for r in await _tick(sched)] == ["posted"]
    assert (await sched.subs.get(sub_id)).next_run_at == "2026-11-25T08:00:00+00:00"


async def test_pipeline_problem_is_said_once_then_retried(db: Database) -> None:
    small = TooSmall("This playlist has only 4 playable tracks with features.")
    queue = ScriptedQueue(db, [small, TooSmall(small.user_message)])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 8, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    await _subscribe(sched, Schedule.build("daily", "08:00", "UTC"))
    for day in (24, 25):
        clock.set(utc(2026, 11, day, 8, 0))
        assert [r.status for r in await _tick(sched)] == ["skipped"]
    assert poster.kinds() == ["skipped"]
    # The notice knows when the next try is (the claimed slot, not the one that just ran).
    assert poster.messages[0].subscription.next_run_at == "2026-11-25T08:00:00+00:00"
    assert len(queue.requests) == 2


async def test_run_now_keeps_schedule_and_commands_are_guild_scoped(db: Database) -> None:
    tracks = _by_playlist()["Neo-Soul"][:30]
    queue = ScriptedQueue(db, [_snapshot(tracks, "s1")])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 7, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock, max_per_guild=2)
    schedule = Schedule.build("weekly", "08:00", "UTC")
    sub_id = await _subscribe(sched, schedule)
    before = (await sched.subs.get(sub_id)).next_run_at
    result = await sched.run_now(GUILD, sub_id)
    assert result.status == "posted" and poster.messages[0].manual
    sub = await sched.subs.get(sub_id)
    assert sub.next_run_at == before and sub.last_analysis_id == result.analysis_id

    with pytest.raises(DigestError, match="no digest #"):
        await sched.run_now(GUILD + 1, sub_id)
    with pytest.raises(DigestError, match="no digest #"):
        await sched.unsubscribe(GUILD + 1, sub_id)
    with pytest.raises(DigestError, match="already gets a digest"):
        await _subscribe(sched, schedule)
    await _subscribe(sched, schedule, channel_id=CHANNEL + 1)
    with pytest.raises(DigestError, match="maximum"):
        await _subscribe(sched, schedule, channel_id=CHANNEL + 2)
    assert [s.id for s in await sched.subscriptions(GUILD)] == [sub_id, sub_id + 1]
    assert await sched.subscriptions(GUILD + 1) == []
    removed = await sched.unsubscribe(GUILD, sub_id)
    assert removed.id == sub_id
    assert [s.id for s in await sched.subscriptions(GUILD)] == [sub_id + 1]


def test_iso_roundtrip_sorts_as_time() -> None:
    a = iso(datetime(2026, 3, 8, 3, 30, tzinfo=ZoneInfo("America/New_York")))
    assert a == "2026-03-08T07:30:00+00:00"
    assert parse_iso(a) == utc(2026, 3, 8, 7, 30)
    later = iso(utc(2026, 3, 8, 7, 30) + timedelta(seconds=1))
    assert a < later


# --- end to end: the real job queue and pipeline against the fake Spotify -----------------


async def _real_queue(tmp_path: Path, fake) -> tuple[Database, object]:
    """Database + started JobQueue: real fetch (user USER = alice), features, clustering."""
    from bot.jobs import JobQueue
    from bot.pipeline import PipelineContext
    from bot.sources.spotify import SpotifyGateway
    from storage.store import Store
    from tests.fakes.spotify_fixtures import spotify_settings

    settings = spotify_settings(fake, worker_processes=0)

    async def user_tokens(user_id: int) -> str | None:
        return fake.alice_token if user_id == USER else None

    database = await Database(tmp_path / "e2e.sqlite3").open()
    store = Store(database, feature_cache_days=settings.feature_cache_days)
    ctx = PipelineContext(
        settings=settings,
        spotify=SpotifyGateway(settings),
        feature_cache=store.features,
        user_tokens=user_tokens,
    )
    queue = JobQueue(store, ctx, settings)
    await queue.start()
    return database, queue


@contextlib.asynccontextmanager
async def real_digests(tmp_path: Path, fake) -> AsyncIterator[SimpleNamespace]:
    """A DigestScheduler on the real queue (:func:`_real_queue`), posting to a Recorder, its
    ManualClock at 2026-11-23 06:00 UTC; everything closed at the end."""
    database, queue = await _real_queue(tmp_path, fake)
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 6, 0))
    sched = DigestScheduler(database, queue, poster=poster, clock=clock)
    try:
        yield database, queue, poster, clock, sched
    finally:
        await sched.close()
        await queue.close()  # type: ignore[attr-defined]
        await database.close()


async def test_digests_of_a_changing_playlist_through_the_real_queue(
    tmp_path: Path, fake_spotify_extended
) -> None:
    """Alice's real 60-track playlist, digested daily: then 8 tracks removed and 12 added
    (snapshot changes), then nothing changed (snapshot reused: no refetch, no clustering)."""
    fake = fake_spotify_extended
    pid = fake.alice_playlist
    playlist = fake.playlists[pid]
    async with real_digests(tmp_path, fake) as (database, _, poster, clock, sched):
        sub = await sched.subscribe(
            guild_id=GUILD,
            channel_id=CHANNEL,
            playlist_ref=f"https://open.spotify.com/playlist/{pid}",
            playlist_id=pid,
            schedule=Schedule.build("daily", "07:00", "Europe/London"),
            k=4,
            created_by=USER,
        )
        clock.set(utc(2026, 11, 23, 7, 0))
        assert [r.status for r in await _tick(sched)] == ["posted"]
        first = poster.messages[-1].outcome
        assert len(first.analysis.tracks) == 60 and first.analysis.k == 4
        assert first.rendered.png.startswith(b"\x89PNG")
        assert (await sched.subs.get(sub.id)).playlist_name == "Alice's mix"

        removed, added = playlist.entries[:8], fake.track_ids()[60:72]
        playlist.entries = playlist.entries[8:] + added
        playlist.snapshot_n += 1
        clock.set(utc(2026, 11, 24, 7, 0))
        assert [r.status for r in await _tick(sched)] == ["posted"]
        message = poster.messages[-1]
        changes = message.changes
        assert message.kind == "digest" and changes is not None
        assert sorted(c.track_id for c in changes.added) == sorted(added)
        assert sorted(c.track_id for c in changes.removed) == sorted(removed)
        current = message.outcome.analysis
        assert all(c.cluster == current.assignments[c.track_id] for c in changes.added)
        assert sum(c.delta for c in changes.clusters) - sum(
            v.previous_size for v in changes.vanished
        ) == len(added) - len(removed)
        analyses = await database.fetchone("SELECT count(*) FROM analyses")

        fake.clear_log()
        clock.set(utc(2026, 11, 25, 7, 0))
        assert [r.status for r in await _tick(sched)] == ["unchanged"]
        assert poster.messages[-1].kind == "unchanged"
        assert poster.messages[-1].outcome.reused
        assert fake.count(f"/v1/playlists/{pid}/items") == 0  # not refetched
        assert (await database.fetchone("SELECT count(*) FROM analyses"))[0] == analyses[0]
        assert poster.kinds() == ["digest", "digest", "unchanged"]


async def test_unreadable_playlist_through_the_real_queue_pauses(
    tmp_path: Path, fake_spotify
) -> None:
    """Development mode: a playlist alice does not own answers 403 → NotOwner → paused."""
    fake = fake_spotify
    other = next(p for p in fake.playlists.values() if p.owner_id == "tidytuesday")
    async with real_digests(tmp_path, fake) as (_, _, poster, clock, sched):
        sub = await sched.subscribe(
            guild_id=GUILD,
            channel_id=CHANNEL,
            playlist_ref=f"spotify:playlist:{other.id}",
            playlist_id=other.id,
            schedule=Schedule.build("daily", "07:00", "UTC"),
            k=None,
            created_by=USER,
        )
        clock.set(utc(2026, 11, 23, 7, 0))
        assert [r.status for r in await _tick(sched)] == ["paused"]
        paused = await sched.subs.get(sub.id)
        assert paused.paused and paused.pause_reason
        assert poster.kinds() == ["paused"]
        clock.set(utc(2026, 11, 24, 7, 0))
        assert await sched.tick() == []
