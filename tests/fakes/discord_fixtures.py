"""Fixtures for the fake Discord gateway + REST (owned by the Discord work).

* ``fake_discord``: a started :class:`tests.fakes.discord_fake.FakeDiscord` on 127.0.0.1 with
  discord.py patched to use it (REST base + default gateway).
* ``make_services``: ``await make_services(settings=None, **overrides)`` → real
  :class:`bot.services.Services` (SQLite in tmp_path, Store, JobQueue with inline CPU) via
  :func:`bot.app.build_services`.
* ``start_bot``: ``async with start_bot(services, **bot_kwargs) as bot:`` runs a real
  :class:`bot.app.PlaylistClustersBot` against the fake until it is READY (commands synced to
  the fake guild), and closes it afterwards.

Typical test::

    async def test_x(fake_discord, make_services, start_bot):
        services = await make_services()
        async with start_bot(services) as bot:
            it = await fake_discord.slash("about")
            [msg] = await fake_discord.wait_response(it)
            assert "Version" in msg.text
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.discord_fake import FakeDiscord, patch_discord


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    fake = await FakeDiscord().start()
    patch_discord(fake, monkeypatch)
    try:
        yield fake
    finally:
        await fake.close()


def discord_test_settings(tmp_path: Path, base: Any = None, **overrides: Any) -> Any:
    """Settings for a bot test: tmp database, inline CPU, no real network."""
    from bot.config import Settings

    values: dict[str, Any] = {
        "database_path": tmp_path / "bot.sqlite3",
        "worker_processes": 0,
        "reccobeats_enabled": False,
        "discord_token": "fake-token",
    }
    values.update(overrides)
    if base is not None:
        return base.model_copy(update=values)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def make_services(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Factory for real Services (closed at teardown unless a bot closed them)."""
    from bot.app import build_services, close_services

    built: list[Any] = []

    async def _make(settings: Any = None, **overrides: Any) -> Any:
        s = discord_test_settings(tmp_path, settings, **overrides)
        services = await build_services(s, executor=None)
        built.append(services)
        return services

    yield _make
    for services in built:
        if services.db._conn is not None:
            with contextlib.suppress(Exception):
                await close_services(services)


@pytest.fixture
def start_bot(fake_discord: FakeDiscord) -> Callable[..., Any]:
    """``async with start_bot(services, **kwargs) as bot`` — a READY bot against the fake."""

    @contextlib.asynccontextmanager
    async def _start(services: Any, **kwargs: Any) -> AsyncIterator[Any]:
        from bot.app import PlaylistClustersBot

        if not services.settings.discord_dev_guild_id:
            services.settings = services.settings.model_copy(
                update={"discord_dev_guild_id": fake_discord.guild_id}
            )
        kwargs.setdefault("guild_ready_timeout", 0.05)
        bot = PlaylistClustersBot(services, **kwargs)
        ready = asyncio.Event()

        async def _on_ready() -> None:
            ready.set()

        bot.add_listener(_on_ready, "on_ready")
        task = asyncio.create_task(bot.start("fake-token"))
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=30, return_when="FIRST_COMPLETED")
        if waiter not in done:
            waiter.cancel()
            await bot.close()  # also closes the services and the HTTP session
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("bot failed to start") from task.exception()
            task.cancel()
            raise TimeoutError("bot did not become READY against the fake Discord")
        try:
            yield bot
        finally:
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)

    return _start


_DEMO_CACHE: dict[tuple[int | None, int | None], tuple[dict, Any]] = {}


def demo_outcome(k: int | None = 4, *, limit: int | None = 120) -> tuple[Any, Any]:
    """(Analysis, Rendered) of the bundled demo mix (no network): for tests of stored results.

    Computed once per (k, limit) per session; each call returns a fresh, mutable Analysis.
    """
    from bot.models import Analysis

    key = (k, limit)
    if key not in _DEMO_CACHE:
        analysis, rendered = _demo_outcome(k, limit)
        _DEMO_CACHE[key] = (analysis.to_dict(), rendered)
    data, rendered = _DEMO_CACHE[key]
    return Analysis.from_dict(data), rendered


def _demo_outcome(k: int | None, limit: int | None) -> tuple[Any, Any]:
    from bot.demo import load_demo
    from bot.jobs.cpu import cluster_step, render_step
    from bot.models import FetchResult
    from bot.pipeline import features_from_tracks

    fetched = load_demo()
    if limit is not None:
        fetched = FetchResult(fetched.meta, fetched.tracks[:limit], fetched.skipped)
    features = features_from_tracks(fetched.tracks)
    assert features is not None
    analysis = cluster_step(fetched, features, k)
    return analysis, render_step(analysis)


async def store_demo_analysis(
    services: Any,
    fake: FakeDiscord,
    k: int | None = 4,
    *,
    user_id: int | None = None,
    limit: int | None = 120,
) -> int:
    """Save a demo analysis as if ``user_id`` (default: the guild owner) ran it in #general."""
    from bot.models import AnalysisRequest

    analysis, rendered = demo_outcome(k, limit=limit)
    request = AnalysisRequest(
        demo=True,
        k=k,
        user_id=user_id or int(fake.owner_user["id"]),
        guild_id=fake.guild_id,
        channel_id=fake.channel_id,
    )
    return await services.store.analyses.save(analysis, rendered, request)
