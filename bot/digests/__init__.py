"""Scheduled playlist digests, split by concern (this package never imports discord).

A guild subscribes a channel to a playlist (daily or weekly, at a local time in an IANA time
zone). At each slot the :class:`DigestScheduler` re-reads the playlist through the job queue —
which reuses the stored analysis when the playlist's ``snapshot_id`` did not change — and
hands a :class:`DigestMessage` to its ``poster``: the digest cog, which owns the scheduler's
loop (``start(poster)`` in ``cog_load``, ``close()`` in ``cog_unload``) and turns messages into
Discord messages.

* :mod:`.schedule`: time / weekday / time-zone parsing and :class:`Schedule` (slot maths, DST).
* :mod:`.changes`: :func:`summarize_changes` between two analyses (clusters matched by overlap).
* :mod:`.messages`: :class:`DigestMessage`, :class:`RunResult`, :class:`DestinationGone`,
  :class:`CreatorGone`.
* :mod:`.scheduler`: :class:`DigestScheduler` (the loop, runs, pausing, the /digest commands).
"""

from bot.digests.changes import (
    ClusterChange,
    DigestChanges,
    TrackChange,
    match_clusters,
    summarize_changes,
)
from bot.digests.messages import (
    CreatorCheck,
    CreatorGone,
    DestinationGone,
    DigestMessage,
    Poster,
    RunResult,
)
from bot.digests.schedule import (
    WEEKDAYS,
    DigestError,
    Schedule,
    parse_at,
    parse_weekday,
    resolve_timezone,
    suggest_timezones,
)
from bot.digests.scheduler import (
    MAX_SUBSCRIPTIONS_PER_GUILD,
    PAUSE_ERRORS,
    TRANSIENT_ERRORS,
    Clock,
    DigestScheduler,
    SystemClock,
)

__all__ = [
    "MAX_SUBSCRIPTIONS_PER_GUILD",
    "PAUSE_ERRORS",
    "TRANSIENT_ERRORS",
    "WEEKDAYS",
    "Clock",
    "ClusterChange",
    "CreatorCheck",
    "CreatorGone",
    "DestinationGone",
    "DigestChanges",
    "DigestError",
    "DigestMessage",
    "DigestScheduler",
    "Poster",
    "RunResult",
    "Schedule",
    "SystemClock",
    "TrackChange",
    "match_clusters",
    "parse_at",
    "parse_weekday",
    "resolve_timezone",
    "suggest_timezones",
    "summarize_changes",
]
