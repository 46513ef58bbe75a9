"""All pipeline steps in order, in this process, without the queue or storage.

For entry points that need one result and no checkpoints (tests, scripts); the worker
(:mod:`bot.jobs.worker`) runs the same steps with a committed checkpoint after each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.features.prefetch import start_prefetch
from bot.jobs.cpu import cluster_step, render_step
from bot.models import Analysis, AnalysisRequest, Progress, ProgressCallback, Rendered
from bot.pipeline import PipelineContext, featurize_step, fetch_step


async def _cpu(ctx: PipelineContext, fn: Callable[..., Any], *args: Any) -> Any:
    if ctx.executor is None:
        return fn(*args)
    return await asyncio.get_running_loop().run_in_executor(ctx.executor, fn, *args)


async def run_analysis(
    request: AnalysisRequest, ctx: PipelineContext, progress: ProgressCallback
) -> tuple[Analysis, Rendered]:
    """Fetch, featurize, cluster, render (CPU steps in ``ctx.executor`` when it is set)."""
    prefetch = start_prefetch(ctx.reccobeats, ctx.spotify, ctx.feature_cache)
    try:
        fetched = await fetch_step(request, ctx, progress, prefetch=prefetch)
        features = await featurize_step(fetched, ctx, progress, prefetched=prefetch)
    finally:
        if prefetch is not None:
            prefetch.cancel()
    await progress(Progress("clustering", total=len(fetched.tracks)))
    analysis = await _cpu(
        ctx, cluster_step, fetched, features, request.k, 0, request.previous_clusters
    )
    await progress(Progress("rendering"))
    rendered = await _cpu(ctx, render_step, analysis)
    await progress(Progress("done"))
    return analysis, rendered
