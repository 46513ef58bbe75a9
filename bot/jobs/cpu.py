"""Process-side CPU steps: clustering and rendering, plain picklable functions.

The job runner (:mod:`bot.jobs.worker`) sends these to the process pool; the CLI and tests
call :func:`cluster_step` / :func:`render_step` inline. The ``packed``/``pickled`` variants move
the JSON encoding into the worker processes and cut what crosses the process boundary into
pieces, so the bot's event loop never holds the GIL for one big call (measurements in each
docstring).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from bot.codecs import compress_text, encode_parts, parts_text
from bot.errors import NothingToCluster
from bot.models import PART_SIZE, Analysis, FeatureTable, FetchResult, Rendered
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
    try:
        fm = build_matrix(tracks, features.values, features.sources)
    except NothingToCluster as exc:
        if not features.unanswered:
            raise
        raise NothingToCluster(
            f"{exc} ReccoBeats did not answer for {features.unanswered:,} of them this time: "
            "try again later."
        ) from None
    analysis = analyze(clean, fm, k, seed, previous)
    analysis.unanswered = features.unanswered  # counted over these tracks by gather_features
    analysis.created_at = datetime.now(UTC).isoformat(timespec="seconds")
    return analysis


#: What one render call draws: everything, the two charts, or the text artefacts.
RenderPart = Literal["all", "charts", "texts"]


def render_step(analysis: Analysis, part: RenderPart = "all") -> Rendered:
    """CPU: scatter PNG, markdown report, CSV, JSON summary, sound profile PNG. Picklable.

    ``part``: "charts" draws only the two PNGs, "texts" only the markdown, CSV and summary
    (the other fields stay empty; :func:`merge_rendered` joins the two). The job runner draws
    them in two workers at once: at 10,000 tracks the charts take ~0.5 s of CPU and the
    texts ~0.2 s, which ran one after the other in one worker.
    """
    from bot import render

    charts = part != "texts"
    texts = part != "charts"
    return Rendered(
        png=render.render_scatter(analysis) if charts else b"",
        markdown=render.render_markdown(analysis) if texts else "",
        csv=render.render_csv(analysis) if texts else "",
        summary=render.summary(analysis) if texts else {},
        profile_png=render.render_profile(analysis) if charts else b"",
    )


def merge_rendered(charts: Rendered, texts: Rendered) -> Rendered:
    """One Rendered from a "charts" and a "texts" :func:`render_step`."""
    return Rendered(
        png=charts.png,
        markdown=texts.markdown,
        csv=texts.csv,
        summary=texts.summary,
        profile_png=charts.profile_png,
    )


@dataclass
class PackedAnalysis:
    """An Analysis as it crosses a process boundary: pickled in pieces (:func:`pack`).

    One 10,000-track Analysis pickled whole took ~55 ms to unpickle, one call holding the GIL
    (an event-loop stall when the bot process does it). ``chunks[0]`` is the analysis without
    its per-track tables, then each chunk holds ``PART_SIZE`` tracks' rows of each table, so
    :func:`unpack` in a thread never holds the GIL for more than a few ms at a time. Our own
    processes make and read these bytes (never anything received from outside).
    """

    chunks: list[bytes]


def pack(analysis: Analysis, chunk: int = PART_SIZE) -> PackedAnalysis:
    """``analysis`` pickled in pieces (see :class:`PackedAnalysis`)."""
    head = replace(analysis, tracks=[], assignments={}, coords={}, features={})
    tables = (
        analysis.tracks,
        list(analysis.assignments.items()),
        list(analysis.coords.items()),
        list(analysis.features.items()),
    )
    longest = max(len(t) for t in tables)
    out = [pickle.dumps(head, pickle.HIGHEST_PROTOCOL)]
    for i in range(0, longest, chunk):
        out.append(pickle.dumps([t[i : i + chunk] for t in tables], pickle.HIGHEST_PROTOCOL))
    return PackedAnalysis(out)


def unpack(packed: PackedAnalysis, *, on_part: Callable[[], None] | None = None) -> Analysis:
    """The Analysis :func:`pack` pickled. ``on_part()`` is called before each piece after the
    first (e.g. ``gc.freeze``, so full collections meanwhile skip what is already built)."""
    analysis: Analysis = pickle.loads(packed.chunks[0])
    for i, blob in enumerate(packed.chunks[1:]):
        if i and on_part is not None:
            on_part()
        tracks, assignments, coords, features = pickle.loads(blob)
        analysis.tracks.extend(tracks)
        analysis.assignments.update(assignments)
        analysis.coords.update(coords)
        analysis.features.update(features)
    return analysis


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
        pickle.dumps((fetched.meta, fetched.skipped, features.unanswered), pickle.HIGHEST_PROTOCOL),
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
    """:func:`cluster_step` of :func:`pickle_inputs` output, returned :func:`pack`-ed.
    Picklable."""
    # Our own bot process made these bytes (pickle_inputs).
    meta, skipped, unanswered = pickle.loads(head)
    fetched = FetchResult(meta, [t for blob in tracks for t in pickle.loads(blob)], skipped)
    table = FeatureTable(unanswered=unanswered)
    for blob in features:
        values, sources = pickle.loads(blob)
        table.values.update(values)
        table.sources.update(sources)
    return pack(cluster_step(fetched, table, k, 0, previous))


def render_packed_step(packed: PackedAnalysis, part: RenderPart) -> tuple[Rendered, str]:
    """:func:`render_step` of a :func:`pack`-ed analysis. Picklable.

    A "texts" render also returns the analysis as stored, :func:`bot.codecs.parts_text` of
    its parts, compressed (:func:`bot.codecs.compress_text`; ~0.25 s at 10,000 tracks, while
    the other worker still draws the charts), so the bot process stores it without encoding
    anything and keeps a third of it until then; other parts return "". The bot received
    the parts as a list and joined them for storage, one more 8 MB copy at its peak.
    """
    analysis = unpack(packed)
    rendered = render_step(analysis, part)
    if part != "texts":
        return rendered, ""
    return rendered, compress_text(parts_text(encode_parts(analysis)))


def nothing() -> None:
    """A call that does nothing, to send to the pool (see ``StepRunner._render_phase``)."""
