"""Compare-and-set claims: a job is started by one process, never two.

One instance per database is enforced by a lock (tests/test_instance_lock.py); these claims
are the second line: where the lock cannot reach (a network file system), two processes that
both read the same unfinished job still run it once. (Due digests: tests/test_shards.py.)
"""

from __future__ import annotations

import asyncio

from bot.jobs import JobQueue
from bot.models import AnalysisRequest
from bot.pipeline import PipelineContext
from storage.db import Database
from storage.store import Store
from tests.jobs_fakes import FakePipeline, Recorder, job_settings, link


async def test_a_job_attempt_is_claimed_once(tmp_path) -> None:
    async with Database(tmp_path / "c.sqlite3") as db:
        jobs = Store(db).jobs
        job_id = await jobs.create("k", AnalysisRequest(link=link(1)))
        assert await jobs.start_attempt(job_id, seen=0) == 1
        assert await jobs.start_attempt(job_id, seen=0) is None  # the other process lost
        assert await jobs.start_attempt(job_id, seen=1) == 2
        await jobs.fail(job_id, "x", "failed")
        assert await jobs.start_attempt(job_id, seen=2) is None  # ended jobs are not claimed


async def test_a_resumed_job_another_process_took_is_left_alone(tmp_path, monkeypatch) -> None:
    """Two bots on one database both resumed the same jobs (4 analyses for 2 jobs)."""
    fake = FakePipeline().install(monkeypatch)
    path = tmp_path / "two.sqlite3"
    settings = job_settings()
    async with Database(path) as db:
        jobs = Store(db).jobs
        ids = [await jobs.create(f"k{i}", AnalysisRequest(link=link(i))) for i in (1, 2)]
        for job_id in ids:
            await jobs.set_state(job_id, "fetching", {})

    db = await Database(path).open()
    other = await Database(path).open()  # "the other process"
    store = Store(db)
    read_unfinished = store.jobs.unfinished

    async def unfinished_then_raced():
        rows = await read_unfinished()  # what this process saw...
        await Store(other).jobs.start_attempt(ids[0], seen=0)  # ...then the other claimed one
        return rows

    monkeypatch.setattr(store.jobs, "unfinished", unfinished_then_raced)
    rec = Recorder()
    queue = JobQueue(store, PipelineContext(settings=settings), settings)
    queue.add_listener(rec.listener)
    try:
        await queue.start()
        await asyncio.wait_for(rec.ended_event.wait(), 60)
        await asyncio.sleep(0)
        assert [job_id for job_id, _o, _e in rec.ended] == [ids[1]]
        assert fake.calls["fetch"] == 1  # only the job this process claimed ran
        assert queue.active_job_ids == []
        first = await store.jobs.get(ids[0])
        assert first.state == "fetching" and first.attempts == 1  # the other one's
    finally:
        await queue.close()
        await other.close()
        await db.close()
