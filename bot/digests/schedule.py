"""When digests run: validated user input (time, weekday, IANA zone) and the slot maths.

* local wall-clock times via :mod:`zoneinfo`, so a daily 09:00 stays 09:00 across DST changes;
* a local time that does not exist (spring-forward gap) moves forward by the length of the
  gap (02:30 → 03:30), an ambiguous one (fall-back) runs at its first occurrence — exactly
  what ``fold=0`` means in PEP 495 (see :meth:`Schedule.next_after`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.errors import PipelineError
from storage.digests import Subscription

Every = Literal["daily", "weekly"]
WEEKDAYS: tuple[str, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)

# Shown first by the time-zone autocomplete when the user has not typed anything.
COMMON_TIMEZONES: tuple[str, ...] = (
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Amsterdam",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Istanbul",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Sydney",
    "Pacific/Auckland",
)


class DigestError(PipelineError):
    """A digest command that cannot be done (bad time, unknown zone, limits, unknown id)."""

    code = "digest"


@lru_cache(maxsize=1)
def _zones_by_lower() -> dict[str, str]:
    zones = {z.lower(): z for z in available_timezones()}
    zones.setdefault("utc", "UTC")
    return zones


def resolve_timezone(name: str | None) -> str:
    """The canonical IANA name for ``name`` (case-insensitive), default UTC.

    Raises :class:`DigestError` for anything zoneinfo does not know (only names from the tz
    database are accepted, never file paths)."""
    text = (name or "UTC").strip()
    canonical = _zones_by_lower().get(text.lower())
    if canonical is None:
        raise DigestError(
            f"Unknown time zone `{text[:60]}`. Use an IANA name such as `Europe/Paris`, "
            "`America/New_York` or `UTC` (the option suggests names as you type)."
        )
    try:
        ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - tzdata mismatch
        raise DigestError(f"The time zone `{canonical}` is not available on this bot.") from exc
    return canonical


def suggest_timezones(query: str, *, limit: int = 25) -> list[str]:
    """Time-zone names for autocomplete: common ones first, then any zone containing ``query``
    (matches at the start of the city part rank before matches elsewhere)."""
    q = query.strip().lower().replace(" ", "_")
    if not q:
        return list(COMMON_TIMEZONES[:limit])
    zones = sorted(set(_zones_by_lower().values()))
    common = [z for z in COMMON_TIMEZONES if q in z.lower()]

    def rank(zone: str) -> tuple[int, str]:
        low = zone.lower()
        city = low.rsplit("/", 1)[-1]
        if city.startswith(q) or low.startswith(q):
            return (0, zone)
        return (1, zone)

    rest = sorted((z for z in zones if q in z.lower() and z not in common), key=rank)
    return (common + rest)[:limit]


_TIME_RE = re.compile(r"^\s*(\d{1,2})[:.h](\d{2})\s*$")


def parse_at(text: str) -> str:
    """``"9:05"``, ``"09:05"``, ``"09.05"`` or ``"9h05"`` → ``"09:05"``; else DigestError."""
    match = _TIME_RE.match(text or "")
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour < 24 and minute < 60:
            return f"{hour:02d}:{minute:02d}"
    raise DigestError(
        f"`{(text or '')[:20]}` is not a time. Use 24-hour `HH:MM`, e.g. `09:00` or `18:30`."
    )


def parse_weekday(value: str | int | None) -> int:
    """A weekday name (any case, 3+ letters) or 0–6 (0 = Monday) → 0–6; default Monday."""
    if value is None or value == "":
        return 0
    if isinstance(value, int):
        if 0 <= value <= 6:
            return value
    else:
        text = value.strip().lower()
        if text.isdigit() and int(text) <= 6:
            return int(text)
        for i, name in enumerate(WEEKDAYS):
            if len(text) >= 3 and name.lower().startswith(text):
                return i
    raise DigestError(f"`{value}` is not a weekday. Use Monday … Sunday.")


@dataclass(frozen=True)
class Schedule:
    """When a digest runs: every day or week (on ``weekday``) at local ``at`` in ``timezone``."""

    every: Every
    at: str  # HH:MM
    timezone: str = "UTC"
    weekday: int | None = None  # 0 = Monday; weekly only

    @classmethod
    def build(
        cls,
        every: str,
        at: str,
        timezone: str | None = None,
        weekday: str | int | None = None,
    ) -> Schedule:
        """Validate user input (raises DigestError with a message fit for the user)."""
        if every not in ("daily", "weekly"):
            raise DigestError("`every` must be `daily` or `weekly`.")
        return cls(
            every=every,  # type: ignore[arg-type]
            at=parse_at(at),
            timezone=resolve_timezone(timezone),
            weekday=parse_weekday(weekday) if every == "weekly" else None,
        )

    @classmethod
    def of(cls, sub: Subscription) -> Schedule:
        """The schedule of a stored subscription (re-validated: tzdata can change)."""
        return cls.build(sub.every, sub.at_time, sub.timezone, sub.weekday)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment`` (aware), as an aware UTC datetime."""
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        zone = self.zone
        hour, minute = (int(x) for x in self.at.split(":"))
        local_day = moment.astimezone(zone).date()
        # Start a day early: near midnight the previous local day's slot can still be ahead.
        for offset in range(-1, 9):
            day = local_day + timedelta(days=offset)
            if self.every == "weekly" and day.weekday() != (self.weekday or 0):
                continue
            # fold=0: a gap time is read with the pre-transition offset, which lands after the
            # gap (02:30 → 03:30); an ambiguous time is its first occurrence.
            slot = datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
            if slot > moment:
                return slot
        raise AssertionError("unreachable: a slot exists within 8 days")  # pragma: no cover

    def describe(self) -> str:
        """e.g. ``every Monday at 09:00 (Europe/Paris)``."""
        when = "every day" if self.every == "daily" else f"every {WEEKDAYS[self.weekday or 0]}"
        return f"{when} at {self.at} ({self.timezone})"
