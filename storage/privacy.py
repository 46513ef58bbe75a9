"""What the bot stores about one member, who may see an analysis, and deleting a member's data.

* :meth:`PrivacyRepository.audience`: who was shown a stored analysis — its requester and its
  server, plus everyone (and every server) a finished job delivered it to (a reused analysis
  is delivered to more than its first requester).
* :meth:`PrivacyRepository.about`: counts for ``/privacy show``.
* :meth:`PrivacyRepository.delete_member`: ``/privacy delete`` — the member's analyses (with
  their files), jobs (with any uploaded CSV text), uploads and Liked Songs snapshots, and the
  records of which playlists they read, in one transaction. The Spotify link itself is removed
  by the account service (it also clears its caches).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.jobs import ACTIVE_STATES, IN_ACTIVE
from storage.repository import Repository


@dataclass
class Audience:
    """Who was shown an analysis: requesters (user ids) and servers (guild ids)."""

    requesters: set[int] = field(default_factory=set)
    guilds: set[int] = field(default_factory=set)


@dataclass
class MemberData:
    """What is stored about one member (``/privacy show``, and what was deleted)."""

    analyses: int = 0
    dm_analyses: int = 0
    uploads: int = 0
    jobs: int = 0
    active_jobs: int = 0
    digests: int = 0


def _upload_pattern(user_id: int) -> str:
    """Source ids of the member's CSV uploads (see bot.safety.uploader_scoped_id)."""
    return f"csv:u{int(user_id)}:%"


class PrivacyRepository(Repository):
    async def audience(self, analysis_id: int) -> Audience | None:
        """Who was shown ``analysis_id`` (None: no such analysis)."""
        row = await self.db.fetchone(
            "SELECT requested_by, guild_id FROM analyses WHERE id = ?", (analysis_id,)
        )
        if row is None:
            return None
        out = Audience()
        if row["requested_by"] is not None:
            out.requesters.add(int(row["requested_by"]))
        if row["guild_id"] is not None:
            out.guilds.add(int(row["guild_id"]))
        for job in await self.db.fetchall(
            "SELECT user_id, guild_id FROM jobs WHERE analysis_id = ? AND state = 'done'",
            (analysis_id,),
        ):
            if job["user_id"] is not None:
                out.requesters.add(int(job["user_id"]))
            if job["guild_id"] is not None:
                out.guilds.add(int(job["guild_id"]))
        return out

    async def about(self, user_id: int) -> MemberData:
        """Counts of what is stored about ``user_id``."""
        u, p = user_id, _upload_pattern(user_id)
        row = await self.db.fetchone(
            "SELECT"
            " (SELECT count(*) FROM analyses WHERE requested_by = ?),"
            " (SELECT count(*) FROM analyses WHERE requested_by = ? AND guild_id IS NULL),"
            " (SELECT count(*) FROM analyses WHERE requested_by = ? AND playlist_id LIKE ?),"
            " (SELECT count(*) FROM jobs WHERE user_id = ?),"
            f" (SELECT count(*) FROM jobs WHERE user_id = ? AND state {IN_ACTIVE}),"
            " (SELECT count(*) FROM digest_subscriptions WHERE created_by = ?)",
            (u, u, u, p, u, u, *ACTIVE_STATES, u),
        )
        assert row is not None
        return MemberData(*(int(v) for v in row))

    async def delete_member(self, user_id: int) -> MemberData:
        """Delete what :meth:`about` counts (digests stay: they belong to their server).

        Refuses nothing itself: the caller checks ``about().active_jobs`` first (a running job
        would write the analysis back)."""
        before = await self.about(user_id)
        u, p, reader = user_id, _upload_pattern(user_id), f"user:{int(user_id)}"
        # Their Liked Songs snapshots (ids "liked:<spotify id>"), found from their analyses.
        liked = await self.db.fetchall(
            "SELECT DISTINCT playlist_id FROM analyses WHERE requested_by = ?"
            " AND playlist_id LIKE 'liked:%'",
            (u,),
        )
        mine = "SELECT id FROM analyses WHERE requested_by = ?"
        async with self.db.transaction() as conn:
            # Rows that point at the member's analyses but are not theirs lose the pointer.
            await conn.execute(
                f"UPDATE jobs SET analysis_id = NULL WHERE analysis_id IN ({mine})", (u,)
            )
            await conn.execute(
                "UPDATE digest_subscriptions SET last_analysis_id = NULL"
                f" WHERE last_analysis_id IN ({mine})",
                (u,),
            )
            for r in liked:
                await conn.execute("DELETE FROM playlists WHERE id = ?", (r["playlist_id"],))
            await conn.execute("DELETE FROM playlists WHERE id LIKE ?", (p,))
            await conn.execute(
                "DELETE FROM snapshot_readers WHERE reader = ? OR playlist_id LIKE ?", (reader, p)
            )
            await conn.execute("DELETE FROM analyses WHERE requested_by = ?", (u,))
            await conn.execute("DELETE FROM jobs WHERE user_id = ?", (u,))
        return before
