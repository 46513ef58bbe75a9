"""Artefacts of an analysis: scatter PNG, sound-profile PNG, markdown report, CSV of every
track, JSON summary.

Matplotlib is used through the object API on the Agg canvas only (``Figure`` +
``FigureCanvasAgg``), never ``pyplot``, so nothing leaks between calls or processes.

The markdown follows the seeds' format: ``# Clusters in <name>``, the image line, then per
cluster ``## Cluster #N``, a name/description line, ``N tracks`` and the table
``| Art | Track | Album | Artists | Label | Rank | 💚 | 🔗 |`` of its 10 representative
tracks (nearest the cluster centre first).

**Rank** is the track's Spotify popularity (0–100, higher = more played lately) when the source
provides it (extended-quota apps, Exportify CSVs, the demo data); it is left blank when
unknown (development-mode apps get no popularity). **💚** marks tracks saved in the requesting
user's library (linked accounts only).

Why one module (~715 lines): every artefact is drawn from one :class:`~bot.models.Analysis` in
the worker process with the same helpers (wrapping, escaping, styles, the phone-size
constants). The seam, should it grow: the charts (scatter, profile) and the text artefacts
(markdown, CSV, summary).
"""

from __future__ import annotations

import csv
import functools
import io
import textwrap
from collections.abc import Iterable
from typing import Any

from bot.models import ARTEFACTS, AUDIO_FEATURES, Analysis, Track
from bot.safety import csv_cell, csv_row, html_attr, https_url, md_link_url
from bot.sources.normalise import skipped_count

# numpy is imported inside the functions that draw: the bot process imports this module for the
# report and the buttons but draws nothing, and numpy costs it ~10 MB of its 150 MB budget (#16).

MAX_PNG_BYTES = 1_000_000
IMAGE_NAME = ARTEFACTS.png
PROFILE_NAME = ARTEFACTS.profile
SOURCE_LABELS = {
    "spotify": "Spotify audio features",
    "reccobeats": "ReccoBeats audio features",
    "csv": "audio features from the file",
    "metadata": "metadata only",
}
# The metadata columns a "metadata" analysis can be grouped by, in words (bot.features.matrix)
_METADATA_WORDS = {
    "year": "release year",
    "popularity": "popularity",
    "duration_min": "length",
    "explicit": "explicit lyrics",
}


def grouped_by(feature_names: list[str], *, short: bool = False) -> str:
    """The metadata an analysis without sound data was grouped by, e.g. "release year,
    popularity and length" (only those it had: a public page carries no year or popularity).
    At most three (explicit lyrics is the lightest); "genre tags" when only those were used.
    ``short``: "year" for "release year"."""
    words = [w for key, w in _METADATA_WORDS.items() if key in feature_names][:3]
    if short:
        words = ["year" if w == "release year" else w for w in words]
    if not words:
        return "genre tags"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


TABLE_HEADER = "| Art | Track | Album | Artists | Label | Rank | 💚 | 🔗 |"
TABLE_ALIGN = "|:---|:---|:---|:---|:---|---:|:---|:---|"


# --- charts: shared ----------------------------------------------------------------------------
# Text must be >= 11 px where a member sees it. Discord shows an embed image at most 308 px wide
# on a 420-px phone (../shared/tools/render_messages.py: 420 - 68 avatar gutter - 12 right - 4
# colour bar - 28 padding) and at most 300 px tall, so a figure ``w`` x ``h`` inches shows
# min(308, 300 * w / h) px wide and a ``pt``-point font at pt * shown / (72 * w) px. A 6-inch
# figure showed its 12-pt text at 8.6 px; the Discord charts are 4.5 inches wide:
# 12 * 308 / (72 * 4.5) = 11.4 px. The CLI's chart (with its legend) is a file opened full
# screen, ~400 px wide on a phone: 6 inches, 12 * 400 / (72 * 6) = 11.1 px.
EMBED_IMAGE_PX = (308, 300)  # (width, max height) of an embed image at 420 px
PHONE_SCREEN_PX = 400  # an image opened full screen on a phone
MIN_PHONE_TEXT_PX = 11
FIG_WIDTH_IN = 4.5  # the charts posted to Discord
FILE_FIG_WIDTH_IN = 6.0  # the CLI's scatter with its legend
TEXT_PT = 12.0
TITLE_CHARS = 36  # characters per title line at TEXT_PT in FIG_WIDTH_IN
LEGEND_CHARS = 52  # characters per legend line at TEXT_PT in FILE_FIG_WIDTH_IN
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # after every 10 colours, the next shape
DPIS = (200, 150, 120, 96, 72, 56, 42)


def embed_width_px(width_in: float, height_in: float) -> float:
    """How wide Discord shows a ``width_in`` x ``height_in`` figure as an embed image on a
    420-px phone (it fits the image in 308 x 300 px)."""
    max_w, max_h = EMBED_IMAGE_PX
    return min(float(max_w), max_h * width_in / height_in)


def phone_px(points: float, fig_width_in: float, shown_px: float) -> float:
    """Height in pixels of ``points``-sized text when the figure is shown ``shown_px`` wide."""
    return points * shown_px / (72 * fig_width_in)


def drawable(text: str) -> str:
    """``text`` without the characters the chart font cannot draw (emoji would be boxes)."""
    chars = _font_chars()
    kept = "".join(ch for ch in text if ch.isspace() or ord(ch) in chars)
    return " ".join(kept.split())


@functools.cache
def _font_chars() -> frozenset[int]:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return frozenset(FT2Font(path).get_charmap())


def _wrap(text: str, width: int, max_lines: int) -> str:
    lines = textwrap.wrap(text, width) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = (
            _short(lines[-1], width - 1) + "…" if len(lines[-1]) >= width else lines[-1] + "…"
        )
    return "\n".join(lines)


def _style(index: int) -> tuple[tuple[float, float, float, float], str]:
    """Colour and marker of cluster ``index``: 10 distinct colours, then the next shape."""
    from matplotlib import colormaps

    return colormaps["tab10"](index % 10), MARKERS[(index // 10) % len(MARKERS)]


def _png(fig: Any, max_bytes: int, dpis: tuple[int, ...] = DPIS) -> bytes:
    """The figure as PNG at the highest resolution in ``dpis`` that fits ``max_bytes``."""
    for dpi in dpis:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        png = buf.getvalue()
        if len(png) <= max_bytes:
            return png
    return png  # pragma: no cover - 42 dpi of a 6-inch-wide figure is far below 1 MB


def _figure(height_in: float, width_in: float = FIG_WIDTH_IN) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _title(analysis: Analysis, chars: int = TITLE_CHARS, lines: int = 1) -> str:
    """ "Clusters in <playlist>" (one line on the Discord charts: the message names it in full)."""
    name = drawable(analysis.source.name) or "this playlist"
    return _wrap(f"Clusters in {name}", chars, lines)


# --- scatter ---------------------------------------------------------------------------------


# Without a legend the chart is landscape: a Discord embed shows an image at most 300 px tall,
# so a portrait chart (900×921 px at k = 3 up to 900×1,650 at k = 20 with the legend below)
# showed only 160–210 px wide on a phone, its text far under 11 px, and made the k = 20 result
# 2,471 px tall at 420 px wide. The Discord message lists every cluster by number already.
LANDSCAPE_HEIGHT_IN = 0.7 * FIG_WIDTH_IN  # shown 308 × 216 px at 420 px


def render_scatter(
    analysis: Analysis, *, legend: bool = False, max_bytes: int = MAX_PNG_BYTES
) -> bytes:
    """Scatter of the 2-D projection coloured by cluster; PNG ≤ ``max_bytes`` guaranteed.

    ``legend=False`` (Discord): landscape, 4.5 inches, numbered discs only. ``legend=True``
    (CLI files): portrait, 6 inches, with every cluster listed below the plot."""
    return _png(scatter_figure(analysis, legend=legend), max_bytes)


def scatter_figure(analysis: Analysis, *, legend: bool = False) -> Any:
    """The scatter as a matplotlib Figure, laid out for a phone (see ``TEXT_PT``).

    Each cluster's number sits at its centre (pushed apart where centres are close, on a
    see-through disc so the points stay visible); with ``legend`` the legend below lists every
    cluster as text, one line each.
    """
    import numpy as np

    n = len(analysis.coords)
    k = len(analysis.clusters)
    if legend:
        fig = _figure(5.6 + 0.27 * k, FILE_FIG_WIDTH_IN)
        chars, title = LEGEND_CHARS, _title(analysis, LEGEND_CHARS - 8, 2)
    else:
        fig = _figure(LANDSCAPE_HEIGHT_IN)
        chars, title = TITLE_CHARS + 3, _title(analysis)
    ax = fig.add_subplot()
    size = 30 if n <= 500 else 12 if n <= 2000 else 4
    alpha = 0.8 if n <= 2000 else 0.5
    centres: list[tuple[int, float, float]] = []
    handles = []
    for c in analysis.clusters:
        pts = np.array([analysis.coords[t] for t in c.track_ids if t in analysis.coords])
        if pts.size == 0:
            continue
        color, marker = _style(c.index)
        handles.append(
            ax.scatter(
                pts[:, 0],
                pts[:, 1],
                s=size,
                alpha=alpha,
                color=color,
                marker=marker,
                edgecolors="none",
                rasterized=True,
                label=_legend_line(c),
            )
        )
        centres.append((c.index, float(np.median(pts[:, 0])), float(np.median(pts[:, 1]))))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    proj = analysis.projection or {}
    ax.set_xlabel(_wrap(drawable(proj.get("x_label", "component 1")), chars, 2), fontsize=TEXT_PT)
    # the y label runs along the plot's height (~70% of its width in the landscape chart)
    ylabel_chars = chars - 8 if legend else int(0.7 * chars)
    ax.set_ylabel(
        _wrap(drawable(proj.get("y_label", "component 2")), ylabel_chars, 2), fontsize=TEXT_PT
    )
    subtitle = f"{n} tracks · {k} cluster{'s' if k != 1 else ''}"
    if analysis.split_by and legend:  # the Discord message says it in words, the file not
        subtitle += f" · {analysis.split_by}"
    ax.set_title(title + "\n" + _wrap(subtitle, chars, 2), fontsize=TEXT_PT, loc="left")
    if handles and legend:
        fig.legend(
            handles=handles,
            loc="outside lower left",
            ncols=1,
            fontsize=TEXT_PT,
            frameon=False,
            markerscale=max(1.0, 30 / size) ** 0.5,
            handletextpad=0.3,
            borderaxespad=0.2,
        )
    _number_labels(fig, ax, centres)  # last: needs the final layout
    return fig


def _name_words(c: Any) -> str:
    """The words of a cluster's name ("Cluster 2 · calm · acoustic" → "calm · acoustic")."""
    return drawable(c.name.split(" · ", 1)[1] if " · " in c.name else c.description) or "mixed"


def _legend_line(c: Any) -> str:
    words = drawable(c.description) or "mixed"
    tail = f" ({c.size})"
    return _short(f"{c.index + 1} · {words}", LEGEND_CHARS - len(tail)) + tail


def _number_labels(fig: Any, ax: Any, centres: list[tuple[int, float, float]]) -> None:
    """Cluster numbers at their centres, nudged apart so that no two discs overlap."""
    import numpy as np

    if not centres:
        return
    ax.set_xlim(ax.get_xlim())  # fixed limits: the labels' pixels must not move afterwards
    ax.set_ylim(ax.get_ylim())
    home = np.array([[x, y] for _, x, y in centres], dtype=float)
    labels = []
    for (index, _, _), xy in zip(centres, home, strict=True):
        color, _ = _style(index)
        labels.append(
            ax.annotate(
                str(index + 1),
                xy=tuple(xy),
                xytext=tuple(xy),
                ha="center",
                va="center",
                fontsize=TEXT_PT,
                fontweight="bold",
                color="black",
                bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "ec": color, "alpha": 0.7},
                arrowprops={"arrowstyle": "-", "color": color, "lw": 1},
                zorder=5,
            )
        )
        labels[-1].set_in_layout(False)  # moving a label must not resize the axes
    for _ in range(2):  # again after the layout settles (constrained layout moves the axes)
        _spread_labels(fig, ax, labels)


def _spread_labels(fig: Any, ax: Any, labels: list[Any]) -> None:
    """Push overlapping label discs apart (in pixels; deterministic)."""
    import numpy as np

    # The layout and the labels' sizes in pixels, without rasterising 10,000 points (twice
    # per chart: a full draw here cost ~40 ms each at 10,000 tracks).
    fig.draw_without_rendering()
    radius = np.array([lab.get_bbox_patch().get_window_extent().width / 2 for lab in labels])
    pos = ax.transData.transform(np.array([lab.xyann for lab in labels], dtype=float))
    box = ax.get_window_extent()
    for _ in range(300):
        moved = False
        for i in range(len(pos)):
            for j in range(i + 1, len(pos)):
                d = pos[j] - pos[i]
                dist = float(np.hypot(*d))
                need = radius[i] + radius[j] + 3
                if dist < need:
                    unit = d / dist if dist > 1e-9 else np.array([np.cos(j), np.sin(j)])
                    shift = unit * (need - dist) / 2
                    pos[i] -= shift
                    pos[j] += shift
                    moved = True
        pos[:, 0] = np.clip(pos[:, 0], box.x0 + radius, box.x1 - radius)
        pos[:, 1] = np.clip(pos[:, 1], box.y0 + radius, box.y1 - radius)
        if not moved:
            break
    for label, xy in zip(labels, ax.transData.inverted().transform(pos), strict=True):
        label.xyann = tuple(xy)


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- sound profile ---------------------------------------------------------------------------
# Features shown in the profile, with the words at the low and high end; "era" is release year.
PROFILE_FEATURES: dict[str, str] = {
    "energy": "energy",
    "danceability": "danceable",
    "valence": "happy",
    "acousticness": "acoustic",
    "speechiness": "spoken",
    "instrumentalness": "instrumental",
    "tempo": "tempo",
    "loudness": "loud",
    "year": "newer",
    "popularity": "popular",
    "duration_min": "long",
}
PROFILE_MAX = 7  # columns: the features that differ most between the clusters


def profile_height_in(k: int) -> float:
    """The profile's height: ~1.9 in of titles and column names, 0.4 in a cluster's row."""
    return 1.9 + 0.4 * k


def render_profile(analysis: Analysis, *, max_bytes: int = MAX_PNG_BYTES) -> bytes:
    """Each cluster's sound against the playlist average, as one PNG ≤ ``max_bytes``."""
    return _png(profile_figure(analysis), max_bytes)


def profile_levels(analysis: Analysis) -> tuple[list[str], dict[int, list[float]]]:
    """(features, cluster index → the cluster's average percentile of each feature, 0–100).

    A track's percentile is its rank within the playlist for that feature, so the playlist
    average is 50 for every feature and a bar of 80 means "higher than most of the playlist".
    """
    import numpy as np

    names = [f for f in PROFILE_FEATURES if f in analysis.feature_names]
    ids = list(analysis.assignments)
    row = {t: i for i, t in enumerate(ids)}
    # One pass over the tracks for every feature, and each cluster's rows once (at 10,000
    # tracks the per-feature dict lookups took 99 ms of the charts worker's ~600).
    empty: dict[str, float] = {}
    table = np.array(
        [[analysis.features.get(t, empty).get(f, np.nan) for f in names] for t in ids], float
    ).reshape(len(ids), len(names))
    members = {
        c.index: np.array([row[t] for t in c.track_ids if t in row], int) for c in analysis.clusters
    }
    levels: dict[int, list[float]] = {c.index: [] for c in analysis.clusters}
    kept: list[str] = []
    for j, f in enumerate(names):
        values = table[:, j]
        ok = np.isfinite(values)
        if ok.sum() < 2 or np.ptp(values[ok]) <= 0:
            continue
        _, inverse, counts = np.unique(values[ok], return_inverse=True, return_counts=True)
        average_rank = np.cumsum(counts) - (counts + 1) / 2  # 0-based, ties share
        pct = np.full(len(ids), np.nan)
        pct[ok] = 100 * average_rank[inverse] / max(1, ok.sum() - 1)
        kept.append(f)
        for c in analysis.clusters:
            vals = pct[members[c.index]]
            vals = vals[np.isfinite(vals)]
            levels[c.index].append(float(np.mean(vals)) if vals.size else 50.0)
    return kept, levels


def profile_figure(analysis: Analysis) -> Any:
    """A table of bars: one row per cluster, one column per feature (the ``PROFILE_MAX``
    that differ most between clusters). Each bar starts at the playlist average (the thin
    line) and goes right when the cluster's tracks are higher than most of the playlist,
    left when lower; a full half-cell is the top or bottom of the playlist."""
    import numpy as np

    features, levels = profile_levels(analysis)
    clusters = analysis.clusters
    if features:
        spread = np.array([levels[c.index] for c in clusters]).std(axis=0)
        keep = sorted(np.argsort(-spread, kind="stable")[:PROFILE_MAX].tolist())
        features = [features[i] for i in keep]
        levels = {i: [v[j] for j in keep] for i, v in levels.items()}
    k, m = len(clusters), max(1, len(features))
    fig = _figure(profile_height_in(k))
    fig.suptitle(
        _title(analysis)
        + "\n"
        + _wrap("bar right = more than the playlist average (line), left = less", TITLE_CHARS, 2),
        fontsize=TEXT_PT,
        x=0.02,
        ha="left",
    )
    ax = fig.add_subplot()
    half = 0.44  # of a cell's width
    for row, c in enumerate(clusters):
        color, _ = _style(c.index)
        for col, level in enumerate(levels.get(c.index, [])):
            ax.barh(row, (level - 50) / 50 * half, left=col, height=0.62, color=color)
    for col in range(len(features)):
        ax.axvline(col, color="0.35", lw=0.8)
    for row in range(1, k):
        ax.axhline(row - 0.5, color="0.85", lw=0.8)
    ax.set_xlim(-0.5, m - 0.5)
    ax.set_ylim(k - 0.5, -0.5)
    ax.set_xticks(range(len(features)), [PROFILE_FEATURES[f] for f in features])
    ax.tick_params(
        axis="x",
        labelsize=TEXT_PT,
        rotation=45,
        top=True,
        labeltop=True,
        bottom=False,
        labelbottom=False,
        length=0,
    )
    for label in ax.get_xticklabels():
        label.set_ha("left")
        label.set_rotation_mode("anchor")
    ax.set_yticks(
        range(k),
        [_wrap(f"{c.index + 1} · {_name_words(c)}", 16, 2) for c in clusters],
        fontsize=TEXT_PT,
    )
    ax.tick_params(axis="y", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if not features:
        ax.text(0, 0, "no features to compare", fontsize=TEXT_PT, ha="center")
    return fig


# --- markdown --------------------------------------------------------------------------------


def md_escape(text: str | None) -> str:
    """Make text safe inside a markdown table cell (pipes, newlines, raw HTML)."""
    if not text:
        return ""
    return (
        str(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def coverage_sentence(analysis: Analysis) -> str:
    """e.g. 'Features: ReccoBeats audio features for 480 tracks, metadata only for 20 tracks.'"""

    def label(src: str) -> str:
        if src == "metadata":
            return f"{SOURCE_LABELS[src]} ({grouped_by(analysis.feature_names)})"
        return SOURCE_LABELS.get(src, src)

    parts = [
        f"{label(src)} for {n:,} track{'s' if n != 1 else ''}"
        for src, n in sorted(analysis.coverage.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    text = f"Features ({analysis.feature_mode}): " + ("; ".join(parts) or "none") + "."
    unanswered = unanswered_sentence(analysis)
    return f"{text} {unanswered}." if unanswered else text


def unanswered_sentence(analysis: Analysis) -> str | None:
    """Why some tracks have no sound this time, when ReccoBeats could not answer for them
    (an outage, a rate limit, no network): a later run asks again for exactly those tracks
    and does not reuse this analysis (``Worker._find_reusable``)."""
    n = analysis.unanswered
    if not n:
        return None
    return (
        f"ReccoBeats did not answer for {n:,} track{'s' if n != 1 else ''} this time, "
        "so their sound is missing; analysing again later asks for it"
    )


def skipped_sentence(analysis: Analysis) -> str | None:
    """e.g. "Skipped: 2 duplicates, 1 local file." (the CLI and report.md)."""
    parts = [skipped_count(why, n) for why, n in sorted(analysis.skipped.items()) if n]
    return "Skipped: " + ", ".join(parts) + "." if parts else None


def _art(image_url: str | None) -> str:
    """The cover thumbnail: only plain https URLs, attribute-escaped (a ``"`` in a URL from
    data would otherwise end ``src`` and add attributes such as ``onerror``)."""
    url = https_url(image_url)
    return f'<img src="{html_attr(url)}" alt="" width="50" />' if url else ""


def _link(url: str | None) -> str:
    """The 🔗 cell: a markdown link to an https URL only (no ``javascript:``, no ``)``)."""
    target = md_link_url(url)
    return f"[🔗]({target})" if target else ""


def _cells(track: Track, liked: set[str]) -> list[str]:
    """The table cells of one track, in ``TABLE_HEADER``'s order."""
    return [
        _art(track.image_url),
        md_escape(track.name),
        md_escape(track.album),
        md_escape(", ".join(track.artists)),
        md_escape(track.label),
        str(track.popularity) if track.popularity is not None else "",
        "💚" if track.id in liked else "",
        _link(track.url),
    ]


def report_track_ids(analysis: Analysis) -> list[str]:
    """The tracks listed in the report (each cluster's representatives): the ids to ask the
    reader's 💚 marks for before :func:`render_markdown`."""
    return [t for c in analysis.clusters for t in c.representative_ids]


def render_markdown(
    analysis: Analysis,
    *,
    image: str = IMAGE_NAME,
    profile: str | None = PROFILE_NAME,
    liked: Iterable[str] = (),
) -> str:
    """The report in the seeds' format (see module docstring).

    ``liked``: track ids the reader saved (💚) — only these, never ``analysis.liked``: a stored
    analysis' legacy field holds its requester's marks, who may not be the reader (embeds read
    them the same way). A column that would be empty for every listed track is left out (Label
    and Rank for Development-Mode apps, 💚 when no marks are known), so the table shows only
    what is known.
    """
    by_id = analysis.track_by_id()
    marks = set(liked)
    shown = [[by_id[t] for t in c.representative_ids if t in by_id] for c in analysis.clusters]
    rows = [[_cells(t, marks) for t in tracks] for tracks in shown]
    names = TABLE_HEADER.strip("| ").split(" | ")
    aligns = TABLE_ALIGN.strip("|").split("|")
    keep = [
        j
        for j, name in enumerate(names)
        if name in ("Track", "🔗") or any(r[j] for cluster in rows for r in cluster)
    ]
    n = len(analysis.assignments)
    overview = f"{n} tracks in {analysis.k} cluster{'s' if analysis.k != 1 else ''}"
    if analysis.split_by:
        overview += f", {md_escape(analysis.split_by)}"
    overview += f". {coverage_sentence(analysis)}"
    if names.index("Rank") in keep:
        overview += " Rank = Spotify popularity (0–100) where known."
    lines = [
        f"# Clusters in {md_escape(analysis.source.name)}",
        "",
        f"![Comparison of Cluster]({image})",
        "",
    ]
    if profile:
        lines += [f"![Sound of each cluster]({profile})", ""]
    lines.append(overview)
    skipped = skipped_sentence(analysis)
    if skipped:
        lines[-1] += " " + skipped
    lines.append("")
    for c, cluster_rows in zip(analysis.clusters, rows, strict=True):
        lines += [
            f"## Cluster #{c.index + 1}",
            "",
            f"**{md_escape(c.name)}** — {md_escape(c.description)}",
            "",
            f"{c.size} tracks",
            "",
            "| " + " | ".join(names[j] for j in keep) + " |",
            "|" + "|".join(aligns[j] for j in keep) + "|",
        ]
        lines += ["| " + " | ".join(r[j] for j in keep) + " |" for r in cluster_rows]
        lines.append("")
    return "\n".join(lines)


# --- CSV and summary -------------------------------------------------------------------------

CSV_BASE_COLUMNS = [
    "cluster",
    "cluster_name",
    "track_id",
    "track",
    "artists",
    "album",
    "release_date",
    "popularity",
    "feature_source",
    "x",
    "y",
    "url",
]
# The columns whose cells are text from the data (names, dates, links): escaped by csv_cell.
CSV_TEXT_COLUMNS = frozenset(
    {"cluster_name", "track_id", "track", "artists", "album", "release_date", "url"}
)


def render_csv(analysis: Analysis) -> str:
    """Every clustered track with its cluster (1-based), 2-D coords and the features used.

    A column empty for every track (popularity for Development-Mode apps) is left out.
    """
    by_id = analysis.track_by_id()
    feats = [f for f in analysis.feature_names if f not in CSV_BASE_COLUMNS]
    header = CSV_BASE_COLUMNS + feats
    rows: list[list[Any]] = []
    for c in analysis.clusters:
        for tid in c.track_ids:
            t = by_id.get(tid)
            if t is None:
                continue
            x, y = analysis.coords.get(tid, [None, None])
            values = analysis.features.get(tid, {})
            rows.append(
                [
                    c.index + 1,
                    c.name,
                    tid,
                    t.name,
                    ", ".join(t.artists),
                    t.album,
                    t.release_date or "",
                    "" if t.popularity is None else t.popularity,
                    _feature_source(analysis, tid),
                    _fmt(x),
                    _fmt(y),
                    t.url,
                ]
                + [_fmt(values.get(f)) for f in feats]
            )
    keep = [j for j in range(len(header)) if j < 3 or any(r[j] != "" for r in rows)]
    # Only text from data can start a formula: the numbers (ints, and "%.6g" strings that
    # csv_cell lets through) skip it (~250,000 cells at 10,000 tracks: 200 -> 160 ms).
    text = [j for j in keep if header[j] in CSV_TEXT_COLUMNS]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_row([header[j] for j in keep]))
    for r in rows:
        for j in text:
            r[j] = csv_cell(r[j])
        writer.writerow([r[j] for j in keep])
    return buf.getvalue()


def _feature_source(analysis: Analysis, tid: str) -> str:
    if analysis.feature_mode == "metadata":
        return "metadata"
    values = analysis.features.get(tid, {})
    return "audio" if all(f in values for f in AUDIO_FEATURES) else "metadata"


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def summary(analysis: Analysis) -> dict[str, Any]:
    """JSON-friendly overview (written as summary.json)."""
    return {
        "source": analysis.source.to_dict(),
        "n_tracks": len(analysis.assignments),
        "k": analysis.k,
        "k_requested": analysis.k_requested,
        "silhouette": analysis.silhouette,
        "feature_mode": analysis.feature_mode,
        "feature_names": list(analysis.feature_names),
        "coverage": dict(analysis.coverage),
        "skipped": dict(analysis.skipped),
        "projection": dict(analysis.projection),
        "split_by": analysis.split_by,
        "clusters": [
            {
                "number": c.index + 1,
                "name": c.name,
                "description": c.description,
                "size": c.size,
                "centroid": {k: round(v, 4) for k, v in c.centroid.items()},
                "representative_ids": list(c.representative_ids),
            }
            for c in analysis.clusters
        ],
    }
