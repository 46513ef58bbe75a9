"""Which storage engine to open: SQLite (the default) or PostgreSQL (``DATABASE_URL``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storage.db import Database

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(POSTGRES_SCHEMES)


def make_database(database_url: str | None, database_path: Path | str) -> Any:
    """An unopened database: PostgreSQL when ``database_url`` is a ``postgresql://`` URL
    (asyncpg, the ``postgres`` extra), else SQLite at ``database_path`` (aiosqlite)."""
    if is_postgres_url(database_url):
        from storage.postgres import PostgresDatabase

        return PostgresDatabase(str(database_url))
    return Database(database_path)


async def open_database(database_url: str | None, database_path: Path | str) -> Any:
    """:func:`make_database`, opened and migrated."""
    return await make_database(database_url, database_path).open()
