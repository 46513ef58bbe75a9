"""Collect audio features for a playlist's tracks from the cheapest source that has them.

Order, per track: features carried by the source (Exportify CSV / demo data) → the feature
cache → Spotify ``audio-features`` (only while the app is not known to lack it) → ReccoBeats.
Everything fetched is cached, including "this provider has nothing for this id" (None), so
analysing the same playlist again makes no feature requests at all. Provider trouble (rate
limits, outages) only leaves features missing; it never fails the analysis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.errors import PipelineError
from bot.features.cache import FeatureCache
from bot.features.reccobeats import ReccoBeatsClient, ReccoBeatsResult
from bot.models import (
    AUDIO_FEATURES,
    FEATURE_KEYS,
    FeatureTable,
    Progress,
    ProgressCallback,
    Track,
    no_progress,
)

if TYPE_CHECKING:
    from bot.features.prefetch import FeaturePrefetch
    from bot.sources.spotify import SpotifyGateway

log = logging.getLogger(__name__)

SOURCES = ("spotify", "reccobeats")


def _complete_all(found: Mapping[str, dict[str, float]]) -> dict[str, dict[str, float] | None]:
    """:func:`_complete` of every value. 10,000 tracks take ~50 ms of pure Python: callers
    run this in a thread so the event loop keeps running meanwhile."""
    return {track_id: _complete(values) for track_id, values in found.items()}


def _complete(values: dict[str, float] | None) -> dict[str, float] | None:
    """Only the known keys, and only if all 9 audio features are there."""
    if not values or not all(values.get(k) is not None for k in AUDIO_FEATURES):
        return None
    return {k: float(values[k]) for k in FEATURE_KEYS if values.get(k) is not None}


async def gather_features(
    tracks: list[Track],
    *,
    spotify: SpotifyGateway | None,
    reccobeats: ReccoBeatsClient | None,
    cache: FeatureCache | None,
    progress: ProgressCallback = no_progress,
    prefetched: FeaturePrefetch | None = None,
) -> FeatureTable:
    """``prefetched``: ReccoBeats lookups already started while the pages arrived
    (:mod:`bot.features.prefetch`); their answers are used, only the rest is asked."""
    table = FeatureTable()
    ids = list(dict.fromkeys(t.id for t in tracks if t.id))
    total = len(ids)

    async def report() -> None:
        await progress(Progress(stage="featurizing", done=len(table.values), total=total))

    def add(
        track_id: str, values: dict[str, float] | None, source: str, *, completed: bool = False
    ) -> bool:
        feats = values if completed else _complete(values)
        if feats is None or track_id in table.values:
            return False
        table.values[track_id] = feats
        table.sources[track_id] = source
        return True

    # 1. Carried by the source itself.
    for t in tracks:
        if t.id:
            add(t.id, t.features, "csv")
    await report()

    def remaining() -> list[str]:
        return [i for i in ids if i not in table.values]

    # 2. Cache (Spotify's values first: they are the reference for the 2020-era data).
    known_missing: dict[str, set[str]] = {s: set() for s in SOURCES}
    if cache is not None and remaining():
        for source in SOURCES:
            todo = remaining()
            if not todo:
                break
            cached = await cache.get_many(source, todo)
            for track_id, values in cached.items():
                if values is None:
                    known_missing[source].add(track_id)
                else:
                    add(track_id, values, source)
        await report()

    # 3. Spotify, unless the app is known to lack audio-features.
    if spotify is not None and spotify.audio_features_available is not False:
        todo = [i for i in remaining() if i not in known_missing["spotify"]]
        if todo:
            fetched = await _from_spotify(spotify, todo)
            if fetched is not None:
                completed = await asyncio.to_thread(_complete_all, fetched)
                for track_id, feats in completed.items():
                    add(track_id, feats, "spotify", completed=True)
                if cache is not None:
                    await cache.put_many("spotify", {i: completed.get(i) for i in todo})
                await report()

    # 4. ReccoBeats.
    if reccobeats is not None:
        todo = [i for i in remaining() if i not in known_missing["reccobeats"]]
        if todo:
            done_ids = len(table.values)

            async def on_batch(n: int) -> None:
                nonlocal done_ids
                done_ids += n
                await progress(
                    Progress(stage="featurizing", done=min(done_ids, total), total=total)
                )

            result = ReccoBeatsResult()
            if prefetched is not None:
                result = await prefetched.collect(todo)
                await on_batch(len(result.found) + len(result.missing) + len(result.failed))
            covered = set(result.found) | result.missing | result.failed
            rest = [i for i in todo if i not in covered]
            if rest:
                more = await reccobeats.lookup(rest, on_batch=on_batch)
                result.found.update(more.found)
                result.missing |= more.missing
                result.failed |= more.failed
            await _retry_by_isrc(reccobeats, tracks, result)
            completed = await asyncio.to_thread(_complete_all, result.found)
            for track_id, feats in completed.items():
                add(track_id, feats, "reccobeats", completed=True)
            if cache is not None:
                answered = {i: completed.get(i) for i in todo if i not in result.failed}
                if answered:
                    await cache.put_many("reccobeats", answered)
            table.unanswered = sum(i not in table.values for i in result.failed)
            if table.unanswered:
                log.info("ReccoBeats could not answer for %d tracks", table.unanswered)
            await report()
    return table


async def _retry_by_isrc(
    reccobeats: ReccoBeatsClient, tracks: list[Track], result: ReccoBeatsResult
) -> None:
    """Ask ReccoBeats again, by ISRC, for the tracks it doesn't know under their Spotify id
    (relinked or re-released recordings are often stored under another id). Found ones move
    to ``result.found``; failed ones to ``result.failed`` (not cached as missing)."""
    isrcs = {t.id: t.isrc for t in tracks if t.isrc and t.id in result.missing}
    if not isrcs:
        return
    again = await reccobeats.lookup_isrc(isrcs)
    result.found.update(again.found)
    result.missing -= set(again.found) | again.failed
    result.failed |= again.failed
    log.info("ReccoBeats by ISRC: %d of %d more tracks found", len(again.found), len(isrcs))


async def _from_spotify(
    spotify: SpotifyGateway, ids: list[str]
) -> dict[str, dict[str, float]] | None:
    """Spotify's features, or None when Spotify can't give any (403 / trouble)."""
    from bot.sources.spotify import FeaturesUnavailable

    try:
        return await spotify.audio_features(ids)
    except FeaturesUnavailable:
        return None
    except PipelineError as exc:  # rate limit, outage: fall through to ReccoBeats
        log.info("Spotify audio-features unavailable for this run: %s", exc.code)
        return None
