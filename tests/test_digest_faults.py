"""Digests under faults: bot-wide failures, public pause wording (issue 14, digests)."""

from __future__ import annotations

import logging

import pytest

from bot.digests import DigestScheduler, Schedule
from bot.digests.scheduler import public_reason
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
    ],
)
def test_pause_reasons_are_worded_for_a_public_post(err) -> None:
    """The reasons spoke to the member who asked ("attach the CSV here", "your account")."""
    reason = public_reason(err)
    low = reason.lower()
    assert "your" not in low and "attach" not in low and " here" not in low
    assert reason != err.user_message


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
