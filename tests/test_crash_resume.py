"""kill -9 a process in the middle of a job; the next JobQueue.start() finishes it.

The child (tests/crash_worker.py) runs the real pipeline on the bundled demo (no network) and
freezes right after committing a chosen step; the parent kills it with SIGKILL, checks what
SQLite holds, then resumes in-process with the earlier steps booby-trapped: the job must
finish from its checkpoint without running them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.models import AnalysisRequest
from tests.jobs_fakes import Recorder, open_queue, sample_csv, step_module

ROOT = Path(__file__).resolve().parents[1]
# Steps that must not run again when resuming after each committed state.
ALREADY_DONE: dict[str, tuple[str, ...]] = {
    "fetching": (),
    "featurizing": ("fetch_step",),
    "clustering": ("fetch_step", "featurize_step"),
    "rendering": ("fetch_step", "featurize_step", "cluster_step"),
}


async def run_child_until_paused(db_path: Path, pause: str, request: AnalysisRequest) -> int:
    marker = db_path.with_suffix(".paused")
    errors = db_path.with_suffix(".stderr")
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    with errors.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.crash_worker",
            str(db_path),
            pause,
            str(marker),
            json.dumps(request.to_dict()),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )
        try:
            # Hang guard only (the child pauses at a known point; no timing is asserted).
            async with asyncio.timeout(300):
                while not marker.exists():
                    if proc.returncode is not None:
                        pytest.fail(f"child exited {proc.returncode}: {errors.read_text()}")
                    await asyncio.sleep(0.05)
        finally:
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return int(marker.read_text())


@pytest.mark.parametrize(
    ("pause", "source"),
    [("fetching", "csv"), ("featurizing", "demo"), ("rendering", "demo"), ("rendering", "csv")],
)
async def test_kill_9_mid_job_then_resume(tmp_path, monkeypatch, pause, source):
    """Killed after committing ``pause``; a CSV job killed while fetching re-reads its text."""
    db_path = tmp_path / "crash.sqlite3"
    ids = {"user_id": 1, "guild_id": 2, "channel_id": 3}
    if source == "csv":
        request = AnalysisRequest(csv_text=sample_csv(), csv_name="mix.csv", **ids)
    else:
        request = AnalysisRequest(demo=True, **ids)
    job_id = await run_child_until_paused(db_path, pause, request)

    def booby_trap(name):
        def trap(*args, **kwargs):
            raise AssertionError(f"{name} ran again after the crash")

        return trap

    for name in ALREADY_DONE[pause]:
        monkeypatch.setattr(step_module(name), name, booby_trap(name))

    rec = Recorder()
    db, store, queue = await open_queue(tmp_path / "crash.sqlite3", listener=rec.listener)
    try:
        await asyncio.wait_for(rec.ended_event.wait(), 300)
        ended_id, outcome, error = rec.ended[0]
        assert error is None, error
        assert ended_id == job_id and not outcome.reused
        assert outcome.rendered.png.startswith(b"\x89PNG")
        assert len(outcome.analysis.tracks) > 100
        job = await store.jobs.get(job_id)
        assert job.state == "done" and job.analysis_id == outcome.analysis_id
        assert job.attempts == 2  # the killed run, and this one
        assert job.request.channel_id == 3  # where the Discord layer posts the result
        stored = await store.analyses.get(outcome.analysis_id)
        assert stored.to_dict() == outcome.analysis.to_dict()
    finally:
        await queue.close()
        await db.close()


async def test_killed_state_is_what_was_committed(tmp_path):
    """What SQLite holds after the kill: the paused state and its checkpoint, nothing later."""
    from storage.db import Database
    from storage.store import Store

    db_path = tmp_path / "state.sqlite3"
    job_id = await run_child_until_paused(db_path, "clustering", AnalysisRequest(demo=True))
    async with Database(db_path) as db:
        job = await Store(db).jobs.get(job_id)
        assert job.state == "clustering" and job.attempts == 1
        assert set(job.checkpoint) == {"fetch", "features"}
        assert (await db.fetchone("SELECT count(*) FROM analyses"))[0] == 0
        fetched = await Store(db).snapshots.load(
            job.checkpoint["fetch"]["playlist_id"], job.checkpoint["fetch"]["snapshot"]
        )
        assert fetched is not None and len(fetched.tracks) == len(
            job.checkpoint["features"]["values"]
        )


async def test_job_whose_workers_keep_hanging_fails_clearly(tmp_path):
    """Every worker SIGSTOPped once the job is clustering (an operator's view of a stuck
    pool): the job stayed in ``clustering`` forever, holding the member's slot. Now the step
    times out, is retried once on a fresh worker, and the job fails with a clear message."""
    from tests.jobs_fakes import job_settings

    settings = job_settings(worker_processes=1, cpu_step_timeout_s=2)
    rec = Recorder()
    db, store, queue = await open_queue(tmp_path / "hang.sqlite3", settings, listener=rec.listener)
    stopped: set[int] = set()

    async def stop_workers() -> None:
        while True:
            for pid in set(queue.pool.worker_pids()) - stopped:
                os.kill(pid, signal.SIGSTOP)
                stopped.add(pid)
            await asyncio.sleep(0.02)

    async def progress(event) -> None:
        if event.stage == "clustering" and not stopper:
            stopper.append(asyncio.create_task(stop_workers()))

    stopper: list[asyncio.Task[None]] = []
    try:
        handle = await queue.submit(AnalysisRequest(demo=True, user_id=1), progress)
        await asyncio.wait_for(rec.ended_event.wait(), 300)  # hang guard
        _, outcome, error = rec.ended[0]
        assert outcome is None and error.code == "cpu_timeout"
        assert "took longer than 2 seconds, twice" in error.user_message
        job = await store.jobs.get(handle.job_id)
        assert job.state == "failed" and job.error_code == "cpu_timeout"
        assert len(stopped) == 2 and queue.pool.restarts == 2
        assert await store.jobs.count_active(user_id=1) == 0  # the member's slot is free
    finally:
        for task in stopper:
            task.cancel()
        for pid in stopped:  # the pool killed them; never leave a stopped process behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await queue.close()
        await db.close()


async def test_job_survives_its_worker_being_killed(tmp_path):
    """kill -9 of the worker while the job is clustering failed it with an incident id; the
    pool is rebuilt and the step rerun from the job's checkpoint (features, in memory)."""
    from tests.jobs_fakes import job_settings

    settings = job_settings(worker_processes=1)
    rec = Recorder()
    db, store, queue = await open_queue(tmp_path / "kill.sqlite3", settings, listener=rec.listener)
    killed: list[int] = []

    async def progress(event) -> None:
        if event.stage == "clustering" and not killed:
            killed.extend(queue.pool.worker_pids())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    try:
        handle = await queue.submit(AnalysisRequest(demo=True), progress)
        await asyncio.wait_for(rec.ended_event.wait(), 300)  # hang guard
        _, outcome, error = rec.ended[0]
        assert error is None, error
        assert outcome.rendered.png.startswith(b"\x89PNG")
        assert len(killed) == 1 and queue.pool.restarts == 1
        assert killed[0] not in queue.pool.worker_pids()
        job = await store.jobs.get(handle.job_id)
        assert job.state == "done" and job.attempts == 1
    finally:
        await queue.close()
        await db.close()
