"""PostgreSQL backend on asyncpg, with the interface of :class:`storage.db.Database`.

Used when ``DATABASE_URL=postgresql://…`` is set (:func:`storage.backend.open_database`);
asyncpg is the optional ``postgres`` extra and is imported only here. The repositories run
the same SQL as on SQLite, translated by :mod:`storage.dialect`; the migrations are the same
files. The applied version lives in ``schema_version`` (SQLite: ``PRAGMA user_version``).

Several processes (bot shards, workers) share one database: migrations run under a
PostgreSQL advisory lock, so the first process to start applies them and the others wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from bot.errors import StorageError
from storage.db import load_migrations
from storage.dialect import PG_FUNCTIONS, migration_to_postgres, to_postgres

log = logging.getLogger(__name__)
#: Longest wait between two attempts to listen again after the connection was lost.
RELISTEN_MAX_WAIT_S = 30.0

# Advisory lock key under which migrations run (any constant shared by every process).
MIGRATION_LOCK = zlib.crc32(b"playlist-clusters:migrations")
# Gateway locks (hold_gateway_lock): one key for "the whole gateway", a class id for shards.
_GATEWAY_ALL = zlib.crc32(b"playlist-clusters:gateway")
_GATEWAY_SHARDS = zlib.crc32(b"playlist-clusters:shard") & 0x7FFFFFFF
_INT_TYPES = {"int2", "int4", "int8"}
_FLOAT_TYPES = {"float4", "float8", "numeric"}


def redact_url(url: str) -> str:
    """``url`` without its password (what error messages and logs may show)."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)


def _coerce(value: Any, type_name: str) -> Any:
    """A Python value as asyncpg wants it for a parameter of ``type_name``.

    SQLite takes any value anywhere; asyncpg checks types strictly. The repositories pass
    ints for boolean flags, numpy scalars for numbers, and so on: converted here.
    """
    if value is None:
        return None
    if type_name in _INT_TYPES:
        return int(value)
    if type_name == "bool":
        return bool(value)
    if type_name in _FLOAT_TYPES:
        return float(value)
    if type_name == "bytea":
        return bytes(value)
    if type_name in ("text", "varchar", "json", "jsonb") and not isinstance(value, str):
        return value.decode() if isinstance(value, bytes) else str(value)
    return value


def _storage_error(exc: BaseException, where: str) -> StorageError:
    text = str(exc)
    return StorageError(f"Database error on {where}: {text}", detail=text)


class _Result:
    """What ``conn.execute`` returns inside a transaction: ``rowcount`` and ``lastrowid``."""

    def __init__(self, rowcount: int, lastrowid: int | None) -> None:
        self.rowcount = rowcount
        self.lastrowid = lastrowid


class PgConnection:
    """One pooled connection, speaking the SQLite dialect (see :mod:`storage.dialect`)."""

    def __init__(self, owner: PostgresDatabase, conn: Any) -> None:
        self._owner = owner
        self._conn = conn

    async def _prepare(self, sql: str) -> tuple[str, bool, tuple[str, ...]]:
        pg_sql, returning = to_postgres(sql, self._owner.identity_tables)
        types = self._owner._param_types.get(pg_sql)
        if types is None:
            stmt = await self._conn.prepare(pg_sql)
            types = tuple(t.name for t in stmt.get_parameters())
            self._owner._param_types[pg_sql] = types
        return pg_sql, returning, types

    @staticmethod
    def _args(params: Sequence[Any], types: tuple[str, ...]) -> list[Any]:
        return [_coerce(v, t) for v, t in zip(params, types, strict=True)]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        pg_sql, returning, types = await self._prepare(sql)
        args = self._args(params, types)
        if returning:
            row = await self._conn.fetchrow(pg_sql, *args)
            return _Result(1 if row else 0, int(row[0]) if row else None)
        status = await self._conn.execute(pg_sql, *args)
        tail = status.rsplit(" ", 1)[-1] if status else ""
        return _Result(int(tail) if tail.isdigit() else 0, None)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        pg_sql, _returning, types = await self._prepare(sql)
        batch = [self._args(r, types) for r in rows]
        if batch:
            await self._conn.executemany(pg_sql, batch)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        pg_sql, _returning, types = await self._prepare(sql)
        return await self._conn.fetchrow(pg_sql, *self._args(params, types))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        pg_sql, _returning, types = await self._prepare(sql)
        return list(await self._conn.fetch(pg_sql, *self._args(params, types)))


class PostgresDatabase:
    """A pool of asyncpg connections with the interface of :class:`storage.db.Database`.

    ``schema``: the PostgreSQL schema the tables live in (tests give each test its own);
    None uses the server's default (``public``).
    """

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        self.url = url
        self.path = redact_url(url)  # what messages name (never the password)
        self.schema = schema
        self.min_size = min_size
        self.max_size = max_size
        self.identity_tables: frozenset[str] = frozenset()
        self._param_types: dict[str, tuple[str, ...]] = {}
        self._pool: Any = None
        self._lock_conn: Any = None  # holds this process's gateway advisory locks

    async def open(self, *, migrate: bool = True) -> PostgresDatabase:
        try:
            import asyncpg  # the optional "postgres" extra
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise StorageError(
                "DATABASE_URL names a PostgreSQL database but asyncpg is not installed: "
                'pip install "playlist-clusters[postgres]" (or unset DATABASE_URL for SQLite).',
                detail=str(exc),
            ) from exc
        settings = {"search_path": self.schema} if self.schema else {}
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                server_settings=settings,
                reset=_keep_session,
            )
            if migrate:
                await self.migrate()
            else:
                await self._load_identity_tables()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise StorageError(
                f"Cannot use the PostgreSQL database {self.path}: {exc}", detail=str(exc)
            ) from exc
        except BaseException:
            await self.close()
            raise
        return self

    async def hold_gateway_lock(self, shard_ids: list[int] | None, shard_count: int | None) -> None:
        """The PostgreSQL counterpart of SQLite's one-instance flock, for bot processes.

        Several bot processes share one PostgreSQL database when each runs other shards, so
        the lock is per shard: an exclusive advisory lock on each of this process's shards
        (all of them when not sharded, which also conflicts with every sharded process). It
        lives on a connection of its own for the life of the process; PostgreSQL releases it
        when that connection ends, also when the process is killed. StorageError when another
        process holds one of the shards.
        """
        import asyncpg

        count = shard_count or 1
        mine = shard_ids if shard_ids is not None else list(range(count))
        whole = shard_count is None
        conn = await asyncpg.connect(self.url)
        try:
            # Unsharded processes take "all" exclusively; sharded ones share it.
            take_all = "pg_try_advisory_lock" if whole else "pg_try_advisory_lock_shared"
            held = await conn.fetchval(f"SELECT {take_all}($1)", _GATEWAY_ALL)
            for shard in [] if whole else mine:
                held = held and await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)", _GATEWAY_SHARDS, shard
                )
        except BaseException:
            await conn.close()
            raise
        if not held:
            await conn.close()
            which = "the gateway" if whole else f"shard(s) {', '.join(map(str, mine))}"
            raise StorageError(
                f"Another bot process already runs {which} on the database {self.path}. Stop "
                "it first, or give this process other SHARD_IDS.",
                detail="gateway advisory lock held",
            )
        self._lock_conn = conn

    async def close(self) -> None:
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            await conn.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> PostgresDatabase:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("Database is not open")
        return self._pool

    async def _load_identity_tables(self) -> None:
        rows = await self.pool.fetch(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'id'"
            " AND is_identity = 'YES' AND table_schema = current_schema()"
        )
        self.identity_tables = frozenset(r[0].lower() for r in rows)

    async def version(self) -> int:
        row = await self.pool.fetchrow(
            "SELECT to_regclass('schema_version') IS NOT NULL AS present"
        )
        if not row["present"]:
            return 0
        value = await self.pool.fetchval("SELECT max(version) FROM schema_version")
        return int(value or 0)

    async def migrate(self, *, target: int | None = None) -> int:
        """Apply pending migrations (each in its own transaction) under an advisory lock."""
        migrations = load_migrations()
        head = migrations[-1][0] if migrations else 0
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                if self.schema:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute(PG_FUNCTIONS)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"
                )
                current = int(await conn.fetchval("SELECT max(version) FROM schema_version") or 0)
                if current > head:
                    raise StorageError(
                        f"The database {self.path} has schema version {current}, newer than "
                        f"this version of the bot knows ({head}). Upgrade the bot or use "
                        "another database.",
                        detail=f"schema_version={current} head={head}",
                    )
                for version, _name, sql in migrations:
                    if version <= current or (target is not None and version > target):
                        continue
                    async with conn.transaction():
                        for stmt in migration_to_postgres(sql):
                            await conn.execute(stmt)
                        await conn.execute("INSERT INTO schema_version VALUES ($1)", version)
                    current = version
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await self._load_identity_tables()
        return current

    # --- reads ------------------------------------------------------------------------------
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            async with self.pool.acquire() as conn:
                return await PgConnection(self, conn).fetchone(sql, params)
        except _pg_errors() as exc:
            raise _storage_error(exc, self.path) from exc

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            async with self.pool.acquire() as conn:
                return await PgConnection(self, conn).fetchall(sql, params)
        except _pg_errors() as exc:
            raise _storage_error(exc, self.path) from exc

    # --- writes -----------------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConnection]:
        """``async with db.transaction() as conn:`` — commit, or roll back on any error."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield PgConnection(self, conn)
        except _pg_errors() as exc:
            raise _storage_error(exc, self.path) from exc

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement (atomic on its own: no BEGIN/COMMIT round trips, one
        round trip instead of three); returns the new row's id (or 0)."""
        try:
            async with self.pool.acquire() as conn:
                result = await PgConnection(self, conn).execute(sql, params)
        except _pg_errors() as exc:
            raise _storage_error(exc, self.path) from exc
        return result.lastrowid or 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    # --- between processes: session locks and notifications --------------------------------
    @asynccontextmanager
    async def session_lock(self, kind: int, key: int) -> AsyncIterator[bool]:
        """Try the advisory lock (``kind``, ``key``) on a pooled connection held for the
        block; yields whether it was taken. PostgreSQL releases it when that connection
        ends, so a killed process holds nothing: a held lock means a live holder."""
        async with self.pool.acquire() as conn:
            got = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", kind, key))
            try:
                yield got
            finally:
                if got:
                    try:
                        await conn.execute("SELECT pg_advisory_unlock($1, $2)", kind, key)
                    except BaseException:
                        conn.terminate()  # never back in the pool holding the lock
                        raise

    async def lock_held(self, kind: int, key: int) -> bool:
        """Whether some session holds the advisory lock (``kind``, ``key``) now."""
        return bool(
            await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2"
                " AND granted AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database()))",
                kind,
                key,
            )
        )

    def _channel(self, channel: str) -> str:
        # Notifications are per database; a schema of its own (tests) gets its own channel.
        return f"{self.schema}.{channel}" if self.schema else channel

    async def notify(self, channel: str, payload: str) -> None:
        """``NOTIFY channel, payload`` (delivered to every listening process at once)."""
        await self.pool.execute("SELECT pg_notify($1, $2)", self._channel(channel), payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> Callable[[], Any]:
        """Call ``callback(payload)`` for each notification on ``channel``, on a connection
        of its own; returns the coroutine function that stops listening.

        A connection that ends under us (PostgreSQL restarted, an administrator terminated
        it) is made again, at once and then with growing waits up to
        :data:`RELISTEN_MAX_WAIT_S`: without that, one PostgreSQL restart silenced the
        progress notifications for the life of the bot process (states and results still came
        through its row reads every 2 s). Notifications sent in between are lost."""
        import asyncpg

        name = self._channel(channel)
        held: list[Any] = []  # the current connection
        stopped = False
        again: asyncio.Task[None] | None = None

        def deliver(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            callback(payload)

        def lost(_conn: Any) -> None:
            nonlocal again
            if not stopped and (again is None or again.done()):
                again = asyncio.get_running_loop().create_task(relisten(), name=f"relisten {name}")

        async def connect() -> None:
            conn = await asyncpg.connect(self.url)
            conn.add_termination_listener(lost)
            await conn.add_listener(name, deliver)
            held[:] = [conn]

        async def relisten() -> None:
            wait = 0.0
            while not stopped:
                await asyncio.sleep(wait)
                try:
                    await connect()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    wait = min(max(wait * 2, 0.5), RELISTEN_MAX_WAIT_S)
                    log.warning(
                        "lost the PostgreSQL connection listening on %s; trying again in %.1f s "
                        "(%s)", name, wait, type(exc).__name__,
                    )  # fmt: skip
                    continue
                log.info("listening on %s again (its PostgreSQL connection had ended)", name)
                return

        await connect()

        async def stop() -> None:
            nonlocal stopped
            stopped = True
            if again is not None:
                again.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await again
            for conn in held:
                if not conn.is_closed():
                    await conn.close()

        return stop


async def _keep_session(_conn: Any) -> None:
    """The pool's reset when a connection comes back: nothing beyond asyncpg's own rollback
    of an open transaction. asyncpg's default also runs ``pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL`` (one more round trip per query: 2,123 of the 2,600 simple
    statements bench.scale logged). Nothing here leaves session state on a pooled
    connection: LISTEN and the gateway locks have connections of their own, session_lock
    unlocks (or drops the connection) and nothing sets session variables."""


def _pg_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
