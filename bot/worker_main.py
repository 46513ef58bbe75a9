"""``python -m bot worker``: a process that runs analyses from the PostgreSQL queue.

An entry point next to :mod:`bot.startup` (the bot) and :mod:`bot.cli`: it builds the same
services as the bot (:func:`bot.services.build_services`, with the job queue embedded) and
runs procrastinate's worker on them (:mod:`bot.jobs.distributed`). It never imports discord.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from bot.config import Settings
from bot.jobs.distributed import (
    HEARTBEAT_S,
    QUEUE_NAME,
    STALLED_AFTER_S,
    ensure_schema,
    make_app,
    retry_stalled,
)
from bot.services import build_services, close_services


async def run_worker(
    settings: Settings, *, concurrency: int = 2, stalled_after_s: float = STALLED_AFTER_S
) -> None:
    """``python -m bot worker``: run analyses from the queue until SIGINT/SIGTERM."""
    url = settings.database_url_value
    if not url:
        raise ValueError("python -m bot worker needs DATABASE_URL=postgresql://…")
    services = await build_services(settings, embedded_queue=True)
    app = make_app(url, services.queue)
    stop = asyncio.Event()
    try:
        async with app.open_async():
            await ensure_schema(app, url)
            reaper = asyncio.create_task(
                retry_stalled(app, stop, stalled_after_s, services.db)  # type: ignore[arg-type]
            )
            try:
                await app.run_worker_async(
                    queues=[QUEUE_NAME],
                    concurrency=concurrency,
                    update_heartbeat_interval=min(HEARTBEAT_S, stalled_after_s / 3),
                    stalled_worker_timeout=stalled_after_s,
                    install_signal_handlers=True,
                )
            finally:
                stop.set()
                await reaper
    finally:
        await close_services(services)


def worker_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m bot worker`` (compose.yaml's is checked against it)."""
    parser = argparse.ArgumentParser(prog="python -m bot worker")
    parser.add_argument("--concurrency", type=int, default=2, help="jobs run at once")
    parser.add_argument(
        "--stalled-after",
        type=float,
        default=STALLED_AFTER_S,
        help="seconds without a worker heartbeat before its jobs are retried elsewhere",
    )
    return parser


def worker_main(settings: Settings, argv: list[str]) -> int:
    """``python -m bot worker [--concurrency N]``; exit code 2 without DATABASE_URL."""
    import sys

    args = worker_parser().parse_args(argv)
    if not settings.database_url_value:
        print(
            "error: python -m bot worker needs DATABASE_URL=postgresql://… (the queue lives in "
            "PostgreSQL); without it, python -m bot runs jobs itself.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    from bot.safety import clamp_secret_loggers

    clamp_secret_loggers()  # spotipy's bearer tokens, statement parameters: never at DEBUG
    asyncio.run(
        run_worker(settings, concurrency=args.concurrency, stalled_after_s=args.stalled_after)
    )
    return 0
