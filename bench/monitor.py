"""Measurement helpers: event-loop stall monitor and process memory (no project imports)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoopMonitor:
    """Sleeps ``interval_s`` in a loop and records how late each wake-up was.

    The lateness of a wake-up is how long the event loop was blocked (by synchronous work in
    some coroutine or callback) beyond the requested sleep. ``max_ms`` is the largest stall.
    """

    interval_s: float = 0.005
    max_ms: float = 0.0
    samples: int = 0
    over_50ms: int = 0
    worst_at: float | None = None  # perf_counter() of the worst wake-up
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            late_ms = (time.perf_counter() - start - self.interval_s) * 1000.0
            self.samples += 1
            if late_ms > 50.0:
                self.over_50ms += 1
            if late_ms > self.max_ms:
                self.max_ms = late_ms
                self.worst_at = time.perf_counter()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> LoopMonitor:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _ru_maxrss_mb(who: int) -> float:
    rss = resource.getrusage(who).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def self_peak_rss_mb() -> float:
    """Peak resident set size of this process so far (``ru_maxrss``)."""
    return _ru_maxrss_mb(resource.RUSAGE_SELF)


def reaped_children_peak_rss_mb() -> float:
    """Largest peak RSS among terminated-and-reaped children (``RUSAGE_CHILDREN``)."""
    return _ru_maxrss_mb(resource.RUSAGE_CHILDREN)


def child_pids(parent: int | None = None) -> list[int]:
    """Live direct children of ``parent`` (default: this process), from /proc (Linux only)."""
    parent = os.getpid() if parent is None else parent
    out: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return out
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) comes after the parenthesised command name, which may contain spaces.
        rest = stat.rsplit(")", 1)[-1].split()
        if len(rest) > 1 and int(rest[1]) == parent:
            out.append(int(entry.name))
    return out


def peak_rss_of_pid_mb(pid: int) -> float | None:
    """``VmHWM`` (peak RSS) of a live process, or None when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def descendant_pids(parent: int | None = None, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Live descendants of ``parent`` (children, grandchildren, ...), skipping ``exclude`` trees.

    Descendants, not just children: with the ``forkserver`` start method pool workers are
    children of the fork server, not of the bot process.
    """
    out: list[int] = []
    todo = [os.getpid() if parent is None else parent]
    while todo:
        for pid in child_pids(todo.pop()):
            if pid not in exclude:
                out.append(pid)
                todo.append(pid)
    return out


def children_peak_rss_mb(exclude: frozenset[int] = frozenset()) -> dict[int, float]:
    """Peak RSS of every live descendant process (e.g. the worker pool), keyed by pid."""
    out: dict[int, float] = {}
    for pid in descendant_pids(exclude=exclude):
        rss = peak_rss_of_pid_mb(pid)
        if rss is not None:
            out[pid] = rss
    return out
