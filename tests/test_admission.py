"""The global bound on jobs in flight (all servers and DMs) and the queue position users see."""

from __future__ import annotations

import asyncio

import pytest

from bot.jobs.admission import Admission, queued_message
from bot.models import AnalysisRequest
from tests.jobs_fakes import FakePipeline, Recorder, job_settings, link, open_queue


async def _until(predicate, what: str) -> None:
    for _ in range(2000):  # hang guard: 20 s
        if predicate():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"never happened: {what}")


async def test_waiters_are_admitted_in_order_and_told_their_place() -> None:
    adm = Admission(1)
    told: dict[str, list[int]] = {"b": [], "c": [], "d": []}
    order: list[str] = []
    gates = {name: asyncio.Event() for name in "abcd"}

    async def job(name: str) -> None:
        async def tell(ahead: int) -> None:
            told[name].append(ahead)

        async with adm.slot(tell):
            order.append(name)
            await gates[name].wait()

    tasks = {name: asyncio.create_task(job(name)) for name in "abcd"}
    await _until(lambda: adm.waiting == 3, "three waiting")
    assert order == ["a"] and adm.active == 1
    tasks["c"].cancel()  # leaves the line: d moves up
    await _until(lambda: told["d"] == [2, 1], "d told it moved up")
    gates["a"].set()
    await _until(lambda: order == ["a", "b"], "b admitted")
    await _until(lambda: told["d"] == [2, 1, 0], "d next")
    gates["b"].set()
    gates["d"].set()
    await asyncio.gather(tasks["a"], tasks["b"], tasks["d"])
    assert order == ["a", "b", "d"]
    assert told == {"b": [0], "c": [1], "d": [2, 1, 0]}
    assert adm.active == 0 and adm.waiting == 0


async def test_no_bound_when_the_limit_is_zero() -> None:
    adm = Admission(0)
    async with adm.slot(_never), adm.slot(_never), adm.slot(_never):
        assert adm.active == 3


async def _never(ahead: int) -> None:
    raise AssertionError("nobody waits without a bound")


def test_queued_message() -> None:
    assert queued_message(0) == "Queued: next in line (the bot is busy with other analyses)"
    assert queued_message(1) == "Queued: 1 analysis ahead of this one"
    assert queued_message(4) == "Queued: 4 analyses ahead of this one"


async def test_jobs_past_the_global_bound_wait_with_their_position(tmp_path, monkeypatch):
    """100 servers used to mean 100 concurrent jobs, and DMs had no server limit at all."""
    fake = FakePipeline().install(monkeypatch)
    gate = fake.hold("fetch")
    db, store, queue = await open_queue(tmp_path / "g.sqlite3", job_settings(max_jobs_total=2))
    recs = [Recorder() for _ in range(4)]
    try:
        handles = [
            await queue.submit(
                # four members: two servers and two DMs (no server limit applies to those)
                AnalysisRequest(link=link(i), user_id=i, guild_id=(i if i < 2 else None)),
                recs[i].progress,
            )
            for i in range(4)
        ]
        await _until(lambda: fake.calls["fetch"] == 2 and queue.admission.waiting == 2, "2+2")
        await _until(lambda: recs[3].events[-1].message is not None, "position of the 4th")
        assert recs[2].events[-1].message == queued_message(0)
        assert recs[3].events[-1].message == queued_message(1)
        assert all(e.stage == "queued" for r in recs[2:] for e in r.events)
        jobs = [await store.jobs.get(h.job_id) for h in handles]
        assert [j.state for j in jobs][2:] == ["queued", "queued"]
        assert [j.attempts for j in jobs] == [1, 1, 0, 0]  # waiting is not a start
        gate.set()
        for handle in handles:
            await asyncio.wait_for(handle.result(), 60)
        assert fake.calls["fetch"] == 4
        assert recs[3].events[-1].stage == "done"
        assert queue.admission.active == 0
    finally:
        await queue.close()
        await db.close()


def test_the_progress_message_shows_the_place_in_line() -> None:
    from bot.models import Progress
    from cogs.utils.progress import progress_text

    assert progress_text(Progress("queued")) == "⏳ Queued…"
    waiting = Progress("queued", message=queued_message(2))
    assert progress_text(waiting) == "⏳ Queued: 2 analyses ahead of this one…"
