"""Queries on ``digest_subscriptions`` (scheduled playlist digests).

Times are stored as UTC ISO-8601 strings with seconds precision (``2026-11-23T09:00:00+00:00``),
the format :func:`iso` produces, so that string comparison in SQL orders them correctly.
The schedule maths lives in :mod:`bot.digests`; this module only reads and writes rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from storage.db import Database, utcnow


def iso(moment: datetime) -> str:
    """``moment`` (timezone-aware) as the UTC ISO-8601 string stored in the table."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_iso(text: str) -> datetime:
    """Inverse of :func:`iso` (also accepts a trailing ``Z``)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Subscription:
    """One row of ``digest_subscriptions`` (plus the playlist's name when it was ever fetched)."""

    id: int
    guild_id: int
    channel_id: int
    playlist_ref: str
    playlist_id: str
    every: str  # daily | weekly
    at_time: str  # HH:MM, local to ``timezone``
    timezone: str
    weekday: int | None  # 0 = Monday; weekly only
    k: int | None
    created_by: int
    next_run_at: str
    last_run_at: str | None = None
    last_analysis_id: int | None = None
    last_snapshot_id: str | None = None
    paused: bool = False
    pause_reason: str | None = None
    created_at: str = ""
    last_status: str | None = None
    last_posted_at: str | None = None
    playlist_name: str | None = None
    claimed_at: str | None = None  # the due time of a claimed run not finished yet

    @property
    def label(self) -> str:
        """What to call the playlist in messages: its name when known, else its id."""
        return self.playlist_name or f"playlist {self.playlist_id}"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Subscription:
        """A row of ``_SELECT`` (which joins in the playlist's name)."""
        return cls(
            id=row["id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            playlist_ref=row["playlist_ref"],
            playlist_id=row["playlist_id"],
            every=row["every"],
            at_time=row["at_time"],
            timezone=row["timezone"],
            weekday=row["weekday"],
            k=row["k"],
            created_by=row["created_by"],
            next_run_at=row["next_run_at"],
            last_run_at=row["last_run_at"],
            last_analysis_id=row["last_analysis_id"],
            last_snapshot_id=row["last_snapshot_id"],
            paused=bool(row["paused"]),
            pause_reason=row["pause_reason"],
            created_at=row["created_at"],
            last_status=row["last_status"],
            last_posted_at=row["last_posted_at"],
            playlist_name=row["playlist_name"],
            claimed_at=row["claimed_at"],
        )


_SELECT = """
SELECT d.*, p.name AS playlist_name
FROM digest_subscriptions AS d
LEFT JOIN playlists AS p ON p.id = d.playlist_id
"""


class DigestStore:
    """Reads and writes digest subscriptions. Every write is its own short transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        *,
        guild_id: int,
        channel_id: int,
        playlist_ref: str,
        playlist_id: str,
        every: str,
        at_time: str,
        timezone: str,
        weekday: int | None,
        k: int | None,
        created_by: int,
        next_run_at: str,
    ) -> Subscription:
        sub_id = await self.db.execute(
            """INSERT INTO digest_subscriptions
               (guild_id, channel_id, playlist_ref, playlist_id, every, at_time, timezone,
                weekday, k, created_by, next_run_at, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                guild_id,
                channel_id,
                playlist_ref,
                playlist_id,
                every,
                at_time,
                timezone,
                weekday,
                k,
                created_by,
                next_run_at,
                utcnow(),
            ),
        )
        sub = await self.get(sub_id)
        assert sub is not None
        return sub

    async def get(self, sub_id: int, *, guild_id: int | None = None) -> Subscription | None:
        """The subscription, or None (also None when it belongs to another guild)."""
        row = await self.db.fetchone(f"{_SELECT} WHERE d.id = ?", (sub_id,))
        if row is None or (guild_id is not None and row["guild_id"] != guild_id):
            return None
        return Subscription.from_row(row)

    async def list_for_guild(self, guild_id: int) -> list[Subscription]:
        rows = await self.db.fetchall(f"{_SELECT} WHERE d.guild_id = ? ORDER BY d.id", (guild_id,))
        return [Subscription.from_row(r) for r in rows]

    async def count_for_guild(self, guild_id: int) -> int:
        row = await self.db.fetchone(
            "SELECT count(*) FROM digest_subscriptions WHERE guild_id = ?", (guild_id,)
        )
        return int(row[0]) if row else 0

    async def find_duplicate(
        self, guild_id: int, channel_id: int, playlist_id: str
    ) -> Subscription | None:
        row = await self.db.fetchone(
            f"{_SELECT} WHERE d.guild_id = ? AND d.channel_id = ? AND d.playlist_id = ?",
            (guild_id, channel_id, playlist_id),
        )
        return Subscription.from_row(row) if row else None

    async def remove(self, sub_id: int, *, guild_id: int) -> bool:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM digest_subscriptions WHERE id = ? AND guild_id = ?",
                (sub_id, guild_id),
            )
            return cur.rowcount > 0

    async def due(self, now: str, *, limit: int = 100) -> list[Subscription]:
        """Active subscriptions whose ``next_run_at`` is at or before ``now``, oldest first."""
        rows = await self.db.fetchall(
            f"{_SELECT} WHERE d.paused = 0 AND d.next_run_at <= ? "
            "ORDER BY d.next_run_at, d.id LIMIT ?",
            (now, limit),
        )
        return [Subscription.from_row(r) for r in rows]

    async def next_due_at(self, *, exclude: set[int] | frozenset[int] = frozenset()) -> str | None:
        """The earliest ``next_run_at`` among active subscriptions not in ``exclude`` (None when
        there are none)."""
        marks = ",".join("?" * len(exclude))
        where = f" AND id NOT IN ({marks})" if exclude else ""
        row = await self.db.fetchone(
            f"SELECT min(next_run_at) FROM digest_subscriptions WHERE paused = 0{where}",
            tuple(sorted(exclude)),
        )
        return row[0] if row and row[0] else None

    async def set_next_run(self, sub_id: int, next_run_at: str) -> None:
        await self.db.execute(
            "UPDATE digest_subscriptions SET next_run_at = ? WHERE id = ?", (next_run_at, sub_id)
        )

    async def claim(self, sub_id: int, expected_next: str, next_run_at: str) -> bool:
        """Move ``next_run_at`` from ``expected_next`` on (compare-and-set). True for exactly
        one caller among every process that saw the same due row: that one runs the digest.
        ``claimed_at`` remembers the claimed slot until the run records its outcome."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE digest_subscriptions SET next_run_at = ?, claimed_at = ?"
                " WHERE id = ? AND next_run_at = ? AND paused = 0",
                (next_run_at, expected_next, sub_id, expected_next),
            )
            return cur.rowcount == 1

    async def interrupted(self) -> list[Subscription]:
        """Active subscriptions whose claimed run never recorded an outcome (the process
        running it was killed): to run again at start-up."""
        rows = await self.db.fetchall(
            f"{_SELECT} WHERE d.paused = 0 AND d.claimed_at IS NOT NULL ORDER BY d.claimed_at"
        )
        return [Subscription.from_row(r) for r in rows]

    async def record_run(
        self,
        sub_id: int,
        *,
        run_at: str,
        status: str,
        analysis_id: int | None = None,
        snapshot_id: str | None = None,
        posted: bool = False,
    ) -> None:
        """Store a run's outcome. ``analysis_id``/``snapshot_id`` only move forward when given
        (a skipped run keeps the last analysis, so the next digest still diffs against it)."""
        await self.db.execute(
            """UPDATE digest_subscriptions SET
                 claimed_at = NULL,
                 last_run_at = ?,
                 last_status = ?,
                 last_analysis_id = coalesce(?, last_analysis_id),
                 last_snapshot_id = coalesce(?, last_snapshot_id),
                 last_posted_at = CASE WHEN ? = 1 THEN ? ELSE last_posted_at END
               WHERE id = ?""",
            (
                run_at,
                status,
                analysis_id,
                snapshot_id,
                int(posted),
                run_at,
                sub_id,
            ),
        )

    async def pause(self, sub_id: int, reason: str, *, at: str) -> bool:
        """Pause an active subscription. False when it was already paused (report only once)."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                """UPDATE digest_subscriptions
                   SET paused = 1, pause_reason = ?, last_status = ?, last_run_at = ?,
                       claimed_at = NULL
                   WHERE id = ? AND paused = 0""",
                (reason, f"paused: {reason}", at, sub_id),
            )
            return cur.rowcount > 0

    async def resume(self, sub_id: int, *, guild_id: int, next_run_at: str) -> bool:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                """UPDATE digest_subscriptions
                   SET paused = 0, pause_reason = NULL, next_run_at = ?, last_status = NULL
                   WHERE id = ? AND guild_id = ?""",
                (next_run_at, sub_id, guild_id),
            )
            return cur.rowcount > 0
