"""The bot process gives big freed blocks back (bot.jobs.worker.return_big_blocks_to_the_os)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# In a fresh interpreter: free five 8 MB texts (like a job's JSON copies), each followed by
# small allocations that stay, and print how much resident memory that left behind.
PROBE = """
import sys
from bot.jobs.worker import return_big_blocks_to_the_os
applied = return_big_blocks_to_the_os() if sys.argv[1] == "tuned" else True
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
base = rss_mb()
kept = []
for i in range(5):
    text = "x" * (8 * 2**20)
    kept.append([i] * 1000)
    del text
print(int(applied), round(rss_mb() - base, 1))
"""


def _left_behind(mode: str) -> tuple[bool, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "1", float(out[1])


def test_freed_big_texts_are_given_back():
    if not Path("/proc/self/statm").exists():
        pytest.skip("Linux only (and mallopt is glibc's)")
    applied, tuned = _left_behind("tuned")
    if not applied:
        pytest.skip("not glibc: nothing to tune")
    _, plain = _left_behind("plain")
    assert plain >= 7  # glibc's default kept a freed 8 MB block (the reason for the tuning)
    assert tuned < 2
