"""Artefacts of an analysis: scatter PNG, markdown report, CSV of every track, JSON summary.

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
"""

from __future__ import annotations

import csv
import io
from typing import Any

from bot.models import ARTEFACTS, AUDIO_FEATURES, Analysis, Track
from bot.safety import csv_row, html_attr, https_url, md_link_url

MAX_PNG_BYTES = 1_000_000
IMAGE_NAME = ARTEFACTS.png
SOURCE_LABELS = {
    "spotify": "Spotify audio features",
    "reccobeats": "ReccoBeats audio features",
    "csv": "audio features from the file",
    "metadata": "metadata only (release year, popularity, duration…)",
}
TABLE_HEADER = "| Art | Track | Album | Artists | Label | Rank | 💚 | 🔗 |"
TABLE_ALIGN = "|:---|:---|:---|:---|:---|---:|:---|:---|"


# --- scatter ---------------------------------------------------------------------------------


def render_scatter(analysis: Analysis, *, max_bytes: int = MAX_PNG_BYTES) -> bytes:
    """Scatter of the 2-D projection coloured by cluster; PNG ≤ ``max_bytes`` guaranteed."""
    for dpi in (110, 90, 72, 56, 42, 32):
        png = _scatter_png(analysis, dpi)
        if len(png) <= max_bytes:
            return png
    return png  # pragma: no cover - 32 dpi of a 9x6.5 in figure is far below 1 MB


def _scatter_png(analysis: Analysis, dpi: int) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(analysis.coords)
    fig = Figure(figsize=(9.5, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    cmap = _colors(analysis.k)
    size = 28 if n <= 500 else 12 if n <= 2000 else 4
    alpha = 0.85 if n <= 2000 else 0.55
    for c in analysis.clusters:
        pts = [analysis.coords[t] for t in c.track_ids if t in analysis.coords]
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.scatter(
            xs,
            ys,
            s=size,
            alpha=alpha,
            color=cmap[c.index],
            edgecolors="none",
            rasterized=True,
            label=f"#{c.index + 1} {c.description} ({c.size})",
        )
        mx, my = sorted(xs)[len(xs) // 2], sorted(ys)[len(ys) // 2]
        ax.annotate(
            str(c.index + 1),
            (mx, my),
            ha="center",
            va="center",
            fontsize=11,
            fontweight="bold",
            color="black",
            bbox={"boxstyle": "circle,pad=0.25", "fc": "white", "ec": cmap[c.index], "alpha": 0.9},
        )
    proj = analysis.projection or {}
    ax.set_xlabel(proj.get("x_label", "component 1"), fontsize=9)
    ax.set_ylabel(proj.get("y_label", "component 2"), fontsize=9)
    ax.set_title(
        f"Clusters in {_short(analysis.source.name)}\n{n} tracks, k = {analysis.k}, "
        f"{analysis.feature_mode} features, {proj.get('method', 'PCA')} projection",
        fontsize=11,
    )
    ax.grid(True, alpha=0.25)
    ax.legend(
        title="cluster (tracks)",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title_fontsize=9,
        markerscale=max(1.0, 28 / size) ** 0.5,
        frameon=False,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _colors(k: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]


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
    parts = [
        f"{SOURCE_LABELS.get(src, src)} for {n} track{'s' if n != 1 else ''}"
        for src, n in sorted(analysis.coverage.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return f"Features ({analysis.feature_mode}): " + ("; ".join(parts) or "none") + "."


def skipped_sentence(analysis: Analysis) -> str | None:
    parts = [f"{n} {why}" for why, n in sorted(analysis.skipped.items()) if n]
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


def _row(track: Track, liked: set[str]) -> str:
    art = _art(track.image_url)
    rank = str(track.popularity) if track.popularity is not None else ""
    cells = [
        art,
        md_escape(track.name),
        md_escape(track.album),
        md_escape(", ".join(track.artists)),
        md_escape(track.label),
        rank,
        "💚" if track.id in liked else "",
        _link(track.url),
    ]
    return "| " + " | ".join(cells) + " |"


def render_markdown(analysis: Analysis, *, image: str = IMAGE_NAME) -> str:
    """The report in the seeds' format (see module docstring)."""
    by_id = analysis.track_by_id()
    liked = set(analysis.liked)
    n = len(analysis.assignments)
    lines = [
        f"# Clusters in {md_escape(analysis.source.name)}",
        "",
        f"![Comparison of Cluster]({image})",
        "",
        f"{n} tracks in {analysis.k} clusters. {coverage_sentence(analysis)} "
        "Rank = Spotify popularity (0–100) where known.",
    ]
    skipped = skipped_sentence(analysis)
    if skipped:
        lines[-1] += " " + skipped
    lines.append("")
    for c in analysis.clusters:
        lines += [
            f"## Cluster #{c.index + 1}",
            "",
            f"**{md_escape(c.name)}** — {md_escape(c.description)}",
            "",
            f"{c.size} tracks",
            "",
            TABLE_HEADER,
            TABLE_ALIGN,
        ]
        lines += [_row(by_id[t], liked) for t in c.representative_ids if t in by_id]
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


def render_csv(analysis: Analysis) -> str:
    """Every clustered track with its cluster (1-based), 2-D coords and the features used."""
    by_id = analysis.track_by_id()
    feats = [f for f in analysis.feature_names if f not in CSV_BASE_COLUMNS]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_row(CSV_BASE_COLUMNS + feats))
    for c in analysis.clusters:
        for tid in c.track_ids:
            t = by_id.get(tid)
            if t is None:
                continue
            x, y = analysis.coords.get(tid, [None, None])
            values = analysis.features.get(tid, {})
            writer.writerow(
                csv_row(
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
            )
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
