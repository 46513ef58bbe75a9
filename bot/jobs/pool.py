"""The process pool for CPU steps (clustering, rendering).

Uses the ``forkserver`` start method where available (else ``spawn``): forking a process that
runs an event loop and aiosqlite/executor threads can copy held locks into the child. Workers
are pre-warmed (numpy, scikit-learn, matplotlib imported) at start-up so the first job does
not pay the import cost. ``processes=0`` runs CPU steps inline, in the calling process.

Faults a worker can have, and what :meth:`CpuPool.run` does about them:

* **hangs** (SIGSTOP, a deadlock, a runaway loop): each step gets ``step_timeout_s`` of run
  time (time waiting for a free worker is not counted). Past it the pool's workers are killed,
  a fresh pool is started and the step is retried once; a second timeout raises
  :class:`CpuStepTimedOut` (a clear message for the user, the job fails).
* **dies** (kill -9, the OOM killer): every step in flight gets ``BrokenProcessPool``. The
  pool is rebuilt once and each of those steps is run again — the step's inputs are the
  job's last committed checkpoint, still in memory — up to ``max_restarts`` times, then
  :class:`WorkerDied`.
* **the bot dies** (kill -9): workers exit by themselves. Each worker has a thread blocked
  reading a pipe whose only write end is in the bot process; when the bot is gone the read
  sees EOF and the worker exits. Without it the workers (blocked on their task queue, whose
  write end every worker also holds) stayed forever, and with them the forkserver and the
  resource tracker (each worker holds their pipes too); they now exit once the workers have.
  ``PR_SET_PDEATHSIG`` would not do: a forkserver worker's parent is the forkserver, not the
  bot, and it is Linux-only. A pipe needs no polling and works with ``spawn`` as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from bot.errors import PipelineError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Restarts of a dead pool per CPU step before the step is given up (WorkerDied).
MAX_RESTARTS = 2


class CpuStepTimedOut(PipelineError):
    """A CPU step ran past its time limit twice (on two fresh workers)."""

    code = "cpu_timeout"

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"Computing this analysis took longer than {_duration(timeout_s)}, twice, so it "
            "was stopped. Try again with fewer clusters or a smaller playlist; if it keeps "
            "happening, tell the bot's owner (the computing workers may be stuck)."
        )


class WorkerDied(PipelineError):
    """The worker process running a CPU step died every time it was retried."""

    code = "worker_died"

    def __init__(self, attempts: int) -> None:
        super().__init__(
            f"The process computing this analysis stopped unexpectedly {attempts} times "
            "(the bot's machine may be short of memory), so it was given up. Try again "
            "later or with a smaller playlist."
        )


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


def _exit_with_parent(alive: Connection) -> None:
    """Worker initializer: exit as soon as the bot process is gone (see module docstring)."""

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            alive.recv_bytes()  # nothing is ever sent: returns only at EOF (the bot died)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


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


def _worker_pids(executor: Executor | None) -> list[int]:
    # ProcessPoolExecutor has no public way to reach its workers before Python 3.14
    # (kill_workers()); ``_processes`` (pid -> Process) has been there since 3.2.
    processes = getattr(executor, "_processes", None) or {}
    return sorted(pid for pid, p in processes.items() if p.is_alive())


class CpuPool:
    """Runs picklable functions in a process pool, or inline when ``processes`` is 0.

    ``executor``: use this one instead of creating a pool (it is not shut down, restarted or
    killed by us). ``step_timeout_s``: run-time limit of one step in an owned pool (None: no
    limit; inline steps cannot be interrupted and have none).
    """

    def __init__(
        self,
        processes: int,
        *,
        executor: Executor | None = None,
        step_timeout_s: float | None = None,
        max_restarts: int = MAX_RESTARTS,
    ) -> None:
        self.processes = processes
        self.step_timeout_s = step_timeout_s
        self.max_restarts = max_restarts
        self._executor = executor
        self._owned = executor is None and processes > 0
        self._closed = False
        self._alive: tuple[Connection, Connection] | None = None
        # At most one step per worker is handed to the executor, so a step's time limit
        # counts its run time, not time spent queued behind other jobs' steps (only the
        # start-up warm-up, a few seconds of imports, may still be ahead of a first step).
        self._slots = asyncio.Semaphore(processes) if self._owned else None
        self.restarts = 0  # pools replaced after a worker died or hung (for logs and tests)

    @property
    def inline(self) -> bool:
        return self._executor is None and not self._owned

    def _ensure(self) -> Executor | None:
        if self._executor is None and self._owned and not self._closed:
            ctx = mp_context()
            if self._alive is None:
                self._alive = ctx.Pipe(duplex=False)  # (reader, writer); both stay here
            self._executor = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=ctx,
                initializer=_exit_with_parent,
                initargs=(self._alive[0],),
            )
        return self._executor

    def worker_pids(self) -> list[int]:
        """Pids of the current pool's live workers (empty when inline or not started)."""
        return _worker_pids(self._executor)

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
        """``fn(*args)`` in a worker; retried on a fresh pool after a hang or a dead worker.

        Raises CpuStepTimedOut or WorkerDied when retrying did not help.
        """
        executor = self._ensure()
        if executor is None:
            if self._closed:
                raise RuntimeError("CPU pool is closed")
            return fn(*args)
        timeouts = deaths = 0
        while True:
            async with self._slots or contextlib.nullcontext():
                executor = self._ensure()
                if executor is None:
                    raise RuntimeError("CPU pool is closed")
                started = time.monotonic()
                try:
                    future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
                    return await asyncio.wait_for(future, self.step_timeout_s)
                except TimeoutError:
                    timeouts += 1
                    log.error(
                        "CPU step %s ran %.0f s (limit %g s): killing the pool's workers %s",
                        getattr(fn, "__name__", fn),
                        time.monotonic() - started,
                        self.step_timeout_s,
                        self.worker_pids(),
                    )
                    if not self._owned:
                        raise CpuStepTimedOut(self.step_timeout_s or 0) from None
                    self._discard(executor, kill=True)
                    if timeouts > 1:
                        raise CpuStepTimedOut(self.step_timeout_s or 0) from None
                except BrokenProcessPool:
                    deaths += 1
                    log.error(
                        "CPU pool broken (a worker died) during %s, %d time(s)",
                        getattr(fn, "__name__", fn),
                        deaths,
                    )
                    if not self._owned:
                        raise WorkerDied(deaths) from None
                    self._discard(executor, kill=False)
                    if deaths > self.max_restarts:
                        raise WorkerDied(deaths) from None

    def _discard(self, executor: Executor, *, kill: bool) -> None:
        """Drop ``executor`` (once: steps that failed together share one replacement)."""
        if self._executor is not executor:
            return
        self._executor = None
        self.restarts += 1
        if kill:
            # A stopped or stuck worker never takes the shutdown sentinel: kill them all.
            # Other steps in flight then get BrokenProcessPool and are retried too.
            for pid in _worker_pids(executor):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        executor.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None and self._owned:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        if self._alive is not None:
            for end in self._alive:
                end.close()
            self._alive = None
