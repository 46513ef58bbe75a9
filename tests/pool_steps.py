"""CPU steps for tests/test_pool.py that misbehave in the worker process like real faults do.

``marker`` is a file path: the first call creates it and then hangs or dies; calls that find
it already there behave (so a retry on a fresh worker succeeds). ``marker=None``: always.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _first_time(marker: str | None) -> bool:
    if marker is None:
        return True
    try:
        Path(marker).touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def stop_self(marker: str | None) -> int:
    """Hang like an operator's SIGSTOP (the process can't even run its own timers)."""
    if _first_time(marker):
        os.kill(os.getpid(), signal.SIGSTOP)
    return os.getpid()


def kill_self(marker: str | None) -> int:
    """Die like kill -9 / the OOM killer."""
    if _first_time(marker):
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()
