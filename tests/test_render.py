"""Renderers: PNG validity and size, the seeds' markdown structure, CSV round-trip, summary."""

from __future__ import annotations

import csv
import functools
import io
import json
import re

import numpy as np
import pytest

from bot.demo import load_demo
from bot.jobs.cpu import cluster_step, render_step
from bot.models import Analysis, Cluster, PlaylistMeta, Track
from bot.pipeline import features_from_tracks
from bot.render import (
    MAX_PNG_BYTES,
    PHONE_SCREEN_PX,
    TABLE_ALIGN,
    TABLE_HEADER,
    coverage_sentence,
    drawable,
    embed_width_px,
    phone_px,
    profile_figure,
    profile_levels,
    render_csv,
    render_markdown,
    render_profile,
    render_scatter,
    report_track_ids,
    scatter_figure,
    skipped_sentence,
    summary,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    fetched = load_demo()
    table = features_from_tracks(fetched.tracks)
    assert table is not None
    result = cluster_step(fetched, table, 4)
    # decorate two representatives like an extended-mode fetch would
    by_id = result.track_by_id()
    first, second = (by_id[t] for t in result.clusters[0].representative_ids[:2])
    first.image_url = "https://i.scdn.co/image/ab67616d0000b273044a5466dac00f7b3c570b99"
    first.label = "EMI | Interscope"
    second.name = "Pipe | In <Name>"
    return result


def _reader_marks(analysis: Analysis) -> list[str]:
    """The reader's 💚: the second representative of cluster 1 (a renamed track)."""
    return [analysis.clusters[0].representative_ids[1]]


def _synthetic(n: int, k: int) -> Analysis:
    rng = np.random.default_rng(1)
    tracks = [Track(id=f"t{i:06d}", name=f"Track {i}", artists=["A"]) for i in range(n)]
    labels = rng.integers(0, k, size=n)
    clusters = [
        Cluster(
            index=c,
            name=f"Cluster {c + 1} · fast · loud",
            description="fast · loud · danceable",
            size=int((labels == c).sum()),
            centroid={},
            track_ids=[t.id for t, lab in zip(tracks, labels, strict=True) if lab == c],
            representative_ids=[t.id for t, lab in zip(tracks, labels, strict=True) if lab == c][
                :10
            ],
        )
        for c in range(k)
    ]
    xy = rng.normal(size=(n, 2))
    return Analysis(
        source=PlaylistMeta(id="big", name="A very big playlist"),
        tracks=tracks,
        clusters=clusters,
        assignments={t.id: int(lab) for t, lab in zip(tracks, labels, strict=True)},
        coords={t.id: [float(x), float(y)] for t, (x, y) in zip(tracks, xy, strict=True)},
        k=k,
        k_requested=None,
        feature_mode="audio",
        feature_names=[],
        coverage={"reccobeats": n},
    )


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_MAGIC
    assert png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_scatter_is_a_valid_png_with_readable_size(analysis: Analysis) -> None:
    png = render_scatter(analysis)
    width, height = _png_size(png)
    assert width >= 600 and height >= 400
    assert len(png) <= MAX_PNG_BYTES


@pytest.mark.parametrize("k", [3, 20])
def test_discord_scatter_is_landscape_and_the_file_one_keeps_its_legend(k: int) -> None:
    # Discord shows an image at most ~300 px tall: a portrait chart showed 160–210 px wide.
    analysis = _synthetic(400, k)
    width, height = _png_size(render_scatter(analysis))
    assert height / width <= 0.7
    assert scatter_figure(analysis).legends == []
    fig = scatter_figure(analysis, legend=True)
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == k
    width, height = _png_size(render_scatter(analysis, legend=True))
    assert height > width and len(render_scatter(analysis, legend=True)) <= MAX_PNG_BYTES


def test_scatter_of_ten_thousand_points_stays_under_one_megabyte() -> None:
    png = render_scatter(_synthetic(10_000, 12))
    _png_size(png)
    assert len(png) <= MAX_PNG_BYTES


def test_scatter_shrinks_until_it_fits_a_smaller_limit(analysis: Analysis) -> None:
    full = render_scatter(analysis)
    small = render_scatter(analysis, max_bytes=len(full) // 2)
    assert len(small) <= len(full) // 2
    assert _png_size(small)[0] < _png_size(full)[0]


def _cells(row: str) -> list[str]:
    assert row.startswith("| ") and row.endswith(" |")
    return [c.strip() for c in re.split(r"(?<!\\)\|", row[1:-1])]


def test_markdown_follows_the_seeds_structure(analysis: Analysis) -> None:
    md = render_markdown(analysis, liked=_reader_marks(analysis))
    lines = md.splitlines()
    assert lines[0] == "# Clusters in Demo mix (5 real playlists, TidyTuesday 2020)"
    assert "![Comparison of Cluster](clusters.png)" in lines[1:4]
    assert "audio features from the file for 300 tracks" in md  # feature sources stated
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    assert [lines[i] for i in headings] == [f"## Cluster #{c + 1}" for c in range(analysis.k)]
    by_id = analysis.track_by_id()
    for c, start in zip(analysis.clusters, headings, strict=True):
        section = lines[start : [*headings, len(lines)][headings.index(start) + 1]]
        assert f"**{c.name}** — {c.description}" in section
        assert f"{c.size} tracks" in section
        h = section.index(TABLE_HEADER)
        assert section[h + 1] == TABLE_ALIGN
        rows = [line for line in section[h + 2 :] if line.startswith("|")]
        assert len(rows) == min(10, c.size)
        for row, tid in zip(rows, c.representative_ids, strict=True):
            cells = _cells(row)
            assert len(cells) == 8
            assert cells[7] == f"[🔗](https://open.spotify.com/track/{tid})"
            pop = by_id[tid].popularity
            assert cells[5] == ("" if pop is None else str(pop))


def test_markdown_escapes_cells_and_marks_art_and_likes(analysis: Analysis) -> None:
    md = render_markdown(analysis, liked=_reader_marks(analysis))
    by_id = analysis.track_by_id()
    first, second = (by_id[t] for t in analysis.clusters[0].representative_ids[:2])
    rows = {line.split("track/")[-1][:22]: line for line in md.splitlines() if "track/" in line}
    cells = _cells(rows[first.id])
    assert cells[0] == f'<img src="{first.image_url}" alt="" width="50" />'
    assert cells[4] == "EMI \\| Interscope"
    assert cells[6] == ""
    cells = _cells(rows[second.id])
    assert cells[0] == ""  # no art known
    assert cells[1] == "Pipe \\| In &lt;Name&gt;"
    assert cells[6] == "💚"


def test_csv_round_trips_every_track_with_its_cluster(analysis: Analysis) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(analysis))))
    assert len(rows) == len(analysis.assignments)
    assert {r["track_id"]: int(r["cluster"]) - 1 for r in rows} == analysis.assignments
    for name in analysis.feature_names:
        assert name in rows[0]
    header = render_csv(analysis).splitlines()[0].split(",")
    assert len(header) == len(set(header))  # no duplicate column (popularity)
    by_id = {r["track_id"]: r for r in rows}
    t = analysis.tracks[5]
    assert by_id[t.id]["track"] == t.name
    assert float(by_id[t.id]["tempo"]) == pytest.approx(t.features["tempo"], rel=1e-5)
    assert float(by_id[t.id]["x"]) == pytest.approx(analysis.coords[t.id][0], rel=1e-5)


def test_summary_is_json_and_complete(analysis: Analysis) -> None:
    data = json.loads(json.dumps(summary(analysis)))
    assert data["k"] == analysis.k == len(data["clusters"])
    assert data["n_tracks"] == 300
    assert data["coverage"] == {"csv": 300}
    assert data["source"]["name"] == analysis.source.name
    assert [c["size"] for c in data["clusters"]] == [c.size for c in analysis.clusters]
    assert all(c["name"] and c["description"] for c in data["clusters"])
    assert "silhouette" in data and "skipped" in data


def test_render_step_bundles_everything(analysis: Analysis) -> None:
    rendered = render_step(analysis)
    assert rendered.png[:8] == PNG_MAGIC
    assert rendered.markdown.startswith("# Clusters in ")
    assert rendered.csv.startswith("cluster,")
    assert rendered.summary["k"] == analysis.k


def test_analysis_round_trips_through_dict(analysis: Analysis) -> None:
    again = Analysis.from_dict(json.loads(json.dumps(analysis.to_dict())))
    assert render_markdown(again) == render_markdown(analysis)
    assert render_csv(again) == render_csv(analysis)


# --- phone-readable charts (issues #12, #18) -------------------------------------------------


def _texts(fig) -> list:
    from matplotlib.text import Text

    fig.canvas.draw()
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _long_named(analysis: Analysis) -> Analysis:
    again = Analysis.from_dict(analysis.to_dict())
    again.source.name = (
        "🔥🎧 Summer Vibes 2026 — the very best of chill indie, lo-fi beats & late night drives "
        "💚✨ (updated weekly!)"
    )
    return again


@pytest.mark.parametrize(
    "figure",
    [scatter_figure, functools.partial(scatter_figure, legend=True), profile_figure],
    ids=["scatter", "scatter-legend", "profile"],
)
def test_chart_text_is_readable_at_phone_width_and_never_clipped(analysis, figure) -> None:
    fig = figure(_long_named(analysis))
    width_in, height_in = fig.get_size_inches()
    # Where a member sees it: the Discord charts as embed images of a 420-px phone (fitted in
    # 308 × 300 px, as ../shared/tools/render_messages.py draws them); the CLI's legend chart
    # is a file opened full screen.
    is_file = bool(fig.legends)
    shown = PHONE_SCREEN_PX if is_file else embed_width_px(width_in, height_in)
    assert shown >= (300 if is_file else 297)
    texts = _texts(fig)
    assert texts
    bounds = fig.bbox
    for t in texts:
        assert phone_px(t.get_fontsize(), width_in, shown) >= 11, t.get_text()
        box = t.get_window_extent()
        assert box.x0 >= bounds.x0 - 1 and box.x1 <= bounds.x1 + 1, t.get_text()
        assert box.y0 >= bounds.y0 - 1 and box.y1 <= bounds.y1 + 1, t.get_text()
    title = "\n".join(t.get_text() for t in texts if "Summer Vibes" in t.get_text())
    assert "Summer Vibes" in title and not set("🔥🎧💚✨") & set(title)


def test_glyphs_the_font_lacks_are_dropped() -> None:
    assert drawable("🔥 Beyoncé’s mix 💚 — vol. 2 ✨") == "Beyoncé’s mix — vol. 2"


def test_cluster_numbers_do_not_overlap_even_when_centres_do() -> None:
    from matplotlib.text import Annotation

    analysis = _synthetic(600, 12)
    # every cluster centred within a hair of the others
    rng = np.random.default_rng(2)
    for tid in analysis.coords:
        analysis.coords[tid] = [float(x) for x in rng.normal(0, 1, 2)]
    fig = scatter_figure(analysis)
    fig.canvas.draw()
    discs = [a.get_bbox_patch().get_window_extent() for a in fig.findobj(Annotation)]
    assert len(discs) == 12
    for i, a in enumerate(discs):
        for b in discs[i + 1 :]:
            gap = float(np.hypot(a.x0 + a.x1 - b.x0 - b.x1, a.y0 + a.y1 - b.y0 - b.y1)) / 2
            assert gap >= (a.width + b.width) / 2 - 1


def test_styles_stay_distinct_past_ten_clusters() -> None:
    from bot.render import _style

    styles = [_style(i) for i in range(30)]
    assert len(set(styles)) == 30


def test_profile_is_a_small_png_and_part_of_the_render_step(analysis: Analysis) -> None:
    png = render_profile(analysis)
    assert _png_size(png)[0] >= 600 and len(png) <= MAX_PNG_BYTES
    assert len(render_profile(_synthetic(10_000, 12))) <= MAX_PNG_BYTES
    assert render_step(analysis).profile_png[:8] == PNG_MAGIC
    features, levels = profile_levels(analysis)
    assert "energy" in features and set(levels) == {c.index for c in analysis.clusters}
    sizes = np.array([c.size for c in analysis.clusters])
    for j in range(len(features)):  # the playlist average is 50 for every feature
        col = np.array([levels[c.index][j] for c in analysis.clusters])
        assert float((col * sizes).sum() / sizes.sum()) == pytest.approx(50, abs=0.5)


def test_report_leaves_out_columns_empty_for_every_track(analysis: Analysis) -> None:
    bare = Analysis.from_dict(analysis.to_dict())
    for t in bare.tracks:  # what a Development-Mode app gets: no popularity, no label
        t.popularity, t.label = None, None
    bare.liked = []
    md = render_markdown(bare)
    header = next(line for line in md.splitlines() if line.startswith("| Art"))
    assert header == "| Art | Track | Album | Artists | 🔗 |"
    assert "Rank = " not in md
    rows = [line for line in md.splitlines() if "track/" in line]
    assert all(len(_cells(r)) == 5 for r in rows)


def test_report_never_shows_a_stored_analysis_legacy_marks(analysis: Analysis) -> None:
    """Analyses stored by older versions carry their requester's saved tracks in ``liked``;
    the report shows only the reader's own (from their look-up), like the embeds."""
    stored = Analysis.from_dict(analysis.to_dict())
    stored.liked = report_track_ids(stored)[:5]  # the requester's, stored long ago
    assert "💚" not in render_markdown(stored)
    mine = report_track_ids(stored)[7:8]
    md = render_markdown(stored, liked=mine)
    rows = [line for line in md.splitlines() if "track/" in line]
    assert [row.split("track/")[-1][:22] for row in rows if "💚" in row] == mine


def test_report_fills_the_hearts_of_the_reader(analysis: Analysis) -> None:
    bare = Analysis.from_dict(analysis.to_dict())
    bare.liked = []
    assert "💚" not in render_markdown(bare)
    ids = report_track_ids(bare)
    md = render_markdown(bare, liked=ids[:3])
    header = next(line for line in md.splitlines() if line.startswith("| Art"))
    column = header.strip("| ").split(" | ").index("💚")
    rows = {
        line.split("track/")[-1][:22]: _cells(line) for line in md.splitlines() if "track/" in line
    }
    assert [tid for tid, cells in rows.items() if cells[column] == "💚"] == ids[:3]


def test_csv_leaves_out_columns_empty_for_every_track(analysis: Analysis) -> None:
    bare = Analysis.from_dict(analysis.to_dict())
    for t in bare.tracks:
        t.popularity, t.release_date = None, None
    header = render_csv(bare).splitlines()[0].split(",")
    assert "popularity" not in header and "release_date" not in header
    assert {"cluster", "track_id", "track", "tempo"} <= set(header)
    assert "popularity" in render_csv(analysis).splitlines()[0].split(",")
    assert summary(analysis)["split_by"] == analysis.split_by != ""


def test_cli_and_report_count_skipped_items_and_tracks_in_words() -> None:
    """The CLI and report.md say what the Discord overview says ("2 duplicates, 1 local
    file"), not the raw keys ("2 duplicate, 1 local"), and group thousands."""
    analysis = _synthetic(40, 2)
    analysis.skipped = {"duplicate": 2, "episode": 1, "local": 1, "null": 0}
    assert skipped_sentence(analysis) == "Skipped: 2 duplicates, 1 podcast episode, 1 local file."
    analysis.coverage = {"metadata": 10_000}
    assert "for 10,000 tracks" in coverage_sentence(analysis)
