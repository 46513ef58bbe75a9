"""A clock tests move by hand (the digest scheduler's ``clock``)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta


class ManualClock:
    """A clock tests move by hand: ``sleep`` returns when :meth:`advance` passes its deadline."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("naive datetime")
        self._now = start.astimezone(UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._now + timedelta(seconds=seconds), future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            with contextlib.suppress(ValueError):
                self._sleepers.remove(entry)

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (forwards or backwards) and wake sleepers that are due."""
        self._now = moment.astimezone(UTC)
        for deadline, future in list(self._sleepers):
            if deadline <= self._now and not future.done():
                future.set_result(None)

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)

    @property
    def sleeping(self) -> int:
        """How many sleeps are pending (tests use it to know the loop went back to sleep)."""
        return sum(1 for _, f in self._sleepers if not f.done())

    @property
    def next_wake(self) -> datetime | None:
        """The earliest deadline of a pending sleep."""
        pending = [d for d, f in self._sleepers if not f.done()]
        return min(pending) if pending else None
