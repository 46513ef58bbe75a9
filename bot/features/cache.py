"""Feature cache protocol and an in-memory implementation.

Values are keyed by provider ("spotify", "reccobeats") and Spotify track id. A cached ``None``
means "this provider was asked and has nothing for this id", so it is not asked again until
the entry expires (the SQLite implementation in ``storage.features`` expires entries after
``settings.feature_cache_days``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class FeatureCache(Protocol):
    async def get_many(self, source: str, ids: Sequence[str]) -> dict[str, dict[str, float] | None]:
        """Cached entries among ``ids``: keys present = cached; value None = known missing."""
        ...

    async def put_many(self, source: str, values: Mapping[str, dict[str, float] | None]) -> None:
        """Store values (None = the provider has nothing for that id)."""
        ...


class MemoryFeatureCache:
    """Process-local FeatureCache (CLI runs, tests). Counts hits and misses."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], dict[str, float] | None] = {}
        self.hits = 0
        self.misses = 0

    async def get_many(self, source: str, ids: Sequence[str]) -> dict[str, dict[str, float] | None]:
        out: dict[str, dict[str, float] | None] = {}
        for track_id in ids:
            key = (source, track_id)
            if key in self._data:
                value = self._data[key]
                out[track_id] = dict(value) if value is not None else None
                self.hits += 1
            else:
                self.misses += 1
        return out

    async def put_many(self, source: str, values: Mapping[str, dict[str, float] | None]) -> None:
        for track_id, value in values.items():
            self._data[(source, track_id)] = dict(value) if value is not None else None

    def __len__(self) -> int:
        return len(self._data)
