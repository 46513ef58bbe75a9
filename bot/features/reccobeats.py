"""ReccoBeats audio features: the fallback when the Spotify app has no ``audio-features``.

``GET {base}/audio-features?ids=<up to 40 Spotify ids>`` answers
``{"content": [{"id": "<ReccoBeats uuid>", "href": "https://open.spotify.com/track/<id>",
"danceability": …, …}]}``. Results are matched back to Spotify ids through ``href`` (the
``id`` is ReccoBeats' own); ids it does not know are simply absent.

ISRCs are accepted in ``ids=`` too (ReccoBeats changelog, 2025-12-10: "Support ISRC for get
multiple audio features API"; 2025-12-13: "Add ISRC to the response"). :meth:`lookup_isrc` asks
again by ISRC for tracks ReccoBeats does not know under their Spotify id (a relinked or
re-released recording is often stored under another id), matching rows back through ``isrc``.

Failures never crash an analysis: 429s with a short Retry-After are awaited, 5xx and timeouts
are retried once, a host that can't be reached or doesn't answer in time is left alone for
``UNREACHABLE_PAUSE_S``, and whatever still fails is reported as *failed* (not cached, so a later
run asks again) while absent ids are reported as *missing* (cacheable as "known missing"). An
answer the bot can't match back (rows whose ``href`` names no Spotify track, a body without a
``content`` list: ReccoBeats changed its API) leaves the batch's unmatched ids *failed*, never
*missing*, with one WARNING: caching them as missing would have hidden every track's sound for
the cache's 90 days.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.models import AUDIO_FEATURES, FEATURE_KEYS
from bot.retry_after import parse_retry_after
from bot.sources.exportify import FEATURE_RANGES, read_number
from bot.sources.links import SPOTIFY_ID_RE
from bot.sources.status import SourceStatus

log = logging.getLogger(__name__)

BATCH = 40
# After ReccoBeats could not be reached at all (DNS failure, refused connection: no network or
# an outage), no request is sent for this long; the ids count as failed (not cached), so a
# later run asks again. Offline, a 10,000-track CSV made 250 failing batches (2 attempts each,
# 21 s) before the clustering could start.
UNREACHABLE_PAUSE_S = 60.0
_HREF_RE = re.compile(r"/track/([0-9A-Za-z]{22})")
# ISO 3901: country (2 letters), registrant (3 alphanumerics), year (2 digits), number (5 digits).
ISRC_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")


def normalise_isrc(raw: str | None) -> str | None:
    """``"us-um7-21-04140"`` → ``"USUM72104140"``; None when it isn't an ISRC."""
    code = (raw or "").replace("-", "").replace(" ", "").upper()
    return code if ISRC_RE.match(code) else None


@dataclass
class _Answer:
    """One batch's 200 answer: features by the asked key, and what could not be matched back
    (rows whose ``href`` names no Spotify track, a body without a ``content`` list), if any."""

    found: dict[str, dict[str, float]]
    unmatched: str | None = None


@dataclass
class ReccoBeatsResult:
    """Outcome of one lookup: features found, ids answered-but-absent, ids that failed."""

    found: dict[str, dict[str, float]] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)


class ReccoBeatsClient:
    """Small async client; one aiohttp session, created on first use inside the event loop."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        concurrency: int = 8,
        max_retry_after_s: float = 10.0,
        retries: int = 1,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        status: SourceStatus | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.status = status  # /about: what the latest lookup actually returned
        self.timeout_s = timeout_s
        self.concurrency = max(1, concurrency)
        self.max_retry_after_s = max_retry_after_s
        self.retries = retries
        self.request_count = 0
        self._sleep = sleep or asyncio.sleep
        self._clock = clock
        self._unreachable_until = -math.inf
        self._warned_unmatched = False
        self._session: aiohttp.ClientSession | None = None
        self._sem: asyncio.Semaphore | None = None

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"Accept": "application/json"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def audio_features(self, ids: list[str]) -> dict[str, dict[str, float]]:
        """Features by Spotify id for the ids ReccoBeats knows (≤40 per request, concurrent)."""
        return (await self.lookup(ids)).found

    async def lookup(
        self,
        ids: list[str],
        on_batch: Callable[[int], Awaitable[None]] | None = None,
    ) -> ReccoBeatsResult:
        """Like :meth:`audio_features`, also saying which ids are missing vs failed.

        ``on_batch(n)`` is awaited after each batch with the number of ids it covered.
        """
        unique = [i for i in dict.fromkeys(ids) if i and SPOTIFY_ID_RE.match(i)]
        return await self._lookup(unique, _parse, on_batch)

    async def lookup_isrc(
        self,
        isrc_by_track: Mapping[str, str],
        on_batch: Callable[[int], Awaitable[None]] | None = None,
    ) -> ReccoBeatsResult:
        """Features by ISRC, keyed by the caller's track ids (``{track_id: isrc}``).

        Tracks whose ISRC is malformed are reported missing without a request; several tracks
        sharing one ISRC are asked once and all get the answer.
        """
        tracks_by_isrc: dict[str, list[str]] = {}
        bad: set[str] = set()
        for track_id, raw in isrc_by_track.items():
            code = normalise_isrc(raw)
            if code is None:
                bad.add(track_id)
            else:
                tracks_by_isrc.setdefault(code, []).append(track_id)
        by_isrc = await self._lookup(list(tracks_by_isrc), _parse_isrc, on_batch)
        result = ReccoBeatsResult(missing=set(bad))
        for code, track_ids in tracks_by_isrc.items():
            for track_id in track_ids:
                if code in by_isrc.found:
                    result.found[track_id] = dict(by_isrc.found[code])
                elif code in by_isrc.failed:
                    result.failed.add(track_id)
                else:
                    result.missing.add(track_id)
        return result

    async def _lookup(
        self,
        unique: list[str],
        parse: Callable[[Any, list[str]], _Answer],
        on_batch: Callable[[int], Awaitable[None]] | None,
    ) -> ReccoBeatsResult:
        result = ReccoBeatsResult()
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        sem = self._sem

        async def one(chunk: list[str]) -> None:
            async with sem:
                answer = await self._fetch_batch(chunk, parse)
            if answer is None:
                result.failed.update(chunk)
            else:
                result.found.update(answer.found)
                # Unmatched rows may be the features of any id not found: unknown, not missing.
                rest = result.failed if answer.unmatched else result.missing
                rest.update(i for i in chunk if i not in answer.found)
            if on_batch is not None:
                await on_batch(len(chunk))

        chunks = [unique[i : i + BATCH] for i in range(0, len(unique), BATCH)]
        await asyncio.gather(*(one(c) for c in chunks))
        if self.status is not None and chunks:
            if result.found or not result.failed:
                self.status.record("reccobeats", True, "works")
            else:
                self.status.record("reccobeats", False, "failed (rate limit or outage)")
        return result

    async def _fetch_batch(
        self,
        chunk: list[str],
        parse: Callable[[Any, list[str]], _Answer],
    ) -> _Answer | None:
        """One batch; None when it could not be answered (after bounded retries)."""
        url = f"{self.base_url}/audio-features"
        attempts = 0
        while True:
            if self._clock() < self._unreachable_until:
                return None
            attempts += 1
            self.request_count += 1
            try:
                session = await self._get_session()
                async with session.get(url, params={"ids": ",".join(chunk)}) as resp:
                    if resp.status == 200:
                        answer = parse(await resp.json(content_type=None), chunk)
                        if answer.unmatched and not self._warned_unmatched:
                            self._warned_unmatched = True
                            log.warning(
                                "ReccoBeats answered %s: has its API changed? Tracks it may "
                                "have answered for count as not answered.",
                                answer.unmatched,
                            )
                        return answer
                    if resp.status == 429:
                        wait = parse_retry_after(resp.headers)
                        if wait <= self.max_retry_after_s and attempts <= self.retries + 2:
                            await self._sleep(wait)
                            continue
                        log.warning("ReccoBeats rate limit (Retry-After %.0fs); skipping", wait)
                        return None
                    if resp.status >= 500 and attempts <= self.retries:
                        await self._sleep(0.5 * attempts)
                        continue
                    log.warning("ReccoBeats answered HTTP %s for %d ids", resp.status, len(chunk))
                    return None
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                if attempts <= self.retries:
                    await self._sleep(0.5 * attempts)
                    continue
                # Unreachable, or connected but silent past every attempt's timeout (a hung
                # server made a 2,000-track file wait 158 s, 8 batches at a time, before the
                # clustering could start; 10,000 tracks would wait ~13 min).
                if isinstance(exc, aiohttp.ClientConnectorError | TimeoutError):
                    if self._clock() >= self._unreachable_until:  # once per pause
                        log.warning(
                            "ReccoBeats %s (%s); not asked again for %.0f s",
                            "not answering" if isinstance(exc, TimeoutError) else "unreachable",
                            type(exc).__name__,
                            UNREACHABLE_PAUSE_S,
                        )
                    self._unreachable_until = self._clock() + UNREACHABLE_PAUSE_S
                    return None
                log.warning("ReccoBeats request failed: %s", type(exc).__name__)
                return None


def _row_features(row: dict) -> dict[str, float] | None:
    """The row's features when all 9 audio features are finite numbers in their range (the
    CSV's :data:`~bot.sources.exportify.FEATURE_RANGES`); a value outside is left out.

    Numbers sent as strings (``"0.71"``) are read like the CSV's cells: a row of them counted
    as missing and was cached so for 90 days."""
    feats: dict[str, float] = {}
    for k in FEATURE_KEYS:
        raw = row.get(k)
        v = read_number(raw) if isinstance(raw, str) else raw
        if isinstance(v, int | float) and not isinstance(v, bool):
            low, high = FEATURE_RANGES[k]
            if low <= v <= high:  # False for NaN
                feats[k] = float(v)
    return feats if all(k in feats for k in AUDIO_FEATURES) else None


def _rows(payload: Any) -> list[dict] | None:
    """The answer's ``content`` rows; None when the body has no ``content`` list."""
    rows = payload.get("content") if isinstance(payload, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else None


def _parse(payload: Any, asked: list[str]) -> _Answer:
    """Map ``content`` rows back to Spotify ids through ``href``; ignore anything unasked."""
    return _match(payload, asked, lambda row: _href_id(row.get("href")))


def _parse_isrc(payload: Any, asked: list[str]) -> _Answer:
    """Map ``content`` rows back to the asked ISRCs through their ``isrc`` field."""
    return _match(payload, asked, lambda row: normalise_isrc(_str(row.get("isrc"))))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _href_id(href: Any) -> str | None:
    m = _HREF_RE.search(_str(href) or "")
    return m.group(1) if m else None


def _match(payload: Any, asked: list[str], key: Callable[[dict], str | None]) -> _Answer:
    """The rows' features by ``key(row)`` among ``asked`` (the first row of each key); rows
    without a key are said in ``unmatched``."""
    rows = _rows(payload)
    if rows is None:
        return _Answer({}, unmatched="without a content list")
    asked_set = set(asked)
    answer = _Answer({})
    keyless = unreadable = 0
    for row in rows:
        code = key(row)
        if code is None:
            keyless += 1
        elif code in asked_set and code not in answer.found:
            feats = _row_features(row)
            if feats is not None:
                answer.found[code] = feats
            else:
                unreadable += 1
    if keyless:
        answer.unmatched = f"{keyless} of {len(rows)} rows without the track they describe"
    elif unreadable and not answer.found:
        # Not one row readable: the format changed (another number encoding, nested values),
        # not every track lacking a sound; a lone bad row among good ones stays missing.
        answer.unmatched = f"{unreadable} of {len(rows)} rows without readable features"
    return answer
