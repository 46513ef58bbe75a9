"""The feature cache on ``track_features`` (the pipeline's ``FeatureCache`` protocol)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.codecs import dumps
from storage.db import Database
from storage.repository import Repository


def _decode_features(rows: Sequence[Any]) -> dict[str, dict[str, float] | None]:
    return {
        r["track_id"]: (json.loads(r["features_json"]) if r["features_json"] else None)
        for r in rows
    }


class FeatureRepository(Repository):
    """Cached audio features per (provider, track id).

    Rows older than ``days`` count as absent; a row with NULL features means "this provider
    has nothing for this id" and is returned as ``None``.
    """

    def __init__(self, db: Database, clock: Callable[[], datetime], *, days: int = 90) -> None:
        super().__init__(db, clock)
        self.days = days

    async def get_many(self, source: str, ids: Sequence[str]) -> dict[str, dict[str, float] | None]:
        """Cached, unexpired features of ``ids`` from ``source`` (None = known missing)."""
        if not ids:
            return {}
        cutoff = (self._clock() - timedelta(days=self.days)).isoformat(timespec="seconds")
        rows = await self.db.fetchall(
            "SELECT track_id, features_json FROM track_features "
            "WHERE source = ? AND fetched_at >= ? "
            "AND track_id IN (SELECT value FROM json_each(?))",
            (source, cutoff, dumps(list(ids))),
        )
        # 10,000 rows take ~35 ms of pure Python: decoded in a thread, the loop runs meanwhile.
        return await asyncio.to_thread(_decode_features, rows)

    async def put_many(self, source: str, values: Mapping[str, dict[str, float] | None]) -> None:
        if not values:
            return
        now = self._now()
        await self.db.executemany(
            "INSERT INTO track_features (track_id, source, features_json, fetched_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(track_id, source) DO UPDATE SET "
            "features_json = excluded.features_json, fetched_at = excluded.fetched_at",
            # A generator: rows are encoded in the database thread, not on the event loop.
            (
                (tid, source, dumps(feats) if feats is not None else None, now)
                for tid, feats in values.items()
            ),
        )
