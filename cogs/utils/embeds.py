"""Discord embeds for analyses (part of the cogs' Discord toolkit, :mod:`cogs.utils`).

Every function here returns payloads that respect Discord's limits for ANY input: 10 embeds
and 6,000 characters per message, title 256, description 4,096, 25 fields, field name 256 /
value 1,024, footer 2,048, author 256. Long names are cut on a character boundary with "…".
:func:`analysis_embeds` packs the overview and one embed per cluster into as many messages as
needed.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import discord

from bot.models import ARTEFACTS, Analysis, Cluster, Track
from bot.sources.link_reader import public_page_note
from storage.analyses import AnalysisListing

# Discord limits
MAX_EMBEDS_PER_MESSAGE = 10
MAX_CHARS_PER_MESSAGE = 6000
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR = 256
CONTENT = 2000
MAX_FILE_BYTES = 10 * 1024 * 1024

# Our own, tighter budgets (keep each cluster embed well under the per-message budget).
CLUSTER_DESCRIPTION_BUDGET = 3500
TRACK_NAME = 80
ARTISTS = 60
ALBUM = 50
LABEL = 30
REPRESENTATIVES = 10

COLOURS = [
    0x1DB954,
    0x5865F2,
    0xEB459E,
    0xFEE75C,
    0xED4245,
    0x57F287,
    0x9B59B6,
    0xE67E22,
    0x3498DB,
    0x1ABC9C,
]
SCATTER_NAME = ARTEFACTS.png
LIKED = "💚"


def truncate(text: str | None, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with "…" when cut."""
    text = (text or "").strip()
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + "…"


def escape(text: str) -> str:
    """Escape markdown so track names like ``*NSYNC`` or ``[Live]`` render literally."""
    out = discord.utils.escape_markdown(text or "")
    return out.replace("[", "\\[").replace("]", "\\]")


# ----------------------------------------------------------------------------- cluster parts
def track_line(track: Track, number: int, *, liked: bool = False) -> str:
    """One representative line: ``1. [Track](url) — Artists · *Album* · Label · pop 71 💚``."""
    name = escape(truncate(track.name or "Unknown track", TRACK_NAME))
    head = f"[{name}]({track.url})" if _is_spotify_id(track.id) else f"**{name}**"
    bits = [escape(truncate(", ".join(track.artists) or "Unknown artist", ARTISTS))]
    if track.album:
        bits.append(f"*{escape(truncate(track.album, ALBUM))}*")
    if track.label:
        bits.append(escape(truncate(track.label, LABEL)))
    if track.popularity is not None:
        bits.append(f"pop {track.popularity}")
    line = f"`{number:>2}.` {head} — " + " · ".join(bits)
    if liked:
        line += f" {LIKED}"
    return line


def _is_spotify_id(track_id: str) -> bool:
    return len(track_id) == 22 and track_id.isalnum()


def cluster_title(cluster: Cluster) -> str:
    name = cluster.name or f"Cluster {cluster.index + 1}"
    if not name.lower().startswith("cluster"):
        name = f"Cluster {cluster.index + 1} · {name}"
    return truncate(name, TITLE)


def cluster_embed(
    analysis: Analysis,
    cluster: Cluster,
    *,
    liked: Iterable[str] = (),
    by_id: dict[str, Track] | None = None,
) -> discord.Embed:
    """One cluster: name, description, size, up to 10 representative tracks, first cover."""
    by_id = by_id if by_id is not None else analysis.track_by_id()
    liked_set = set(liked) | set(analysis.liked)
    n = len(analysis.tracks) or 1
    description = truncate(escape(cluster.description), 600)
    lines = [description] if description else []
    lines += [
        f"**{cluster.size} track{'s' if cluster.size != 1 else ''}** "
        f"({cluster.size * 100 / n:.0f}% of the playlist)",
        "",
    ]
    used = sum(len(x) + 1 for x in lines)
    shown = 0
    thumb: str | None = None
    for i, tid in enumerate(cluster.representative_ids[:REPRESENTATIVES], start=1):
        track = by_id.get(tid)
        if track is None:
            continue
        line = track_line(track, i, liked=tid in liked_set)
        if used + len(line) + 1 > CLUSTER_DESCRIPTION_BUDGET:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
        thumb = thumb or track.image_url
    more = cluster.size - shown
    if more > 0:
        lines.append(f"… and {more} more — use **Browse a cluster** below.")
    embed = discord.Embed(
        title=cluster_title(cluster),
        description=truncate("\n".join(lines), DESCRIPTION),
        colour=COLOURS[cluster.index % len(COLOURS)],
    )
    if thumb:
        embed.set_thumbnail(url=thumb)
    return embed


def _fmt_sources(analysis: Analysis) -> str:
    n = len(analysis.tracks)
    parts = [f"{src}: {count:,}/{n:,}" for src, count in sorted(analysis.coverage.items())]
    return ", ".join(parts) or "metadata only"


def _fmt_skipped(skipped: dict[str, int]) -> str:
    parts = [f"{v:,} {k}" for k, v in sorted(skipped.items()) if v]
    return ", ".join(parts) or "none"


def overview_embed(
    analysis: Analysis, *, header: str | None = None, with_image: bool = True
) -> discord.Embed:
    """Playlist, k, feature sources used (and for how many tracks), skipped items, scatter."""
    src = analysis.source
    title = truncate(f"🎧 {src.name or 'Playlist'}", TITLE)
    desc = [
        f"**{len(analysis.tracks):,} tracks** in **{analysis.k} clusters**"
        + (
            f" (you asked for {analysis.k_requested})"
            if analysis.k_requested and analysis.k_requested != analysis.k
            else ""
        ),
    ]
    note = public_page_note(src, len(analysis.tracks) + sum(analysis.skipped.values()))
    if note:
        desc.append(f"*{note[0].upper()}{note[1:]}.*")
    if header:
        desc.insert(0, truncate(header, 500))
    embed = discord.Embed(
        title=title,
        url=src.url if src.url and src.url.startswith("https://") else None,
        description="\n".join(desc),
        colour=0x1DB954,
    )
    embed.add_field(
        name="Features",
        value=truncate(f"{analysis.feature_mode} — {_fmt_sources(analysis)}", FIELD_VALUE),
        inline=False,
    )
    embed.add_field(name="Skipped", value=truncate(_fmt_skipped(analysis.skipped), FIELD_VALUE))
    if analysis.silhouette is not None:
        embed.add_field(name="Silhouette", value=f"{analysis.silhouette:.2f}")
    if src.owner_name:
        embed.set_author(name=truncate(f"by {src.owner_name}", AUTHOR))
    footer = f"Analysis #{analysis.analysis_id}" if analysis.analysis_id else "Playlist Clusters"
    embed.set_footer(text=truncate(footer, FOOTER))
    if with_image:
        embed.set_image(url=f"attachment://{SCATTER_NAME}")
    return embed


def pack(embeds: Sequence[discord.Embed]) -> list[list[discord.Embed]]:
    """Greedily group embeds into messages of ≤ 10 embeds and ≤ 6,000 characters."""
    messages: list[list[discord.Embed]] = []
    current: list[discord.Embed] = []
    size = 0
    for e in embeds:
        n = len(e)  # the characters Discord counts toward the 6,000 limit
        if current and (len(current) >= MAX_EMBEDS_PER_MESSAGE or size + n > MAX_CHARS_PER_MESSAGE):
            messages.append(current)
            current, size = [], 0
        current.append(e)
        size += n
    if current:
        messages.append(current)
    return messages


def analysis_embeds(
    analysis: Analysis,
    *,
    liked: Iterable[str] = frozenset(),
    header: str | None = None,
    with_image: bool = True,
) -> list[list[discord.Embed]]:
    """Overview first, then one embed per cluster, packed into messages within the limits."""
    by_id = analysis.track_by_id()
    liked = set(liked)
    embeds = [overview_embed(analysis, header=header, with_image=with_image)]
    embeds += [cluster_embed(analysis, c, liked=liked, by_id=by_id) for c in analysis.clusters]
    return pack(embeds)


def representative_ids(analysis: Analysis) -> list[str]:
    """Track ids shown in the cluster embeds (to ask which ones the user liked)."""
    out: list[str] = []
    for c in analysis.clusters:
        out += c.representative_ids[:REPRESENTATIVES]
    return out


def scatter_file(rendered_png: bytes) -> discord.File:
    return discord.File(io.BytesIO(rendered_png), filename=SCATTER_NAME)


def text_file(text: str | bytes, filename: str) -> discord.File:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return discord.File(io.BytesIO(data), filename=filename)


# ----------------------------------------------------------------------------- browse pages
PAGE_SIZE = 15


def page_count(cluster: Cluster, page_size: int = PAGE_SIZE) -> int:
    return max(1, -(-len(cluster.track_ids) // page_size))


def browse_embed(
    analysis: Analysis,
    cluster: Cluster,
    page: int,
    *,
    liked: Iterable[str] = (),
    page_size: int = PAGE_SIZE,
) -> discord.Embed:
    """One page of every track in a cluster (numbered, nearest the centroid first)."""
    by_id = analysis.track_by_id()
    liked_set = set(liked) | set(analysis.liked)
    pages = page_count(cluster, page_size)
    page = min(max(0, page), pages - 1)
    start = page * page_size
    lines = []
    for i, tid in enumerate(cluster.track_ids[start : start + page_size], start=start + 1):
        t = by_id.get(tid)
        if t is not None:
            lines.append(track_line(t, i, liked=tid in liked_set))
    embed = discord.Embed(
        title=cluster_title(cluster),
        description=truncate("\n".join(lines) or "No tracks.", DESCRIPTION),
        colour=COLOURS[cluster.index % len(COLOURS)],
    )
    embed.set_footer(
        text=truncate(
            f"Page {page + 1}/{pages} · {cluster.size} tracks · "
            f"{analysis.source.name} · analysis #{analysis.analysis_id}",
            FOOTER,
        )
    )
    return embed


def history_embed(rows: list[AnalysisListing], *, title: str) -> discord.Embed:
    lines = []
    for r in rows:
        name = escape(truncate(str(r.name or r.playlist_id or "?"), 80))
        created = str(r.created_at or "")[:16].replace("T", " ")
        n_tracks = "?" if r.n_tracks is None else r.n_tracks
        lines.append(f"`#{r.id}` **{name}** — {r.k} clusters, {n_tracks} tracks · {created}")
    embed = discord.Embed(
        title=truncate(title, TITLE),
        description=truncate("\n".join(lines) or "No analyses yet.", DESCRIPTION),
        colour=0x1DB954,
    )
    embed.set_footer(text="Re-show one with /clusters show id:<number>")
    return embed
