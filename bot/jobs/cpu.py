"""Process-side CPU steps: clustering and rendering, plain picklable functions.

The job runner (:mod:`bot.jobs.worker`) sends these to the process pool; the CLI and tests
call :func:`cluster_step` / :func:`render_step` inline. The ``packed``/``pickled`` variants move
the JSON encoding and pickling into the worker process so the bot's event loop never holds
the GIL for one big call (measurements in each docstring).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.codecs import encode_parts
from bot.models import Analysis, FeatureTable, FetchResult, Rendered
from bot.sources.normalise import first_of_each


def cluster_step(
    fetched: FetchResult,
    features: FeatureTable,
    k: int | None,
    seed: int = 0,
    previous: dict[str, int] | None = None,
) -> Analysis:
    """CPU: build the matrix, choose k, cluster, describe, project to 2-D. Picklable.

    ``previous``: a digest's previous assignment, to start from (``clustering.fit``)."""
    from bot.clustering import analyze
    from bot.features.matrix import build_matrix

    tracks, skipped = first_of_each(fetched.tracks, fetched.skipped)
    clean = FetchResult(meta=fetched.meta, tracks=tracks, skipped=skipped)
    fm = build_matrix(tracks, features.values, features.sources)
    analysis = analyze(clean, fm, k, seed, previous)
    analysis.created_at = datetime.now(UTC).isoformat(timespec="seconds")
    return analysis


def render_step(analysis: Analysis) -> Rendered:
    """CPU: scatter PNG, markdown report, CSV, JSON summary, sound profile PNG. Picklable."""
    from bot import render

    return Rendered(
        png=render.render_scatter(analysis),
        markdown=render.render_markdown(analysis),
        csv=render.render_csv(analysis),
        summary=render.summary(analysis),
        profile_png=render.render_profile(analysis),
    )


@dataclass
class PackedAnalysis:
    """An Analysis as it leaves the worker process, ready for the bot process to store.

    A 10,000-track Analysis pickled back whole took ~80 ms to unpickle (one call holding the
    GIL, stalling the event loop), then ~180 ms more to encode as JSON for the checkpoint and
    again for storage. Here the worker does the encoding: ``parts`` is the JSON text of each
    item of ``Analysis.to_parts()`` (decoded part by part, off the loop, by
    :func:`bot.codecs.decode_parts`) and ``blob`` the pickled Analysis for
    :func:`render_packed_step` (bytes cross the process boundary in one cheap copy).
    """

    parts: list[str]
    blob: bytes


def cluster_packed_step(
    fetched: FetchResult,
    features: FeatureTable,
    k: int | None,
    seed: int = 0,
    previous: dict[str, int] | None = None,
) -> PackedAnalysis:
    """:func:`cluster_step`, returned packed (see :class:`PackedAnalysis`). Picklable."""
    analysis = cluster_step(fetched, features, k, seed, previous)
    return PackedAnalysis(encode_parts(analysis), pickle.dumps(analysis, pickle.HIGHEST_PROTOCOL))


def pickle_inputs(
    fetched: FetchResult, features: FeatureTable, chunk: int = 500
) -> tuple[bytes, list[bytes], list[bytes]]:
    """:func:`cluster_pickled_step`'s inputs, pickled ``chunk`` tracks at a time.

    Handing the pool a FetchResult and FeatureTable of 10,000 tracks made its feeder thread
    pickle them in one ~50 ms call holding the GIL (an event-loop stall). Run this in a
    thread instead: between the short calls the loop runs; the pool then only copies bytes.
    """
    tracks = fetched.tracks
    values = list(features.values.items())
    sources = list(features.sources.items())
    longest = max(len(values), len(sources))
    return (
        pickle.dumps((fetched.meta, fetched.skipped), pickle.HIGHEST_PROTOCOL),
        [
            pickle.dumps(tracks[i : i + chunk], pickle.HIGHEST_PROTOCOL)
            for i in range(0, len(tracks), chunk)
        ],
        [
            pickle.dumps(
                (dict(values[i : i + chunk]), dict(sources[i : i + chunk])),
                pickle.HIGHEST_PROTOCOL,
            )
            for i in range(0, longest, chunk)
        ],
    )


def cluster_pickled_step(
    head: bytes,
    tracks: list[bytes],
    features: list[bytes],
    k: int | None,
    previous: dict[str, int] | None = None,
) -> PackedAnalysis:
    """:func:`cluster_packed_step` of :func:`pickle_inputs` output. Picklable."""
    # Our own bot process made these bytes (pickle_inputs).
    meta, skipped = pickle.loads(head)
    fetched = FetchResult(meta, [t for blob in tracks for t in pickle.loads(blob)], skipped)
    table = FeatureTable()
    for blob in features:
        values, sources = pickle.loads(blob)
        table.values.update(values)
        table.sources.update(sources)
    return cluster_packed_step(fetched, table, k, 0, previous)


def render_packed_step(blob: bytes) -> Rendered:
    """:func:`render_step` of a :attr:`PackedAnalysis.blob`. Picklable."""
    return render_step(pickle.loads(blob))  # our own worker process made these bytes
