"""The long-lived services the Discord layer talks to, built once at start-up.

Cogs reach them as ``bot.services``; tests build them against loopback fakes. Building them
(:func:`build_services`) needs no discord: the bot (:mod:`bot.app`) and the job worker
(``python -m bot worker``, :mod:`bot.worker_main`) both start from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.accounts import AccountService
from bot.config import Settings
from bot.digests import DigestScheduler
from bot.features.reccobeats import ReccoBeatsClient
from bot.jobs import JobQueue
from bot.pipeline import PipelineContext
from bot.sources.public_page import PublicPageReader
from bot.sources.spotify import SpotifyGateway
from bot.sources.status import SourceStatus
from storage.accounts import load_cipher
from storage.backend import is_postgres_url, open_database
from storage.db import Database
from storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    store: Store
    queue: JobQueue
    ctx: PipelineContext
    digests: DigestScheduler
    accounts: AccountService | None = None  # None: linking is off (e.g. a bad encryption key)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


async def build_services(
    settings: Settings, *, executor: Any = None, embedded_queue: bool = False
) -> Services:
    """Open the database and build every long-lived service from ``settings``.

    ``executor``: an Executor for CPU steps; None lets the job queue's pool create one with
    ``settings.worker_processes`` processes (0 → inline CPU, tests). On PostgreSQL
    (DATABASE_URL) jobs go to procrastinate workers (``python -m bot worker``) unless
    ``embedded_queue`` (the worker itself runs them in its own JobQueue).
    """
    db = await open_database(settings.database_url_value, settings.database_path)
    cipher = None  # secrets at rest: linked-account tokens, the interaction tokens of jobs
    try:
        cipher = load_cipher(settings)
    except Exception:  # e.g. an invalid TOKEN_ENCRYPTION_KEY: logged below by the accounts
        log.debug("no token cipher", exc_info=True)
    store = Store(db, feature_cache_days=settings.feature_cache_days, cipher=cipher)
    spotify = SpotifyGateway(settings) if settings.spotify_configured else None
    status = SourceStatus()  # what each source last returned, for /about
    reccobeats = None
    if settings.reccobeats_enabled:
        reccobeats = ReccoBeatsClient(
            settings.reccobeats_base, timeout_s=settings.reccobeats_timeout_s, status=status
        )
    accounts = None
    try:
        accounts = AccountService(db, settings, app_gateway=spotify, cipher=cipher)
    except Exception:  # e.g. an invalid TOKEN_ENCRYPTION_KEY: linking stays off, the bot runs
        log.warning("Spotify account linking disabled", exc_info=True)

    ctx = PipelineContext(
        settings=settings,
        spotify=spotify,
        reccobeats=reccobeats,
        feature_cache=store.features,
        user_tokens=accounts.access_token if accounts else None,
        refresh_user_token=accounts.refreshed_token if accounts else None,
        executor=executor,
        pages=PublicPageReader.from_settings(settings),
        status=status,
    )
    queue: Any = JobQueue(store, ctx, settings)
    if is_postgres_url(settings.database_url_value) and not embedded_queue:
        from bot.jobs.distributed import DistributedQueue

        queue = DistributedQueue(store, settings)
    # The digest cog runs it (start(poster) on load): it knows how to post to Discord.
    digests = DigestScheduler(db, queue)
    return Services(
        settings=settings,
        db=db,
        store=store,
        queue=queue,
        ctx=ctx,
        accounts=accounts,
        digests=digests,
    )


async def close_services(services: Services) -> None:
    """Close everything :func:`build_services` opened; each step guarded."""
    steps: list[Any] = [
        getattr(services.digests, "close", None),
        getattr(services.queue, "close", None),
        getattr(services.ctx.reccobeats, "close", None),
        getattr(services.ctx.spotify, "close", None),
        getattr(services.ctx.pages, "close", None),
        getattr(services.accounts, "close", None),
    ]
    for step in steps:
        if step is None:
            continue
        try:
            res = step()
            if asyncio.iscoroutine(res):
                await res
        except Exception:
            log.warning("Error while closing a service", exc_info=True)
    executor = services.ctx.executor
    if executor is not None:
        with contextlib.suppress(Exception):
            executor.shutdown(wait=False, cancel_futures=True)
    await services.db.close()
