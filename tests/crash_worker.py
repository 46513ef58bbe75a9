"""Child process for tests/test_crash_resume.py: run one job, freeze after a committed step.

Usage: python -m tests.crash_worker DB_PATH PAUSE_STATE MARKER_PATH REQUEST_JSON

After the job's step ``PAUSE_STATE`` is committed to SQLite, the job id is written to
MARKER_PATH and the process waits forever, so the parent can kill -9 it at a known point.
Exit code 3 means the job ended without reaching that state (a test failure).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.jobs import JobQueue
from bot.models import AnalysisRequest
from bot.pipeline import PipelineContext
from storage.db import Database
from storage.store import Store


class PausingQueue(JobQueue):
    pause_state = ""
    marker = Path()

    async def _after_commit(self, job_id: int, state: str, checkpoint: dict[str, Any]) -> None:
        if state == self.pause_state:
            tmp = self.marker.with_suffix(".tmp")
            tmp.write_text(str(job_id))
            os.replace(tmp, self.marker)
            await asyncio.Event().wait()  # frozen here until killed


async def main(db_path: str, pause_state: str, marker: str, request_json: str) -> int:
    settings = Settings(_env_file=None, worker_processes=0)  # type: ignore[call-arg]
    db = await Database(db_path).open()
    queue = PausingQueue(Store(db), PipelineContext(settings=settings), settings)
    queue.pause_state, queue.marker = pause_state, Path(marker)
    await queue.start()
    handle = await queue.submit(AnalysisRequest.from_dict(json.loads(request_json)))
    try:
        await handle.result()
    except Exception as exc:
        print(f"job failed: {exc!r}", file=sys.stderr)
    print(f"job ended without reaching {pause_state!r}", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:5])))
