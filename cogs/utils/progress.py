"""Progress as users see it: one line per stage, edited in place at most every 1.5 s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.models import Progress

log = logging.getLogger(__name__)


def progress_text(p: Progress) -> str:
    def count(noun: str) -> str:
        if p.done is not None and p.total:
            return f"{p.done:,}/{p.total:,} {noun}"
        if p.done is not None:
            return f"{p.done:,} {noun}"
        return noun

    text = {
        "queued": f"⏳ {p.message or 'Queued'}…",  # the place in line when waiting
        "fetching": f"📥 Fetched {count('tracks')}…",
        "featurizing": f"🎚️ Audio features: {count('tracks')}…",
        "clustering": "🧮 Clustering…",
        "rendering": "🎨 Drawing the chart…",
        "done": "✅ Done — posting the results…",
        "failed": "❌ Failed.",
    }.get(p.stage, f"{p.stage}…")
    return text


class Throttle:
    """Sends the latest progress text at most once per ``interval`` seconds.

    The first update goes out at once; later ones within the interval are coalesced and sent
    when it elapses. ``close()`` waits for an in-flight edit and drops anything pending, so
    a late progress edit can never overwrite the final result.
    """

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        interval: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._send, self.interval, self.clock, self._sleep = send, interval, clock, sleep
        self._latest: str | None = None
        self._sent: str | None = None
        self._last: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.closed = False

    async def update(self, text: str) -> None:
        if self.closed:
            return
        self._latest = text
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            await self._flush()
        elif self._task is None or self._task.done():
            delay = self.interval - (now - self._last)
            self._task = asyncio.create_task(self._later(delay))

    async def _later(self, delay: float) -> None:
        await self._sleep(delay)
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            if self.closed or self._latest is None or self._latest == self._sent:
                return
            text = self._latest
            self._last = self.clock()
            self._sent = text
            try:
                await self._send(text)
            except discord.HTTPException as exc:
                log.debug("progress edit failed: %s", exc)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:
            self.closed = True
