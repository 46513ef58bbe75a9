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


def _worker(
    url: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    environ = dict(os.environ)
    environ.update(
        DATABASE_URL=url,
        WORKER_PROCESSES="0",
        DATABASE_PATH=str(tmp_path / "unused.sqlite3"),
        PYTHONPATH=str(ROOT),
        DISCORD_TOKEN="",
        **(env or {}),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "worker", *args],
        cwd=tmp_path,
        env=environ,
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


async def test_progress_counts_reach_the_bot_process_through_the_database(
    database_url, tmp_path, fake_spotify_extended
):
    """A worker process reads a 150-track playlist page by page (slowly): the bot process's
    progress callback gets the tracks fetched so far out of the total, published by the
    worker as notifications through PostgreSQL, not only the stage names of the jobs row."""
    from bot.app import close_services
    from tests.fakes.spotify_fixtures import spotify_settings

    fake = fake_spotify_extended
    fake.add_user("bob", "Bob")
    playlist = fake.add_playlist(fake.track_ids()[:150], name="Bob's mix", owner_id="bob")
    fake.latency = 0.4  # each page arrives after the last one was published
    spotify = spotify_settings(fake)
    names = (
        "spotify_client_id",
        "spotify_client_secret",
        "spotify_api_base",
        "spotify_accounts_base",
        "reccobeats_base",
        "spotify_web_base",
    )
    env = {n.upper(): str(getattr(spotify, n)) for n in names}
    env["SPOTIFY_CLIENT_SECRET"] = spotify.spotify_client_secret.get_secret_value()
    worker = _worker(database_url, tmp_path, env=env)
    services = await _services(database_url)
    try:
        events: list = []

        async def progress(event):
            events.append((event.stage, event.done, event.total))

        link = f"https://open.spotify.com/playlist/{playlist.id}"
        handle = await services.queue.submit(AnalysisRequest(link=link, k=3, user_id=1), progress)
        await asyncio.wait_for(handle.result(), 120)
    finally:
        await close_services(services)
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    counted = [e for e in events if e[0] == "fetching" and e[1] is not None]
    assert counted and all(total == 150 for _s, _d, total in counted), events
    assert [d for _s, d, _t in counted] == sorted(d for _s, d, _t in counted)
    assert events[0][0] == "queued" and events[-1][0] == "done"


async def test_a_job_whose_worker_is_alive_is_not_run_twice(database_url, tmp_path):
    """Heartbeats come late on a loaded machine, so a live worker's job can look stalled and
    be handed to a second worker. The first worker holds the job's run lock (a session
    advisory lock, gone with its connection if it is killed): the second one leaves it."""
    from bot.app import build_services, close_services
    from bot.jobs.distributed import RUN_LOCK, _run_job
    from storage.postgres import PostgresDatabase

    bot = await _services(database_url)
    worker = await build_services(_settings(database_url), embedded_queue=True)
    live = await PostgresDatabase(database_url).open(migrate=False)
    try:
        handle = await bot.queue.submit(AnalysisRequest(demo=True, k=3, user_id=1))
        async with live.session_lock(RUN_LOCK, handle.job_id) as mine:
            assert mine and await worker.db.lock_held(RUN_LOCK, handle.job_id)
            await _run_job(worker.queue, handle.job_id)  # the retried task, elsewhere
            job = await worker.store.jobs.get(handle.job_id)
            assert job.state == "queued" and job.attempts == 0  # left to its live worker
        assert not await worker.db.lock_held(RUN_LOCK, handle.job_id)
        await _run_job(worker.queue, handle.job_id)  # its worker gone: now it runs, once
        outcome = await asyncio.wait_for(handle.result(), 60)
        job = await worker.store.jobs.get(handle.job_id)
        assert job.state == "done" and job.attempts == 1
        assert job.analysis_id == outcome.analysis_id
    finally:
        await live.close()
        await close_services(worker)
        await close_services(bot)


async def test_many_submissions_at_once_to_one_server_do_not_exhaust_the_pool(database_url):
    """40 members ask in one server at the same instant on one bot process: every request is
    queued (each submission holds a pooled connection while it waits for the server's lock,
    and the holder needs more of them to count and insert)."""
    from bot.app import close_services

    services = await _services(database_url, max_jobs_per_user=0, max_jobs_per_guild=0)
    try:
        handles = await asyncio.wait_for(
            asyncio.gather(
                *(
                    services.queue.submit(
                        AnalysisRequest(
                            csv_text=f"Track URI\nspotify:track:{i}\n",
                            csv_name=f"mix{i}.csv",
                            user_id=100 + i,
                            guild_id=7,
                        )
                    )
                    for i in range(40)
                )
            ),
            60,
        )
        assert len({h.job_id for h in handles}) == 40
    finally:
        await close_services(services)


async def test_followers_read_their_rows_together_and_survive_lost_notifications(
    database_url, tmp_path
):
    """A bot process following many queued jobs reads their rows in one query per POLL_S
    (not one per job), and a job whose notifications never arrive (the listening
    connection is gone) is still answered from that read."""
    from bot.app import close_services
    from bot.jobs.distributed import POLL_S

    services = await _services(database_url)
    worker = None
    try:
        handles = [
            await services.queue.submit(AnalysisRequest(demo=True, k=k, user_id=k))
            for k in range(2, 14)
        ]
        db = services.store.db
        reads: list[str] = []
        for name in ("fetchone", "fetchall"):
            real = getattr(db, name)

            async def counted(sql, params=(), _real=real):
                if "FROM jobs" in sql:
                    reads.append(sql)
                return await _real(sql, params)

            setattr(db, name, counted)
        await asyncio.sleep(2.5 * POLL_S)
        assert 1 <= len(reads) <= 3, len(reads)  # 12 jobs, one query each time
        await services.queue._unlisten()  # notifications are lost from now on
        worker = _worker(database_url, tmp_path)
        outcome = await asyncio.wait_for(handles[0].result(), 120)
        assert outcome.analysis.k == 2
    finally:
        await close_services(services)
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)


async def test_notifications_come_again_after_the_listening_connection_ended(database_url):
    """A PostgreSQL restart (or an administrator's ``pg_terminate_backend``) ended the bot
    process's LISTEN connection for good: progress counts stopped until the bot restarted."""
    import asyncpg

    from storage.postgres import PostgresDatabase

    db = await PostgresDatabase(database_url).open()
    got: list[str] = []
    stop = await db.listen("pc_relisten", got.append)
    admin = await asyncpg.connect(database_url)
    try:
        await db.notify("pc_relisten", "before")
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.1)
        assert got == ["before"]
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        )
        assert ended == 1
        # Sent until one arrives: those sent before it listens again are lost.
        for _ in range(100):
            await db.notify("pc_relisten", "after")
            if "after" in got:
                break
            await asyncio.sleep(0.1)
        assert "after" in got
    finally:
        await stop()
        await admin.close()
        await db.close()
