"""Ask ReccoBeats for a page's features as soon as that page of playlist items has arrived.

Without this, a 10,000-track playlist's 200 item pages and its 250 ReccoBeats calls ran one
after the other (3.2 s + 3.5 s at 100 ms latency, issue #16); they go to different services,
so they can overlap. The Spotify paging code hands every converted page to
:data:`bot.sources.page_sink.page_sink`
(a context variable the job sets around its fetch step); :class:`FeaturePrefetch` batches the
new track ids by 40 and looks each full batch up while later pages are still being read.

What it found is only held in memory until :func:`bot.features.gather.gather_features` takes
it (``prefetched=``); the features checkpoint is still written after the featurize step as
before, so a crash mid-way simply loses the prefetched answers and the resumed job asks again.

Bounds: the client's semaphore (``concurrency`` requests per service) as before, plus one
semaphore per job of the same size *around the wait for it*: a job has at most that many
batches queued for the service, so with several jobs the (FIFO) service semaphore interleaves
them instead of serving one big playlist's whole backlog first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from bot.features.cache import FeatureCache
from bot.features.reccobeats import BATCH, ReccoBeatsClient, ReccoBeatsResult
from bot.models import Track
from bot.sources.links import SPOTIFY_ID_RE
from bot.sources.page_sink import page_sink

log = logging.getLogger(__name__)


@contextlib.contextmanager
def feeding(prefetch: FeaturePrefetch | None) -> Iterator[None]:
    """Within this block, pages read by this task (and tasks it starts) feed ``prefetch``."""
    if prefetch is None:
        yield
        return
    feed = _Feed(prefetch)
    token = page_sink.set(feed)
    try:
        yield
    except BaseException:
        prefetch.cancel()  # the fetch failed: nothing will collect these answers
        raise
    else:
        prefetch.flush()
    finally:
        feed.prefetch = None
        page_sink.reset(token)


class _Feed:
    """The page sink of one fetch: hands pages to its prefetch until the fetch ends.

    Every task and timer started during the fetch keeps a copy of the context, and with it
    the sink (aiohttp's keep-alive timers for 15 s and more): a bound ``add_page`` there kept
    the prefetch, and every feature it found, alive after the job had collected them
    (4.3 MB at 10,000 tracks, through the CPU steps). Detached at the end, this holds nothing.
    """

    def __init__(self, prefetch: FeaturePrefetch) -> None:
        self.prefetch: FeaturePrefetch | None = prefetch

    def __call__(self, items: Sequence[Any]) -> None:
        if self.prefetch is not None:
            self.prefetch.add_page(items)


class FeaturePrefetch:
    """One job's early ReccoBeats lookups (see the module docstring).

    Pages go through one consumer task in arrival order: it drops ids already cached (by
    either provider) and starts a lookup per full batch of 40 of the rest, so the number of
    requests stays the minimum ``ceil(uncached ids / 40)``.
    """

    def __init__(
        self,
        reccobeats: ReccoBeatsClient,
        cache: FeatureCache | None = None,
        *,
        concurrency: int | None = None,
    ) -> None:
        self.reccobeats = reccobeats
        self.cache = cache
        self._sem = asyncio.Semaphore(max(1, concurrency or reccobeats.concurrency))
        self._seen: set[str] = set()
        self._pending: list[str] = []
        self._pages: asyncio.Queue[list[str] | None] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.result = ReccoBeatsResult()

    def add_page(self, items: Sequence[Any]) -> None:
        """Queue the page's new Spotify track ids (called by the paging code, synchronously)."""
        ids: list[str] = []
        for item in items:
            if isinstance(item, Track) and item.id and item.id not in self._seen:
                self._seen.add(item.id)
                if SPOTIFY_ID_RE.match(item.id):
                    ids.append(item.id)
        if ids:
            self._ensure_consumer()
            self._pages.put_nowait(ids)

    def flush(self) -> None:
        """The fetch is over: the last, partial batch is looked up too."""
        if self._consumer is not None:
            self._pages.put_nowait(None)

    def _ensure_consumer(self) -> None:
        if self._consumer is None:
            self._consumer = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        while (ids := await self._pages.get()) is not None:
            if self.cache is not None:  # already known (e.g. another playlist): no request
                for source in ("spotify", "reccobeats"):
                    cached = await self.cache.get_many(source, ids)
                    ids = [i for i in ids if i not in cached]
            self._pending.extend(ids)
            while len(self._pending) >= BATCH:
                self._start(self._pending[:BATCH])
                del self._pending[:BATCH]
        if self._pending:
            self._start(self._pending)
            self._pending = []

    def _start(self, ids: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(self._one(list(ids)))
        self._tasks.add(task)

    async def _one(self, ids: list[str]) -> None:
        async with self._sem:  # this job's share of the service's slots
            got = await self.reccobeats.lookup(ids)
        self.result.found.update(got.found)
        self.result.missing |= got.missing
        self.result.failed |= got.failed

    async def collect(self, wanted: Sequence[str]) -> ReccoBeatsResult:
        """Wait for every lookup of the pages fed so far; the answers among ``wanted``.

        Ids whose lookup did not answer at all (an unexpected error) are simply absent: the
        caller asks for them itself.
        """
        if self._consumer is not None:
            await asyncio.gather(self._consumer, return_exceptions=True)
            self._consumer = None  # done: nothing to keep (see _Feed)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        out = ReccoBeatsResult()
        for i in wanted:
            if i in self.result.found:
                out.found[i] = self.result.found[i]
            elif i in self.result.missing:
                out.missing.add(i)
            elif i in self.result.failed:
                out.failed.add(i)
        return out

    def cancel(self) -> None:
        """Stop lookups still running (the job failed or was served from storage)."""
        if self._consumer is not None and not self._consumer.done():
            self._consumer.cancel()
        self._consumer = None
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()


def start_prefetch(
    reccobeats: ReccoBeatsClient | None, spotify: Any, cache: FeatureCache | None
) -> FeaturePrefetch | None:
    """A prefetch for one job, or None when ReccoBeats is not where its features will come
    from: no client, or a Spotify app not yet known to lack ``audio-features`` (its values
    come first; asking ReccoBeats early would waste requests)."""
    if reccobeats is None:
        return None
    if spotify is not None and spotify.audio_features_available is not False:
        return None
    return FeaturePrefetch(reccobeats, cache)
