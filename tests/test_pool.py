"""Faults of the CPU worker processes, with real processes and real signals.

A worker that hangs (SIGSTOP) or dies (SIGKILL) mid-step, and the bot killed with -9 while
its pool is up. Time limits here are hang guards or the pool's own (short) step limit; no
test asserts how fast anything is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.jobs.pool import CpuPool, CpuStepTimedOut, WorkerDied
from tests import pool_steps

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 2.0  # the pool's step limit in these tests (the steps themselves take ~0 s)


@pytest.fixture
async def pool():
    """Makes CpuPools; afterwards closes them and SIGKILLs any worker a failed test left
    stopped (a stopped worker would otherwise hang the test run at exit)."""
    pools: list[CpuPool] = []
    seen: set[int] = set()

    def make(processes: int = 1, **kwargs) -> CpuPool:
        pools.append(CpuPool(processes, **kwargs))
        return pools[-1]

    yield make
    for p in pools:
        seen.update(p.worker_pids())
        for pid in seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await p.close()


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (exited, or a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_stopped_worker_times_out_then_the_step_is_retried_once(pool, tmp_path):
    """SIGSTOP kept the step (and the job, in ``clustering``) waiting forever."""
    p = pool(1, step_timeout_s=LIMIT_S)
    stopped = await asyncio.wait_for(p.run(pool_steps.nap, 0), 120)
    marker = str(tmp_path / "stopped")
    pid = await asyncio.wait_for(p.run(pool_steps.stop_self, marker), 120)
    assert p.restarts == 1
    assert pid != stopped and p.worker_pids() == [pid]  # a fresh worker ran the retry
    await _until_gone([stopped])  # the stopped worker was killed


async def test_a_step_that_always_hangs_fails_clearly(pool):
    p = pool(1, step_timeout_s=LIMIT_S)
    with pytest.raises(CpuStepTimedOut) as exc:
        await asyncio.wait_for(p.run(pool_steps.stop_self, None), 120)
    assert "took longer than 2 seconds, twice" in exc.value.user_message
    assert exc.value.code == "cpu_timeout" and exc.value.ephemeral  # private, as README says
    assert p.restarts == 2


async def test_killed_worker_pool_is_rebuilt_and_steps_in_flight_retried(pool, tmp_path):
    """kill -9 of a worker failed every step in flight (BrokenProcessPool, an incident)."""
    p = pool(2)
    await asyncio.wait_for(
        asyncio.gather(p.run(pool_steps.nap, 0.5), p.run(pool_steps.nap, 0.5)), 120
    )
    marker = str(tmp_path / "killed")
    victim, bystander = await asyncio.wait_for(
        asyncio.gather(p.run(pool_steps.kill_self, marker), p.run(pool_steps.nap, 1.0)), 120
    )
    assert p.restarts == 1  # one new pool for both failed steps
    assert {victim, bystander} <= set(p.worker_pids())


async def test_a_step_that_always_kills_its_worker_is_given_up(pool):
    p = pool(1, max_restarts=2)
    with pytest.raises(WorkerDied) as exc:
        await asyncio.wait_for(p.run(pool_steps.kill_self, None), 120)
    assert "stopped unexpectedly 3 times" in exc.value.user_message
    assert p.restarts == 3


CHILD = """
import asyncio, sys
from bot.jobs.pool import CpuPool
from tests.pool_steps import nap

async def main():
    pool = CpuPool(2)
    pids = await asyncio.gather(pool.run(nap, 0.5), pool.run(nap, 0.5))  # both workers up
    print(*pids, flush=True)
    await asyncio.Event().wait()

if __name__ == "__main__":
    asyncio.run(main())
"""


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
async def test_kill_9_of_the_bot_takes_its_workers_forkserver_and_tracker_along(tmp_path):
    """They stayed: both workers (~277 MB each), the forkserver and the resource tracker."""
    script = tmp_path / "bot_like.py"
    script.write_text(CHILD)
    out = tmp_path / "pids.txt"
    with out.open("wb") as fh:  # not a pipe: orphaned workers would hold it open
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"},
            stdout=fh,
        )
    try:
        async with asyncio.timeout(300):  # hang guard
            while not out.read_text().endswith("\n"):
                assert proc.returncode is None, "the child exited"
                await asyncio.sleep(0.05)
        workers = [int(x) for x in out.read_text().split()]
        helpers = _children(proc.pid)  # forkserver + resource tracker
        assert len(set(workers)) == 2 and len(helpers) == 2, (workers, helpers)
        assert set(workers).isdisjoint(helpers)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    await _until_gone(workers + helpers)


async def _until_gone(pids: list[int]) -> None:
    try:
        for _ in range(600):  # hang guard (60 s); they go within a second
            if all(_gone(pid) for pid in pids):
                break
            await asyncio.sleep(0.1)
        assert all(_gone(pid) for pid in pids), [pid for pid in pids if not _gone(pid)]
    finally:
        for pid in pids:  # leave nothing behind, even when the test failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
