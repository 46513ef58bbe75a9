"""ReccoBeats audio features: the fallback when the Spotify app has no ``audio-features``.

``GET {base}/audio-features?ids=<up to 40 Spotify ids>`` answers
``{"content": [{"id": "<ReccoBeats uuid>", "href": "https://open.spotify.com/track/<id>",
"danceability": …, …}]}``. Results are matched back to Spotify ids through ``href`` (the
``id`` is ReccoBeats' own); ids it does not know are simply absent.

Failures never crash an analysis: 429s with a short Retry-After are awaited, 5xx and timeouts
are retried once, and whatever still fails is reported as *failed* (not cached, so a later
run asks again) while absent ids are reported as *missing* (cacheable as "known missing").
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.models import AUDIO_FEATURES, FEATURE_KEYS
from bot.retry_after import parse_retry_after
from bot.sources.links import SPOTIFY_ID_RE

log = logging.getLogger(__name__)

BATCH = 40
_HREF_RE = re.compile(r"/track/([0-9A-Za-z]{22})")


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.concurrency = max(1, concurrency)
        self.max_retry_after_s = max_retry_after_s
        self.retries = retries
        self.request_count = 0
        self._sleep = sleep or asyncio.sleep
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
        result = ReccoBeatsResult()
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        sem = self._sem

        async def one(chunk: list[str]) -> None:
            async with sem:
                found = await self._fetch_batch(chunk)
            if found is None:
                result.failed.update(chunk)
            else:
                result.found.update(found)
                result.missing.update(i for i in chunk if i not in found)
            if on_batch is not None:
                await on_batch(len(chunk))

        chunks = [unique[i : i + BATCH] for i in range(0, len(unique), BATCH)]
        await asyncio.gather(*(one(c) for c in chunks))
        return result

    async def _fetch_batch(self, chunk: list[str]) -> dict[str, dict[str, float]] | None:
        """One batch; None when it could not be answered (after bounded retries)."""
        url = f"{self.base_url}/audio-features"
        attempts = 0
        while True:
            attempts += 1
            self.request_count += 1
            try:
                session = await self._get_session()
                async with session.get(url, params={"ids": ",".join(chunk)}) as resp:
                    if resp.status == 200:
                        return _parse(await resp.json(content_type=None), chunk)
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
                log.warning("ReccoBeats request failed: %s", type(exc).__name__)
                return None


def _parse(payload: Any, asked: list[str]) -> dict[str, dict[str, float]]:
    """Map ``content`` rows back to Spotify ids through ``href``; ignore anything unasked."""
    asked_set = set(asked)
    rows = payload.get("content") if isinstance(payload, dict) else None
    out: dict[str, dict[str, float]] = {}
    for row in rows or []:
        if not isinstance(row, dict):
            continue
        m = _HREF_RE.search(str(row.get("href") or ""))
        if not m or m.group(1) not in asked_set:
            continue
        feats: dict[str, float] = {}
        for k in FEATURE_KEYS:
            v = row.get(k)
            if isinstance(v, int | float) and not isinstance(v, bool):
                feats[k] = float(v)
        if all(k in feats for k in AUDIO_FEATURES):
            out[m.group(1)] = feats
    return out
