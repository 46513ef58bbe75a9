"""Run storage and job tests on both engines: SQLite always, PostgreSQL when
``TEST_DATABASE_URL=postgresql://…`` is set (``.ci/run`` starts a throwaway server).

A module opts in with ``storage_backend = backend_fixture()`` at module level: every test of
it then runs once per engine, and :func:`database` (instead of ``Database(path)``) opens the
current engine. On PostgreSQL each database path becomes its own schema, dropped after the
test, so tests stay independent and a path opened twice is the same database. Tests of
SQLite-only behaviour (PRAGMAs, file locks, corrupted files) carry ``@sqlite_only``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from storage.db import Database

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
sqlite_only = pytest.mark.sqlite_only

_current = "sqlite"
_schemas: set[str] = set()


def schema_for(path: Path | str) -> str:
    return "t_" + hashlib.sha1(str(path).encode()).hexdigest()[:16]


def database(path: Path | str, **kwargs: Any) -> Any:
    """An unopened database of the current engine for ``path``."""
    if _current == "postgresql":
        from storage.postgres import PostgresDatabase

        schema = schema_for(path)
        _schemas.add(schema)
        return PostgresDatabase(TEST_DATABASE_URL, schema=schema, max_size=4)
    return Database(path, **kwargs)


def current() -> str:
    return _current


async def _drop(schemas: set[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(TEST_DATABASE_URL)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def backend_fixture() -> Any:
    params = [
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                not TEST_DATABASE_URL.startswith(("postgresql://", "postgres://")),
                reason="TEST_DATABASE_URL (postgresql://…) not set",
            ),
        ),
    ]

    @pytest.fixture(autouse=True, params=params)
    def storage_backend(request: pytest.FixtureRequest) -> Any:
        global _current
        if request.param == "postgresql" and request.node.get_closest_marker("sqlite_only"):
            pytest.skip("SQLite-specific behaviour")
        _current = request.param
        try:
            yield request.param
        finally:
            _current = "sqlite"
            if _schemas:
                schemas = set(_schemas)
                _schemas.clear()
                asyncio.run(_drop(schemas))

    return storage_backend
