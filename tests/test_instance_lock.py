"""One bot process per database: a second one stops at start-up with one line; the lock dies
with its holder (kill -9 included); Database objects inside one process share it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot import startup
from bot.config import Settings
from bot.errors import StorageError
from storage.db import Database

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

HOLDER = """
import asyncio, sys
from storage.db import Database

async def main():
    db = await Database(sys.argv[1]).open()
    print("open", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def holder(tmp_path: Path):
    """Another process with the database open (like a running bot); yields (path, process)."""
    db_path = tmp_path / "data" / "bot.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        yield db_path, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def test_second_process_is_refused_with_the_holders_pid(holder) -> None:
    db_path, proc = holder
    with pytest.raises(StorageError) as exc:
        await Database(db_path).open()
    assert exc.value.user_message == (
        f"Another bot instance (pid {proc.pid}) is already using the database {db_path}. "
        "Stop it first, or give this one its own DATABASE_PATH."
    )


def test_second_bot_stops_at_start_up_with_one_line(holder, tmp_path: Path, capsys) -> None:
    """Two bots on one database each resumed the same jobs and posted the same digests."""
    db_path, proc = holder
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        discord_token="not.a.real-token",
        database_path=db_path,
        worker_processes=0,
        reccobeats_enabled=False,
    )
    assert startup.run(settings, setup_logging=False) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: Another bot instance (pid {proc.pid}) is already using the database "
        f"{db_path}. Stop it first, or give this one its own DATABASE_PATH."
    ]


async def test_kill_9_of_the_holder_leaves_no_stale_lock(holder) -> None:
    db_path, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    async with Database(db_path) as db:
        assert await db.version() > 0
    assert db_path.with_name("bot.sqlite3.lock").read_text() == f"{os.getpid()}\n"


async def test_one_process_may_open_its_database_twice(tmp_path: Path) -> None:
    """Tools and tests open the same file from several Database objects of one process: they
    share the lock, which is released when the last one closes."""
    path = tmp_path / "one.sqlite3"
    first = await Database(path).open()
    second = await Database(path).open()
    await first.close()
    assert "Another bot instance" in await _probe(path)  # still held by `second`
    await second.close()
    assert await _probe(path) == "open\n"


async def _probe(path: Path) -> str:
    """What another process opening ``path`` says: "open" or its error."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(path),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if line:
            return line.decode()
        return (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
