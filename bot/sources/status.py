"""What the bot's sources actually returned lately, for ``/about``.

A probe says little in 2026: an old client id can keep ``audio-features`` while its playlist
reads are limited to its owner's playlists, and a Premium lapse or a changed public page shows up
only when a real call fails. So every read records its outcome here, per source, and ``/about``
reports the latest one ("works", "refused: only playlists the reader owns", "not tried yet").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# Sources of playlist listings and of audio features, in the order /about lists them.
READ_SOURCES: dict[str, str] = {
    "app": "Spotify API (the bot's app)",
    "linked": "Spotify API (a member's linked account)",
    "page": "Spotify public page",
}
FEATURE_SOURCES: dict[str, str] = {
    "spotify_features": "Spotify audio-features",
    "reccobeats": "ReccoBeats",
}


@dataclass(frozen=True)
class Outcome:
    """One call's result: ``ok`` (it answered with data) or not, in a few words, and when."""

    ok: bool
    detail: str
    at: datetime
    not_owner: bool = False  # Spotify refused a playlist's entries to this reader


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SourceStatus:
    """The latest outcome per source (one object per bot process, shared by every job)."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._last: dict[str, Outcome] = {}
        self._paused_until: dict[str, datetime] = {}

    def record(self, source: str, ok: bool, detail: str = "", *, not_owner: bool = False) -> None:
        detail = detail or ("works" if ok else "failed")
        self._last[source] = Outcome(ok, detail, self._clock(), not_owner)

    def refused_entries_within(self, source: str, seconds: float) -> bool:
        """The latest read by ``source`` was a not-owner refusal, less than ``seconds`` ago."""
        out = self._last.get(source)
        return bool(out and out.not_owner and (self._clock() - out.at).total_seconds() < seconds)

    def pause(self, key: str, seconds: float) -> None:
        """``key`` is not to be asked for ``seconds`` (a quota's Retry-After)."""
        self._paused_until[key] = self._clock() + timedelta(seconds=seconds)

    def paused_for(self, key: str) -> float:
        """Seconds left of ``key``'s pause; 0 when it has none or it has passed."""
        until = self._paused_until.get(key)
        return max(0.0, (until - self._clock()).total_seconds()) if until else 0.0

    def last(self, source: str) -> Outcome | None:
        return self._last.get(source)

    def describe(self, source: str, *, now: datetime | None = None) -> str:
        """``"works (3 min ago)"`` / ``"refused: …"`` / ``"not tried yet"``."""
        out = self._last.get(source)
        if out is None:
            return "not tried yet"
        age = ((now or self._clock()) - out.at).total_seconds()
        return f"{out.detail} ({_ago(age)})"

    def lines(self, sources: dict[str, str], *, now: datetime | None = None) -> list[str]:
        return [f"{label}: {self.describe(key, now=now)}" for key, label in sources.items()]


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return "just now"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400 * 2:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


def about_lines(
    status: SourceStatus | None,
    *,
    spotify: Any = None,
    reccobeats: Any = None,
    pages_enabled: bool = True,
    linking: bool = False,
    now: datetime | None = None,
) -> tuple[list[str], list[str]]:
    """``/about``'s "Playlist reads" and "Audio features" lines, from what calls returned.

    ``spotify``: the app's gateway (None: no credentials); ``reccobeats``: its client (None:
    disabled); ``linking``: whether members can link accounts.
    """
    st = status or SourceStatus()

    def said(key: str, otherwise: str | None = None) -> str:
        if st.last(key) is None and otherwise is not None:
            return otherwise
        return st.describe(key, now=now)

    reads = [
        f"{READ_SOURCES['app']}: "
        + (said("app") if spotify is not None else "not configured (no credentials)"),
        f"{READ_SOURCES['linked']}: " + (said("linked") if linking else "linking not set up"),
        f"{READ_SOURCES['page']}: "
        + (said("page") if pages_enabled else "off (SPOTIFY_PUBLIC_PAGES=false)"),
    ]
    available = getattr(spotify, "audio_features_available", None) if spotify else None
    spotify_af = {
        True: "works",
        False: "not available to this app (403)",
        None: "not tried yet",
    }[available]
    features = [
        f"{FEATURE_SOURCES['spotify_features']}: "
        + (spotify_af if spotify is not None else "not configured"),
        f"{FEATURE_SOURCES['reccobeats']}: "
        + (
            f"enabled, {said('reccobeats')}"
            if reccobeats is not None
            else "disabled (RECCOBEATS_ENABLED=false)"
        ),
    ]
    return reads, features
