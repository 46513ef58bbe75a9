"""Who could read a stored playlist snapshot (``snapshot_readers``): the gate on reuse.

Readers are the strings of :mod:`bot.safety` (``app``, ``page``, ``user:<discord id>``);
:func:`bot.safety.reader_may_reuse` decides from them.
"""

from __future__ import annotations

from storage.repository import Repository


class ReaderRepository(Repository):
    async def add(self, playlist_id: str, snapshot_id: str, reader: str) -> None:
        """Record that ``reader`` has just read the items of this snapshot."""
        await self.db.execute(
            "INSERT INTO snapshot_readers (playlist_id, snapshot_id, reader, read_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT(playlist_id, snapshot_id, reader)"
            " DO UPDATE SET read_at = excluded.read_at",
            (playlist_id, snapshot_id, reader, self._now()),
        )

    async def of(self, playlist_id: str, snapshot_id: str) -> set[str]:
        """Everyone recorded as having read this snapshot."""
        rows = await self.db.fetchall(
            "SELECT reader FROM snapshot_readers WHERE playlist_id = ? AND snapshot_id = ?",
            (playlist_id, snapshot_id),
        )
        return {r["reader"] for r in rows}
