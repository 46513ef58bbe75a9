"""Measure storage and the job worker on 10,000 real tracks (not a test; run by hand).

    .venv/bin/python -m tests.storage_bench [N_ROWS] [WORKER_PROCESSES]

Uses the full TidyTuesday CSV bundled in bench/data (or tests/data's sample) as an uploaded CSV:
no network. Prints the time of each committed step, of save_fetch/load_fetch, and of a
resubmission that reuses the stored analysis.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.jobs import JobQueue
from bot.models import AnalysisRequest
from bot.pipeline import PipelineContext
from storage.db import Database
from storage.store import Store

FULL = Path(__file__).resolve().parents[1] / "bench" / "data" / "tidytuesday_2020-01-21.csv.gz"
SAMPLE = Path(__file__).parent / "data" / "tidytuesday_sample.csv"


def csv_rows(n: int) -> str:
    if FULL.exists():
        lines = gzip.decompress(FULL.read_bytes()).decode("utf-8").splitlines(keepends=True)
    else:
        lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(lines[: n + 1])


class TimedQueue(JobQueue):
    marks: list[tuple[str, float]]

    async def _after_commit(self, job_id: int, state: str, checkpoint: dict[str, Any]) -> None:
        self.marks.append((state, time.perf_counter()))


async def main(n: int, processes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, worker_processes=processes)  # type: ignore[call-arg]
        db = await Database(Path(tmp) / "bench.sqlite3").open()
        store = Store(db)
        queue = TimedQueue(store, PipelineContext(settings=settings), settings)
        queue.marks = []
        t0 = time.perf_counter()
        await queue.start()
        print(f"pool start ({processes} workers, pre-warmed): {time.perf_counter() - t0:.2f}s")
        text = csv_rows(n)
        t0 = time.perf_counter()
        queue.marks.append(("submit", t0))
        outcome = await (await queue.submit(AnalysisRequest(csv_text=text))).result()
        total = time.perf_counter() - t0
        print(
            f"job on {len(outcome.analysis.tracks)} tracks (k={outcome.analysis.k}): {total:.2f}s"
        )
        for (a, ta), (b, tb) in zip(queue.marks, queue.marks[1:], strict=False):
            print(f"  {a:>12} -> {b:<12} {tb - ta:6.2f}s")
        size = (await db.fetchone("SELECT sum(length(result_json)) FROM analyses"))[0]
        print(f"stored analysis JSON: {size / 1e6:.1f} MB")

        row = await db.fetchone("SELECT playlist_id, snapshot_id FROM playlist_snapshots")
        t0 = time.perf_counter()
        fetched = await store.snapshots.load(row[0], row[1])
        print(f"load_fetch {len(fetched.tracks)} tracks: {time.perf_counter() - t0:.2f}s")
        fetched.meta.id = "bench-copy"
        t0 = time.perf_counter()
        await store.snapshots.save(fetched)
        print(f"save_fetch {len(fetched.tracks)} tracks: {time.perf_counter() - t0:.2f}s")

        t0 = time.perf_counter()
        again = await (await queue.submit(AnalysisRequest(csv_text=text))).result()
        print(f"resubmit (reused={again.reused}): {time.perf_counter() - t0:.2f}s")
        await queue.close()
        await db.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 10_000, int(args[1]) if len(args) > 1 else 1))
