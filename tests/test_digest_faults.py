"""Digests under faults: bot-wide failures, public pause wording (issue 14, digests)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.digests import DigestScheduler, Schedule
from bot.digests.messages import public_reason
from bot.errors import (
    AppAuthError,
    AuthError,
    EditorialPlaylist,
    InvalidLink,
    NotFound,
    NotOwner,
    RelinkRequired,
    TooLarge,
)
from bot.sources.spotify.errors import (
    APP_CREDENTIALS_MESSAGE,
    EDITORIAL_MESSAGE,
    NOT_OWNER_MESSAGE,
    NOT_REGISTERED_MESSAGE,
    NotRegistered,
)
from storage.db import Database
from tests.manual_clock import ManualClock
from tests.test_digests import Recorder, ScriptedQueue, _by_playlist, _snapshot, _subscribe, utc


@pytest.fixture
async def db(tmp_path):
    database = await Database(tmp_path / "faults.sqlite3").open()
    yield database
    await database.close()


async def test_rejected_app_credentials_pause_nothing_and_retry_hourly(db, caplog) -> None:
    """The app's credentials rejected paused every digest in every server."""
    tracks = _by_playlist()["Neo-Soul"][:30]
    queue = ScriptedQueue(db, [AppAuthError(APP_CREDENTIALS_MESSAGE), _snapshot(tracks, "s1")])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 7, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    sub_id = await _subscribe(sched, Schedule.build("weekly", "08:00", "UTC", "mon"))
    clock.set(utc(2026, 11, 23, 8, 0))
    with caplog.at_level(logging.ERROR, logger="bot.digests.scheduler"):
        assert [r.status for r in await _tick_all(sched)] == ["skipped"]
    sub = await sched.subs.get(sub_id)
    assert not sub.paused and poster.kinds() == []  # nothing said in any server
    assert sub.next_run_at == "2026-11-23T09:00:00+00:00"  # within the hour, not next week
    assert "SPOTIFY_CLIENT_ID" in caplog.text  # the operator is told
    clock.set(utc(2026, 11, 23, 9, 0))  # the operator fixed the credentials
    assert [r.status for r in await _tick_all(sched)] == ["posted"]
    assert (await sched.subs.get(sub_id)).next_run_at == "2026-11-30T08:00:00+00:00"


async def _tick_all(sched: DigestScheduler) -> list:
    return [await t for t in await sched.tick()]


@pytest.mark.parametrize(
    "err",
    [
        NotOwner(NOT_OWNER_MESSAGE),
        RelinkRequired("Your Spotify link expired. Run `/spotify link` again."),
        AuthError("Spotify didn't accept your linked account's sign-in."),
        NotFound("Spotify couldn't find that playlist."),
        EditorialPlaylist(EDITORIAL_MESSAGE),
        InvalidLink("That's not a playlist link."),
        TooLarge("That playlist has 12,000 tracks; the limit is 10,000."),
        NotRegistered(NOT_REGISTERED_MESSAGE),
    ],
)
def test_pause_reasons_are_worded_for_a_public_post(err) -> None:
    """The reasons spoke to the member who asked ("attach the CSV here", "your account")."""
    reason = public_reason(err)
    low = reason.lower()
    assert "your" not in low and "attach" not in low and " here" not in low
    assert reason != err.user_message


def test_a_creator_taken_off_the_apps_user_list_is_not_told_to_link_again() -> None:
    """Relinking can't help a member the app's owner took off *User Management*: the
    pause said "That member can `/spotify link` again"."""
    reason = public_reason(NotRegistered(NOT_REGISTERED_MESSAGE))
    assert "User Management" in reason and "/spotify link" not in reason


async def test_a_paused_digest_says_so_publicly_without_second_person(db) -> None:
    queue = ScriptedQueue(db, [NotOwner(NOT_OWNER_MESSAGE)])
    poster = Recorder()
    clock = ManualClock(utc(2026, 11, 23, 7, 0))
    sched = DigestScheduler(db, queue, poster=poster, clock=clock)
    await _subscribe(sched, Schedule.build("daily", "08:00", "UTC"))
    clock.set(utc(2026, 11, 23, 8, 0))
    await _tick_all(sched)
    [paused] = poster.messages
    assert paused.kind == "paused" and "attach" not in paused.text and "your" not in paused.text


class HangingQueue:
    """A job queue whose jobs never end (the process is killed while the digest runs)."""

    def __init__(self) -> None:
        self.submitted = asyncio.Event()

    async def submit(self, request, progress=None):
        self.submitted.set()
        await asyncio.Event().wait()


async def test_a_run_interrupted_by_a_crash_is_run_again_at_start(db, tmp_path) -> None:
    """It was lost until the next slot: a week later for a weekly digest."""
    tracks = _by_playlist()["Neo-Soul"][:30]
    clock = ManualClock(utc(2026, 11, 23, 7, 0))
    first = DigestScheduler(db, HangingQueue(), poster=Recorder(), clock=clock)
    sub_id = await _subscribe(first, Schedule.build("weekly", "08:00", "UTC", "mon"))
    clock.set(utc(2026, 11, 23, 8, 0))
    [task] = await first.tick()
    await asyncio.wait_for(first.queue.submitted.wait(), 10)
    claimed = await first.subs.get(sub_id)
    assert claimed.claimed_at == "2026-11-23T08:00:00+00:00"
    assert claimed.next_run_at == "2026-11-30T08:00:00+00:00"
    await first.close()  # what SQLite holds is what a kill -9 leaves: the claim, no outcome
    assert task.cancelled()

    queue = ScriptedQueue(db, [_snapshot(tracks, "s1")])
    poster = Recorder()
    clock.set(utc(2026, 11, 23, 8, 5))  # restarted five minutes later
    second = DigestScheduler(db, queue, poster=poster, clock=clock)
    await second.start()
    try:
        await asyncio.wait_for(_until(lambda: poster.kinds() == ["digest"]), 10)
        await asyncio.wait_for(second.settle(), 10)  # its outcome is recorded after the post
        sub = await second.subs.get(sub_id)
        assert sub.claimed_at is None and sub.last_status == "posted"
        assert sub.next_run_at == "2026-11-30T08:00:00+00:00"  # the schedule is unchanged
        assert len(queue.requests) == 1
    finally:
        await second.close()


async def _until(predicate) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)


def _grouped(tracks, groups: list[list[int]]):
    """An analysis of ``tracks`` whose cluster i holds the tracks at positions groups[i]."""
    from dataclasses import replace

    from bot.models import Cluster
    from tests.storage_helpers import make_analysis, make_fetch

    fetched = make_fetch(0)
    fetched = replace(fetched, tracks=[tracks[i] for g in groups for i in g])
    analysis = make_analysis(fetched, k=len(groups))
    analysis.assignments = {tracks[i].id: c for c, g in enumerate(groups) for i in g}
    analysis.clusters = [
        Cluster(c, f"Cluster {c + 1} · x{c}", "", len(g), {}, [tracks[i].id for i in g], [])
        for c, g in enumerate(groups)
    ]
    return analysis


def test_digest_wording_merged_removed_and_one_track() -> None:
    """A regroup said clusters "are gone" when they merged; a removed track from such a
    cluster said "(was in no cluster)"; a new cluster of one said "(1 tracks)"."""
    from bot.digests import summarize_changes
    from cogs.utils.digest_embeds import changes_embed
    from tests.storage_helpers import make_fetch

    tracks = make_fetch(13).tracks
    before = _grouped(tracks, [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10, 11]])
    # Clusters 1 and 2 merged (track 6 left the playlist); track 12 is new, alone.
    after = _grouped(tracks, [[7, 8, 9, 10, 11], [0, 1, 2, 3, 4, 5], [12]])
    changes = summarize_changes(before, after)
    text = "\n".join(f.value for f in changes_embed(changes, since=None).fields)
    assert "merged into 2 · x1" in text and "is gone" not in text
    assert "1 track (new)" in text and "1 tracks" not in text
    [removed] = changes.removed
    assert "no cluster" not in text
    assert f"(was in {removed.previous_cluster + 1} · " in text
