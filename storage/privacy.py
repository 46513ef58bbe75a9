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

from storage.jobs import ACTIVE_STATES
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


# ``state IN (:s0, :s1, …)``: the active job states, as named parameters.
_IN_ACTIVE_NAMED = "IN (" + ", ".join(f":s{i}" for i in range(len(ACTIVE_STATES))) + ")"
_ACTIVE_NAMED = {f"s{i}": s for i, s in enumerate(ACTIVE_STATES)}


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
        row = await self.db.fetchone(
            "SELECT"
            " (SELECT count(*) FROM analyses WHERE requested_by = :u),"
            " (SELECT count(*) FROM analyses WHERE requested_by = :u AND guild_id IS NULL),"
            " (SELECT count(*) FROM analyses WHERE requested_by = :u AND playlist_id LIKE :p),"
            " (SELECT count(*) FROM jobs WHERE user_id = :u),"
            f" (SELECT count(*) FROM jobs WHERE user_id = :u AND state {_IN_ACTIVE_NAMED}),"
            " (SELECT count(*) FROM digest_subscriptions WHERE created_by = :u)",
            {"u": user_id, "p": _upload_pattern(user_id), **_ACTIVE_NAMED},
        )
        assert row is not None
        return MemberData(*(int(v) for v in row))

    async def delete_member(self, user_id: int) -> MemberData:
        """Delete what :meth:`about` counts (digests stay: they belong to their server).

        Refuses nothing itself: the caller checks ``about().active_jobs`` first (a running job
        would write the analysis back)."""
        before = await self.about(user_id)
        params = {"u": user_id, "p": _upload_pattern(user_id), "r": f"user:{int(user_id)}"}
        async with self.db.transaction() as conn:
            mine = "SELECT id FROM analyses WHERE requested_by = :u"
            # Rows that point at the member's analyses but are not theirs lose the pointer.
            await conn.execute(
                f"UPDATE jobs SET analysis_id = NULL WHERE analysis_id IN ({mine})", params
            )
            await conn.execute(
                "UPDATE digest_subscriptions SET last_analysis_id = NULL"
                f" WHERE last_analysis_id IN ({mine})",
                params,
            )
            # Their Liked Songs snapshots (ids "liked:<spotify id>") and uploads.
            liked = await conn.execute_fetchall(
                "SELECT DISTINCT playlist_id FROM analyses WHERE requested_by = :u"
                " AND playlist_id LIKE 'liked:%'",
                params,
            )
            await conn.executemany(
                "DELETE FROM playlists WHERE id = ?", [(r["playlist_id"],) for r in liked]
            )
            await conn.execute("DELETE FROM playlists WHERE id LIKE :p", params)
            await conn.execute(
                "DELETE FROM snapshot_readers WHERE reader = :r OR playlist_id LIKE :p", params
            )
            await conn.execute("DELETE FROM analyses WHERE requested_by = :u", params)
            await conn.execute("DELETE FROM jobs WHERE user_id = :u", params)
        return before
