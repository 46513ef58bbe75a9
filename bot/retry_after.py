"""How long a server asked us to wait: one ``Retry-After`` parser, one way to say it in words.

Used by every HTTP client of the bot (Spotify's Web API and accounts service, ReccoBeats), so a
429 means the same wait whoever sent it. ``Retry-After`` is either delta-seconds (``"120"``) or
an HTTP-date (RFC 9110 §10.2.3, ``"Wed, 21 Oct 2015 07:28:00 GMT"``); both are understood.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


def parse_retry_after(
    headers: Mapping[str, Any] | None,
    default: float = 1.0,
    *,
    now: Callable[[], datetime] | None = None,
) -> float:
    """Seconds to wait from a response's ``Retry-After`` header (never negative).

    ``default`` when the header is absent or unreadable; an HTTP-date in the past gives 0.
    ``now`` (UTC) is injectable for tests.
    """
    if not headers:
        return default
    raw = headers.get("Retry-After")
    if raw is None:
        raw = headers.get("retry-after")  # plain dicts are case-sensitive
    if raw is None:
        return default
    raw = str(raw).strip()
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else default
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def wait_in_words(seconds: float) -> str:
    """``7260`` → "about 2 hours", ``90`` → "about 2 minutes", ``12`` → "12 seconds"."""
    s = max(0.0, float(seconds))
    if s < 60:
        n = max(1, math.ceil(s))
        return f"{n} second{'s' if n != 1 else ''}"
    if s < 3600:
        n = max(1, round(s / 60))
        return f"about {n} minute{'s' if n != 1 else ''}"
    if s < 86400 * 2:
        n = max(1, round(s / 3600))
        return f"about {n} hour{'s' if n != 1 else ''}"
    n = round(s / 86400)
    return f"about {n} days"
