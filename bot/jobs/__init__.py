"""Background analysis jobs: a persisted queue, a step runner with checkpoints, a CPU pool."""

from bot.jobs.queue import JobCrashed, JobHandle, JobInterrupted, JobQueue, dedupe_key
from bot.jobs.worker import JobOutcome

__all__ = ["JobCrashed", "JobHandle", "JobInterrupted", "JobOutcome", "JobQueue", "dedupe_key"]
