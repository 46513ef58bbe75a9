"""Jobs on procrastinate workers (``python -m bot worker``) against a real PostgreSQL.

Runs when TEST_DATABASE_URL is set (``.ci/run`` starts one); each test gets a database of its
own. Workers are real processes; the bot side is a DistributedQueue in this process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import LimitReached
from bot.models import AnalysisRequest

URL = os.environ.get("TEST_DATABASE_URL", "")
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not URL.startswith(("postgresql://", "postgres://")), reason="TEST_DATABASE_URL not set"
)


@pytest.fixture
async def database_url():
    import asyncpg

    name = "dist_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _settings(url: str, **extra) -> Settings:
    values = {"database_url": url, "worker_processes": 0, "spotify_client_id": None}
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def _worker(url: str, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        WORKER_PROCESSES="0",
        DATABASE_PATH=str(tmp_path / "unused.sqlite3"),
        PYTHONPATH=str(ROOT),
        DISCORD_TOKEN="",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "worker", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _services(url: str, **extra):
    from bot.app import build_services

    services = await build_services(_settings(url, **extra))
    await services.queue.start()
    return services


async def test_worker_answers_and_identical_requests_share_one_job(database_url, tmp_path):
    from bot.app import close_services
    from bot.jobs.distributed import DistributedQueue

    worker = _worker(database_url, tmp_path)
    services = await _services(database_url)
    try:
        queue = services.queue
        assert isinstance(queue, DistributedQueue)
        stages: list[str] = []

        async def progress(event):
            stages.append(event.stage)

        first = await queue.submit(AnalysisRequest(demo=True, k=3, user_id=1), progress)
        again = await queue.submit(AnalysisRequest(demo=True, k=3, user_id=2))
        assert again.shared and again.job_id == first.job_id
        outcome = await asyncio.wait_for(first.result(), 90)
        assert (await asyncio.wait_for(again.result(), 30)).analysis_id == outcome.analysis_id
        assert outcome.analysis.k == 3 and outcome.rendered.png
        assert stages[0] == "queued" and stages[-1] == "done"  # read from the jobs table
        rows = await services.db.fetchall("SELECT id FROM analyses")
        assert len(rows) == 1
    finally:
        await close_services(services)
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


async def test_limits_count_jobs_across_processes(database_url, tmp_path):
    """Two bot processes get one member's different requests at the same instant: with one
    slot, exactly one is queued (no worker runs, so jobs stay active)."""
    from bot.app import close_services

    first = await _services(database_url, max_jobs_per_user=1)
    second = await _services(database_url, max_jobs_per_user=1)
    try:
        for round_ in range(3):
            user = 70 + round_
            outcomes = await asyncio.gather(
                *(
                    services.queue.submit(
                        AnalysisRequest(demo=True, k=3 + i + 4 * round_, user_id=user)
                    )
                    for i, services in enumerate((first, second, first, second))
                ),
                return_exceptions=True,
            )
            queued = [o for o in outcomes if not isinstance(o, BaseException)]
            assert len(queued) == 1, outcomes
            assert all(isinstance(o, LimitReached) for o in outcomes if o not in queued)
    finally:
        await close_services(first)
        await close_services(second)


async def test_killed_worker_job_resumes_on_another_and_is_answered_once(database_url, tmp_path):
    from bot.app import close_services

    services = await _services(database_url)
    first = _worker(database_url, tmp_path, "--stalled-after", "3")
    second = None
    try:
        handle = await services.queue.submit(AnalysisRequest(demo=True, k=4, user_id=1))
        for _ in range(600):  # the first worker has started the job: kill it mid-run
            job = await services.store.jobs.get(handle.job_id)
            if job.state != "queued":
                break
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert (await services.store.jobs.get(handle.job_id)).state != "done"
        second = _worker(database_url, tmp_path, "--stalled-after", "3")
        outcome = await asyncio.wait_for(handle.result(), 120)
        job = await services.store.jobs.get(handle.job_id)
        assert job.state == "done" and job.analysis_id == outcome.analysis_id
        assert job.attempts == 2  # started by the killed worker, finished by the other
        assert len(await services.db.fetchall("SELECT id FROM analyses")) == 1
    finally:
        await close_services(services)
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


async def test_a_restarted_bot_follows_its_shards_unfinished_jobs(database_url, tmp_path):
    """The bot process stops with a job queued; the restarted process follows it again and
    its listeners get the result (the /cluster cog then posts it to the channel). A process
    running another shard leaves it alone."""
    from bot.app import close_services

    guild = 1 << 22  # shard (guild >> 22) % 2 == 1
    services = await _services(database_url)
    handle = await services.queue.submit(AnalysisRequest(demo=True, k=3, user_id=1, guild_id=guild))
    await close_services(services)  # the bot stops (no worker ran it yet)

    other = await _services(database_url, shard_count=2, shard_ids="0")
    restarted = await _services(database_url, shard_count=2, shard_ids="1")
    worker = None
    try:
        assert other.queue.active_job_ids == []
        assert restarted.queue.active_job_ids == [handle.job_id]
        ended = asyncio.Event()
        got: list = []

        async def listener(job_id, request, outcome, error):
            got.append((job_id, outcome.analysis_id if outcome else None, error))
            ended.set()

        restarted.queue.add_listener(listener)
        worker = _worker(database_url, tmp_path)
        await asyncio.wait_for(ended.wait(), 90)
        assert got == [(handle.job_id, got[0][1], None)] and got[0][1] is not None
    finally:
        await close_services(other)
        await close_services(restarted)
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
