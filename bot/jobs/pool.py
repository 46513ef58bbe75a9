"""The process pool for CPU steps (clustering, rendering).

Uses the ``forkserver`` start method where available (else ``spawn``): forking a process that
runs an event loop and aiosqlite/executor threads can copy held locks into the child. Workers
are pre-warmed (numpy, scikit-learn, matplotlib imported) at start-up so the first job does
not pay the import cost. ``processes=0`` runs CPU steps inline, in the calling process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def _warm() -> int:
    """Run in each worker once: import the heavy modules the CPU steps need."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import bot.jobs.cpu  # noqa: F401

    for name in ("numpy", "sklearn.cluster", "matplotlib.pyplot"):
        __import__(name)
    return os.getpid()


def mp_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class CpuPool:
    """Runs picklable functions in a process pool, or inline when ``processes`` is 0.

    ``executor``: use this one instead of creating a pool (it is not shut down by us).
    A pool broken by a dead worker (e.g. OOM-killed) is replaced on the next call.
    """

    def __init__(self, processes: int, *, executor: Executor | None = None) -> None:
        self.processes = processes
        self._executor = executor
        self._owned = executor is None and processes > 0
        self._closed = False

    @property
    def inline(self) -> bool:
        return self._executor is None and not self._owned

    def _ensure(self) -> Executor | None:
        if self._executor is None and self._owned and not self._closed:
            self._executor = ProcessPoolExecutor(
                max_workers=self.processes, mp_context=mp_context()
            )
        return self._executor

    async def start(self) -> None:
        """Create and pre-warm the pool (one warm-up call per worker)."""
        executor = self._ensure()
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        pids = await asyncio.gather(
            *(loop.run_in_executor(executor, _warm) for _ in range(max(1, self.processes)))
        )
        log.info("CPU pool ready: %d worker(s), pids %s", len(set(pids)), sorted(set(pids)))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        executor = self._ensure()
        if executor is None:
            if self._closed:
                raise RuntimeError("CPU pool is closed")
            return fn(*args)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, fn, *args)
        except BrokenProcessPool:
            if self._owned:
                log.error("CPU pool broken (a worker died); starting a new one")
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            raise

    async def close(self) -> None:
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None and self._owned:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
