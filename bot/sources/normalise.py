"""The rules every source's result obeys, applied in one place.

Sources (Spotify API, public page, Exportify CSV, demo) return what they read: tracks in
order plus the reasons they skipped entries. :func:`first_of_each` drops repeated track ids
(counted as "duplicate"); :func:`normalise` adds the empty and too-large checks the pipeline
applies to every fetched source; :func:`check_total` refuses a too-large source from its
metadata alone, before any entry is read.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.errors import EmptyPlaylist, TooLarge, TooSmall
from bot.models import MIN_TRACKS, FetchResult, PlaylistMeta, Track

# How a skip reason reads in a sentence (singular; an "s" is added for more than one).
# What each skip reason is called (one, many): the empty-playlist message, the overview line,
# the CLI and report.md all count skipped items with these words.
SKIPPED_WORDS: dict[str, tuple[str, str]] = {
    "duplicate": ("duplicate", "duplicates"),
    "local": ("local file", "local files"),
    "episode": ("podcast episode", "podcast episodes"),
    "null": ("removed item", "removed items"),
    "unavailable": ("unavailable track", "unavailable tracks"),
    "over_limit": ("track over the size limit", "tracks over the size limit"),
    "invalid": ("unreadable row", "unreadable rows"),
}


def skipped_count(key: str, n: int) -> str:
    """e.g. "2 local files", "1 duplicate", "1,200 podcast episodes"."""
    one, many = SKIPPED_WORDS.get(key, (key, key))
    return f"{n:,} {one if n == 1 else many}"


def first_of_each(
    items: Iterable[Track | str], skipped: dict[str, int] | None = None
) -> tuple[list[Track], dict[str, int]]:
    """Tracks in order, the first occurrence of each id only; a ``str`` item is a skip reason.

    Returns the tracks and the skip counts (``skipped`` plus this call's, zero counts left
    out). Tracks without an id count as "null".
    """
    counts = dict(skipped or {})
    tracks: list[Track] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, str):
            reason = item
        elif not item.id:
            reason = "null"
        elif item.id in seen:
            reason = "duplicate"
        else:
            seen.add(item.id)
            tracks.append(item)
            continue
        counts[reason] = counts.get(reason, 0) + 1
    return tracks, {k: v for k, v in counts.items() if v}


def too_large_message(n: int, limit: int, name: str | None = None) -> str:
    what = f"“{name}”" if name else "This playlist"
    return (
        f"{what} has {n:,} tracks; this bot analyses at most {limit:,}. Try a smaller "
        "playlist, or split this one."
    )


def check_total(meta: PlaylistMeta, limit: int) -> None:
    """TooLarge when the metadata already says the source has more than ``limit`` tracks."""
    if meta.total is not None and meta.total > limit:
        raise TooLarge(too_large_message(meta.total, limit, meta.name))


def _skipped_note(skipped: dict[str, int]) -> str:
    """e.g. " (skipped: 2 local files, 1 podcast episode)", or "" when nothing was skipped."""
    parts = [skipped_count(k, n) for k, n in skipped.items() if n]
    return f" (skipped: {', '.join(parts)})" if parts else ""


def empty_message(meta: PlaylistMeta, skipped: dict[str, int]) -> str:
    why = _skipped_note(skipped)
    return f"“{meta.name}” has no playable Spotify tracks{why}, so there's nothing to analyse."


def check_not_empty(meta: PlaylistMeta, tracks: list[Track], skipped: dict[str, int]) -> None:
    """EmptyPlaylist when nothing playable is left (the message lists what was skipped)."""
    if not tracks:
        raise EmptyPlaylist(empty_message(meta, skipped))


def too_small_message(meta: PlaylistMeta, n: int, skipped: dict[str, int]) -> str:
    """e.g. "“Single Ladies EP” has only 4 playable tracks; clustering needs at least 10."
    (by name: the source may be an album, an EP or a file, not a playlist)."""
    return (
        f"“{meta.name}” has only {n} playable track{'s' if n != 1 else ''}"
        f"{_skipped_note(skipped)}; "
        f"clustering needs at least {MIN_TRACKS}."
    )


def normalise(fetched: FetchResult, limit: int) -> FetchResult:
    """``fetched`` with repeated ids dropped; EmptyPlaylist / TooSmall / TooLarge when it
    breaks a rule."""
    tracks, skipped = first_of_each(fetched.tracks, fetched.skipped)
    check_not_empty(fetched.meta, tracks, skipped)
    if len(tracks) < MIN_TRACKS:  # said now, before any feature request is made
        raise TooSmall(too_small_message(fetched.meta, len(tracks), skipped))
    if len(tracks) > limit:
        raise TooLarge(too_large_message(len(tracks), limit, fetched.meta.name))
    if len(tracks) == len(fetched.tracks) and skipped == fetched.skipped:
        return fetched
    return FetchResult(meta=fetched.meta, tracks=tracks, skipped=skipped)
