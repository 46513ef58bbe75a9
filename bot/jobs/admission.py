"""A global bound on jobs in flight (all servers and DMs together), first come first served.

Per-user and per-server limits alone let 100 servers start 100 jobs at once (and DMs have no
server limit). Jobs past ``limit`` wait here, in order, and are told their place in line
whenever it changes ("2 analyses ahead"), so a member sees why nothing happens yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PositionCallback = Callable[[int], Awaitable[None]]


@dataclass(eq=False)
class _Waiter:
    on_position: PositionCallback
    admitted: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    told: int | None = None


def queued_message(ahead: int) -> str:
    """The progress text of a job waiting for a slot (``ahead`` jobs wait before it)."""
    if ahead == 0:
        return "Queued: next in line (the bot is busy with other analyses)"
    return f"Queued: {ahead} {'analysis' if ahead == 1 else 'analyses'} ahead of this one"


class Admission:
    """At most ``limit`` holders at a time (``limit`` <= 0: no bound)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._waiting: list[_Waiter] = []

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _free(self) -> bool:
        return self.limit <= 0 or self.active < self.limit

    @contextlib.asynccontextmanager
    async def slot(self, on_position: PositionCallback) -> AsyncIterator[None]:
        """Hold a slot for the body; waits in line first when all are taken.

        ``on_position(ahead)`` is awaited when the job starts waiting and each time its place
        changes (never after it was admitted).
        """
        if self._free() and not self._waiting:
            self.active += 1
        else:
            waiter = _Waiter(on_position)
            self._waiting.append(waiter)
            await self._tell(waiter, len(self._waiting) - 1)
            try:
                await waiter.admitted  # release() hands its slot over (active unchanged)
            except BaseException:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
                    self._retell()
                elif waiter.admitted.done() and not waiter.admitted.cancelled():
                    self._release()  # admitted and cancelled in the same breath
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            waiter = self._waiting.pop(0)
            if not waiter.admitted.done():  # done: cancelled while waiting, about to leave
                waiter.admitted.set_result(None)  # the slot passes on: active unchanged
                self._retell()
                return
        self.active -= 1

    def _retell(self) -> None:
        for ahead, waiter in enumerate(self._waiting):
            if waiter.told != ahead:
                task = asyncio.get_running_loop().create_task(self._tell(waiter, ahead))
                task.add_done_callback(_log_failure)

    @staticmethod
    async def _tell(waiter: _Waiter, ahead: int) -> None:
        if waiter.admitted.done():
            return
        waiter.told = ahead
        try:
            await waiter.on_position(ahead)
        except Exception:  # a failed progress edit must not lose the job its place
            log.warning("queue position callback failed", exc_info=True)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:  # pragma: no cover - guarded
        log.warning("queue position update failed", exc_info=task.exception())
