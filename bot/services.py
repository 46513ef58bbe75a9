"""The long-lived services the Discord layer talks to, built once at start-up.

Cogs reach them as ``bot.services``; tests build them against loopback fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.config import Settings
from bot.pipeline import PipelineContext
from storage.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    store: Any  # storage.repo.Store
    queue: Any  # bot.jobs.JobQueue
    ctx: PipelineContext
    accounts: Any = None  # bot.accounts.AccountService (Spotify account linking)
    digests: Any = None  # bot.digests.DigestScheduler
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
