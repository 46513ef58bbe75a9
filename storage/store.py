"""The repositories the bot uses, on one Database (one writer) and one clock.

``Store(db).analyses`` / ``.jobs`` / ``.snapshots`` / ``.features`` / ``.guilds``; accounts
(storage/accounts.py) and digest subscriptions (storage/digests.py) have stores of their own.
:meth:`Store.prune` is the one query spanning two concerns (jobs pin snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.fernet import MultiFernet

from storage.analyses import AnalysisRepository
from storage.db import Database
from storage.features import FeatureRepository
from storage.guilds import GuildRepository
from storage.jobs import ACTIVE_STATES, IN_ACTIVE, JobRepository
from storage.privacy import PrivacyRepository
from storage.readers import ReaderRepository
from storage.snapshots import SnapshotRepository


class Store:
    """All repositories but accounts and digests. ``features`` is the pipeline's
    ``FeatureCache``; rows older than ``feature_cache_days`` count as absent."""

    def __init__(
        self,
        db: Database,
        *,
        feature_cache_days: int = 90,
        clock: Callable[[], datetime] | None = None,
        cipher: MultiFernet | None = None,
    ) -> None:
        self.db = db
        self._clock = clock or (lambda: datetime.now(UTC))
        self.analyses = AnalysisRepository(db, self._clock)
        # cipher: the secrets kept with jobs (interaction tokens) are encrypted with it.
        self.jobs = JobRepository(db, self._clock, cipher=cipher)
        self.snapshots = SnapshotRepository(db, self._clock)
        self.features = FeatureRepository(db, self._clock, days=feature_cache_days)
        self.guilds = GuildRepository(db, self._clock)
        self.readers = ReaderRepository(db, self._clock)
        self.privacy = PrivacyRepository(db, self._clock)

    async def prune(self, *, keep_snapshots: int = 3, job_days: int = 30) -> dict[str, int]:
        """Drop old playlist snapshots' entries and old finished jobs. Returns counts.

        Keeps the newest ``keep_snapshots`` snapshots of each playlist and any snapshot an
        unfinished job's checkpoint points at; analyses are never pruned (they are re-shown).
        """
        cutoff = (self._clock() - timedelta(days=job_days)).isoformat(timespec="seconds")
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM playlist_snapshots AS s WHERE ("
                " SELECT count(*) FROM playlist_snapshots AS n WHERE n.playlist_id = s.playlist_id"
                " AND (n.fetched_at > s.fetched_at OR (n.fetched_at = s.fetched_at"
                " AND n.rowid > s.rowid))) >= ? AND NOT EXISTS ("
                f" SELECT 1 FROM jobs AS j WHERE j.state {IN_ACTIVE}"
                " AND json_extract(j.checkpoint_json, '$.fetch.playlist_id') = s.playlist_id"
                " AND json_extract(j.checkpoint_json, '$.fetch.snapshot') = s.snapshot_id)",
                (keep_snapshots, *ACTIVE_STATES),
            )
            snapshots = cur.rowcount
            await conn.execute(
                "DELETE FROM playlist_tracks AS t WHERE NOT EXISTS (SELECT 1 FROM"
                " playlist_snapshots AS s WHERE s.playlist_id = t.playlist_id"
                " AND s.snapshot_id = t.snapshot_id)"
            )
            cur = await conn.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed') AND updated_at < ?",
                (cutoff,),
            )
            jobs = cur.rowcount
        return {"snapshots": snapshots, "jobs": jobs}
