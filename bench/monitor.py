"""Measurement helpers: event-loop stall monitor and process memory (no project imports)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    # (perf_counter() when the stall began, stall ms) for every stall over 50 ms
    stalls: list[tuple[float, float]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            late_ms = (time.perf_counter() - start - self.interval_s) * 1000.0
            self.samples += 1
            if late_ms > 50.0:
                self.over_50ms += 1
                self.stalls.append((start + self.interval_s, late_ms))
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


def process_label(pid: int) -> str:
    """ "worker", "forkserver", "resource_tracker" or "child" for a multiprocessing process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "child"
    if "forkserver" in cmdline and "main" in cmdline:
        # The fork server and the workers it forks share its command line; workers are its
        # children, so tell them apart by parent.
        return "forkserver"
    if "resource_tracker" in cmdline:
        return "resource_tracker"
    if "multiprocessing" in cmdline or "spawn_main" in cmdline:
        return "worker"
    return "child"


def children_peak_rss_mb(exclude: frozenset[int] = frozenset()) -> dict[str, float]:
    """Peak RSS of every live descendant process, keyed ``"<label>:<pid>"`` (label from
    :func:`process_label`; pool workers forked by the fork server are labelled "worker")."""
    out: dict[str, float] = {}
    forkservers: set[int] = set()
    for pid in descendant_pids(exclude=exclude):
        rss = peak_rss_of_pid_mb(pid)
        if rss is None:
            continue
        label = process_label(pid)
        if label == "forkserver" and _ppid(pid) in forkservers:
            label = "worker"
        if label == "forkserver":
            forkservers.add(pid)
        out[f"{label}:{pid}"] = rss
    return out


def _ppid(pid: int) -> int | None:
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return int(rest[1])
    except (OSError, IndexError, ValueError):
        return None


class StallTracer:
    """Finds *what* blocks the event loop: a watchdog thread samples the loop thread's stack.

    The loop task refreshes a heartbeat every ``interval_s``; when the heartbeat is older
    than ``threshold_s`` the watchdog records the loop thread's current stack (sampling every
    ``interval_s`` while the stall lasts). ``report()`` lists the project frames seen most,
    which is where the loop spent its blocked time — like py-spy, with no extra dependency.
    """

    def __init__(
        self,
        threshold_s: float = 0.02,
        interval_s: float = 0.005,
        roots: tuple[str, ...] = (),
        *,
        all_threads: bool = False,
    ) -> None:
        self.threshold_s = threshold_s
        self.interval_s = interval_s
        self.roots = roots or ("/bot/", "/storage/", "/bench/", "aiosqlite", "asyncio")
        self.samples: Counter[tuple[str, ...]] = Counter()
        # Other threads' stacks during stalls (which one held the GIL?), when all_threads.
        self.all_threads = all_threads
        self.other_samples: Counter[tuple[str, ...]] = Counter()
        self._beat = time.perf_counter()
        self._loop_thread: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.perf_counter()
            await asyncio.sleep(self.interval_s)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            if time.perf_counter() - self._beat < self.threshold_s:
                continue
            frame = sys._current_frames().get(self._loop_thread or 0)
            if frame is None:
                continue
            self.samples[self._frames(frame)] += 1
            # A frame object held here keeps its function's locals alive after it returns
            # (and its callers' once they return): sampled during the fetch step, the job's
            # 10,000 tracks stayed alive until the next stall, inflating the bot's peak RSS.
            del frame
            if self.all_threads:
                for ident, other in sys._current_frames().items():
                    if ident not in (self._loop_thread, threading.get_ident()):
                        self.other_samples[self._frames(other, all_files=True)] += 1
                other = None

    def _frames(self, frame: Any, *, all_files: bool = False) -> tuple[str, ...]:
        return tuple(
            f"{Path(f.filename).name}:{f.lineno} {f.name}"
            for f in traceback.extract_stack(frame)
            if all_files or any(r in f.filename for r in self.roots)
        )[-6:]

    async def __aenter__(self) -> StallTracer:
        self._loop_thread = threading.get_ident()
        self._beat = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        self._thread = threading.Thread(target=self._watch, name="stall-tracer", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def report(self, top: int = 8) -> list[tuple[float, list[str]]]:
        """(approximate blocked ms, innermost project frames) for the most sampled stacks."""
        return [
            (round(n * self.interval_s * 1000, 1), list(stack))
            for stack, n in self.samples.most_common(top)
        ]


class GcMonitor:
    """Records garbage-collector pauses (``gc.callbacks``) of at least ``min_ms``.

    A full (generation 2) collection walks every tracked object and holds the GIL all along,
    on whichever thread triggered it: with hundreds of thousands of live objects (10,000
    tracks and their copies) it stalls the event loop by itself.
    """

    def __init__(self, min_ms: float = 10.0) -> None:
        self.min_ms = min_ms
        self.pauses: list[tuple[float, int, float]] = []  # (perf_counter at start, gen, ms)
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            ms = (time.perf_counter() - self._start) * 1000.0
            if ms >= self.min_ms:
                self.pauses.append((self._start, info.get("generation", -1), ms))

    def __enter__(self) -> GcMonitor:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)
