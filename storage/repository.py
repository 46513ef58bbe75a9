"""What every repository shares: the one Database (one writer) and an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from storage.db import Database


class Repository:
    """Base of the per-concern repositories (analyses, jobs, snapshots, features, guilds)."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self._clock = clock

    def _now(self) -> str:
        return self._clock().isoformat(timespec="seconds")
