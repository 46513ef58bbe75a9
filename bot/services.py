"""The long-lived services the Discord layer talks to, built once at start-up.

Cogs reach them as ``bot.services``; tests build them against loopback fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.pipeline import PipelineContext
from storage.db import Database

if TYPE_CHECKING:
    from bot.accounts import AccountService
    from bot.digests import DigestScheduler
    from bot.jobs import JobQueue
    from storage.store import Store


@dataclass
class Services:
    settings: Settings
    db: Database
    store: Store
    queue: JobQueue
    ctx: PipelineContext
    digests: DigestScheduler
    accounts: AccountService | None = None  # None: linking is off (e.g. a bad encryption key)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
