"""SQLite access on aiosqlite: one connection, versioned migrations, one-writer discipline.

* Migrations are ``storage/migrations/NNNN_name.sql``; the applied version is
  ``PRAGMA user_version``. Each migration runs in its own transaction.
* WAL journal, foreign keys on, a busy timeout so a locked database fails with a clear
  :class:`bot.errors.StorageError` instead of hanging.
* Writes go through :meth:`Database.transaction`, which holds an asyncio lock: one writer at a
  time inside the process, each step committed before the next starts.
* One process per database: opening takes an exclusive ``flock`` on ``<database>.lock``, held
  while any Database of this process has the file open (the bot: its whole life). A second
  bot process on the same file gets a one-line StorageError naming the holder's pid — two
  instances used to resume the same jobs twice and post a due digest twice. The kernel drops
  the lock when the holder dies, even by kill -9, so a crash never leaves a stale lock. A lock
  file, not ``PRAGMA locking_mode = EXCLUSIVE``: read-only tools (``sqlite3 … .backup``) can
  still open the database while the bot runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import aiosqlite

from bot.errors import StorageError

#: Query parameters: positional (``?``) or named (``:name``), as sqlite3 takes them.
Params = Sequence[Any] | Mapping[str, Any]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; one instance is up to the operator
    fcntl = None  # type: ignore[assignment]

MIGRATIONS_PACKAGE = "storage.migrations"
log = logging.getLogger(__name__)


def utcnow() -> str:
    """Current UTC time as ISO-8601 (what every *_at column holds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_migrations() -> list[tuple[int, str, str]]:
    """All migrations as (version, name, sql), sorted by version."""
    out = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def _storage_error(exc: BaseException, path: Path | str) -> StorageError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        msg = (
            f"The database {path} is locked by another process. Stop the other bot instance "
            "(or whatever holds the file) and try again."
        )
    elif "not a database" in text or "malformed" in text or "corrupt" in text:
        msg = (
            f"The database {path} is corrupted or not an SQLite file. Restore it from a backup "
            "or move it aside to start fresh."
        )
    else:
        msg = f"Database error on {path}: {text}"
    return StorageError(msg, detail=text)


class _InstanceLock:
    """This process's flock on ``<database>.lock``, shared by its Database objects."""

    held: ClassVar[dict[Path, _InstanceLock]] = {}  # resolved database path -> lock

    def __init__(self, key: Path, fd: int) -> None:
        self.key = key
        self.fd = fd
        self.users = 0

    @classmethod
    def acquire(cls, path: Path) -> _InstanceLock | None:
        """Take (or share) the lock; StorageError when another process holds it."""
        key = path.resolve()
        lock = cls.held.get(key)
        if lock is None:
            if fcntl is None:
                return None
            lock_path = key.with_name(key.name + ".lock")
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:  # e.g. a read-only folder: SQLite then says what is wrong
                log.warning("cannot create the instance lock %s: %s", lock_path, exc)
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise StorageError(
                    f"Another bot instance (pid {holder}) is already using the database "
                    f"{path}. Stop it first, or give this one its own DATABASE_PATH.",
                    detail=f"flock on {lock_path} is held",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            lock = cls.held[key] = cls(key, fd)
        lock.users += 1
        return lock

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            del self.held[self.key]
            os.close(self.fd)  # drops the flock; the file stays (deleting it would race)


class Database:
    """A single aiosqlite connection with migrations and a write lock."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self.busy_timeout_s = busy_timeout_s
        self._conn: aiosqlite.Connection | None = None
        self._instance: _InstanceLock | None = None
        self._write_lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("Database is not open")
        return self._conn

    async def open(self, *, migrate: bool = True) -> Database:
        try:
            if isinstance(self.path, Path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self._instance is None:
                    self._instance = _InstanceLock.acquire(self.path)
            # cached_statements=0: a cached statement keeps the values it was last run with
            # until it runs again, and some bind megabytes (an analysis' text, checkpoints):
            # at 10,000 tracks the bot held ~16 MB of them between jobs and through the next
            # job's peak. Preparing each statement instead costs microseconds.
            self._conn = await aiosqlite.connect(
                str(self.path),
                timeout=self.busy_timeout_s,
                isolation_level=None,
                cached_statements=0,
            )
            self._conn.row_factory = sqlite3.Row
            await self._conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            await self._conn.execute("PRAGMA foreign_keys = ON")
            await self._conn.execute("PRAGMA journal_mode = WAL")
            await self._conn.execute("PRAGMA synchronous = NORMAL")
            # Touch the schema: raises at once on a corrupted or non-SQLite file.
            await self._conn.execute("SELECT count(*) FROM sqlite_master")
            if migrate:
                await self.migrate()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise _storage_error(exc, self.path) from exc
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        try:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await conn.close()
        finally:
            if self._instance is not None:
                instance, self._instance = self._instance, None
                instance.release()

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def migrate(self, *, target: int | None = None) -> int:
        """Apply pending migrations up to ``target`` (all by default). Returns the version."""
        current = await self.version()
        migrations = load_migrations()
        head = migrations[-1][0] if migrations else 0
        if current > head:
            raise StorageError(
                f"The database {self.path} has schema version {current}, newer than this "
                f"version of the bot knows ({head}). Upgrade the bot or use another database.",
                detail=f"user_version={current} head={head}",
            )
        for version, _name, sql in migrations:
            if version <= current or (target is not None and version > target):
                continue
            async with self._write_lock:
                try:
                    # executescript commits first; wrap the script in its own transaction.
                    await self.conn.executescript(
                        f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
                    )
                except sqlite3.DatabaseError as exc:
                    await self._rollback()
                    raise _storage_error(exc, self.path) from exc
            current = version
        return current

    # --- reads ------------------------------------------------------------------------------
    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        try:
            async with self.conn.execute(sql, params) as cur:
                return await cur.fetchone()
        except sqlite3.DatabaseError as exc:
            raise _storage_error(exc, self.path) from exc

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        try:
            async with self.conn.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.DatabaseError as exc:
            raise _storage_error(exc, self.path) from exc

    # --- writes -----------------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``async with db.transaction() as conn:`` — one writer at a time, commit or rollback."""
        async with self._write_lock:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise _storage_error(exc, self.path) from exc
            try:
                yield self.conn
            except sqlite3.DatabaseError as exc:
                await self._rollback()
                raise _storage_error(exc, self.path) from exc
            except BaseException:
                await self._rollback()
                raise
            else:
                try:
                    await self.conn.execute("COMMIT")
                except sqlite3.DatabaseError as exc:
                    await self._rollback()
                    raise _storage_error(exc, self.path) from exc

    async def _rollback(self) -> None:
        """Roll back if a transaction is open; never masks the original error."""
        try:
            if self.conn.in_transaction:
                await self.conn.execute("ROLLBACK")
        except sqlite3.DatabaseError:
            pass

    # transaction() turns an sqlite3 error of its body into a StorageError (after rollback).
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; returns lastrowid."""
        async with self.transaction() as conn:
            cur = await conn.execute(sql, params)
            return cur.lastrowid or 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)
