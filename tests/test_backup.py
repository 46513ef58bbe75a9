"""Backups as README "Storage and background jobs" tells operators to take and restore them:
its commands run as written, against a database a running bot (another process) writes to."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage.db import Database, load_migrations

ROOT = Path(__file__).resolve().parents[1]
HEAD = load_migrations()[-1][0]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell commands")

# A running bot: holds the database (and its flock) open and writes what it is told to, one
# guild's settings per line on stdin; SQLite keeps those commits in the -wal file meanwhile.
BOT = """
import asyncio, sys
from storage.db import Database
from storage.store import Store

async def main():
    db = await Database(sys.argv[1]).open()
    guilds = Store(db).guilds
    for line in sys.stdin:
        for guild_id in line.split():
            await guilds.set_links_enabled(int(guild_id), False)
        print("written", flush=True)
    await db.close()  # stdin closed: a clean stop

asyncio.run(main())
"""


def readme_commands() -> tuple[str, str]:
    """The backup and the restore commands of README's **Backups.** paragraph."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("**Backups.**") :]
    backup, restore = re.findall(r"```sh\n(.*?)```", section, flags=re.S)[:2]
    return backup, restore


def shell(script: str, cwd: Path, database: Path) -> subprocess.CompletedProcess[str]:
    """Run README lines with ``$DATABASE_PATH`` set and ``python`` being this interpreter."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "DATABASE_PATH": str(database), "PATH": path}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def guild_ids(path: Path) -> set[int]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT guild_id FROM guild_settings")}
    finally:
        conn.close()


class RunningBot:
    def __init__(self, database: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BOT, str(database)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def write(self, *guilds: int) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(map(str, guilds)) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "written\n"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def bot(tmp_path: Path):
    """A bot that ran before (guilds 1-3, stopped cleanly: all in the file) and runs now."""
    data = tmp_path / "data"
    data.mkdir()
    database = data / "bot.sqlite3"
    before = RunningBot(database)
    before.write(1, 2, 3)
    before.stop()
    running = RunningBot(database)
    try:
        yield database, running
    finally:
        if running.proc.poll() is None:
            running.kill()


async def opened_by_the_bot(path: Path) -> tuple[int, str, set[int]]:
    """What the bot finds at its next start: schema version, integrity, guilds."""
    async with Database(path) as db:
        integrity = (await db.fetchone("PRAGMA integrity_check"))[0]
        rows = await db.fetchall("SELECT guild_id FROM guild_settings")
        return await db.version(), integrity, {row[0] for row in rows}


def test_the_readme_backup_and_restore_work_while_the_bot_runs(bot, tmp_path) -> None:
    database, running = bot
    backup_cmd, restore_cmd = readme_commands()
    running.write(4, 5, 6)
    # What README warns against: the file alone, copied while the bot runs, lacks what the
    # bot committed lately (it is still in bot.sqlite3-wal).
    shutil.copy(database, tmp_path / "cp.sqlite3")
    assert guild_ids(tmp_path / "cp.sqlite3") == {1, 2, 3}

    done = shell(backup_cmd, tmp_path, database)
    assert done.returncode == 0, done.stderr
    backup = tmp_path / "pc-backup.sqlite3"
    assert guild_ids(backup) == {1, 2, 3, 4, 5, 6}  # every commit, the bot still running
    again = shell(backup_cmd, tmp_path, database)
    assert again.returncode != 0 and "already exists" in again.stderr  # never overwritten

    running.write(7, 8, 9)
    running.kill()  # the bot dies (kill -9, a full disk): its last commits stay in the -wal
    assert Path(f"{database}-wal").stat().st_size > 0
    shutil.copytree(database.parent, tmp_path / "twin")

    restored = shell(restore_cmd, tmp_path, database)
    assert restored.returncode == 0, restored.stderr
    # the backup, nothing newer
    assert asyncio.run(opened_by_the_bot(database)) == (HEAD, "ok", {1, 2, 3, 4, 5, 6})

    # Why the restore removes the -wal first: copied over without that, SQLite lays the dead
    # bot's last pages over a file they don't belong to. Measured: the integrity check then
    # fails ("NULL value in analysis_files.analysis_id"); a page-for-page copy (.backup)
    # would come back with the newer rows instead. Either way it is not the backup.
    twin = tmp_path / "twin" / database.name
    shutil.copy(backup, twin)
    conn = sqlite3.connect(twin)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    assert integrity != "ok" or guild_ids(twin) != {1, 2, 3, 4, 5, 6}
