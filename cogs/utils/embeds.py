"""Discord embeds for analyses (part of the cogs' Discord toolkit, :mod:`cogs.utils`).

Every function here returns payloads that respect Discord's limits for ANY input: 10 embeds
and 6,000 characters per message, title 256, description 4,096, 25 fields, field name 256 /
value 1,024, footer 2,048, author 256. Long names are cut on a character boundary with "…".
:func:`analysis_embeds` packs the overview and one embed per cluster into as many messages as
needed.
"""

from __future__ import annotations

import io
import re
import unicodedata
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


# ----------------------------------------------------------------------------- one line each
# A result must read on a phone: at 420 px an embed field holds about 44 characters of 14 px
# text per line (gg sans/Noto Sans, measured with ../shared/tools/render_messages.py), so every
# track line and cluster heading is cut to fit one line there; desktop (900 px) has room to spare.
LINE_CELLS = 42
HEADING_CELLS = 46


def cells(text: str) -> int:
    """Width of ``text`` in character cells: East Asian wide characters and emoji take two."""
    return sum(
        2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1
        for ch in text
    )


def fit(text: str, width: int) -> str:
    """Cut ``text`` to at most ``width`` cells, ending with "…" when cut."""
    text = " ".join((text or "").split())
    if cells(text) <= width:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        w = cells(ch)
        if used + w > width - 1 or len(out) >= 2 * width:  # combining marks take no cell
            break
        out.append(ch)
        used += w
    return "".join(out).rstrip(" ,·-–—(") + "…"


_NOISE = re.compile(
    r"\s+[-–—]\s+(?:\d{4}\s+)?(?:digital(?:ly)?\s+)?remaster(?:ed)?(?:\s+\d{4})?(?:\s+version)?$"
    r"|\s+[(\[](?:feat\.?|ft\.?|with)\s[^)\]]*[)\]]",
    re.IGNORECASE,
)


def short_title(name: str) -> str:
    """A track title without the parts that rarely tell tracks apart ("- 2016 Remaster",
    "(feat. …)"), which push the line past a phone's width."""
    return _NOISE.sub("", name or "").strip() or (name or "")


def track_line(
    track: Track, *, liked: bool = False, link: bool = True, width: int = LINE_CELLS
) -> str:
    """``Title — Artist`` on one phone line; the title links to Spotify when it can."""
    title = short_title(track.name or "Unknown track")
    artist = ", ".join(track.artists) or "Unknown artist"
    room = width - (3 if liked else 0) - 3  # " — " and " 💚"
    a_room = max(min(cells(artist), 16), room - cells(title))
    artist = fit(artist, a_room)
    title = fit(title, max(8, room - cells(artist)))
    head = escape(title)
    if link and _is_spotify_id(track.id):
        head = f"[{head}]({track.url})"
    return f"{head} — {escape(artist)}" + (f" {LIKED}" if liked else "")


def _is_spotify_id(track_id: str) -> bool:
    return len(track_id) == 22 and track_id.isalnum()


def cluster_title(cluster: Cluster) -> str:
    name = cluster.name or f"Cluster {cluster.index + 1}"
    if not name.lower().startswith("cluster"):
        name = f"Cluster {cluster.index + 1} · {name}"
    return truncate(name, TITLE)


def _words(text: str) -> list[str]:
    return [w.strip() for w in re.split(r"[·,]", text or "") if w.strip()]


def sounds_like(cluster: Cluster) -> str:
    """What the cluster sounds like, once: its name's own words (without "Cluster N") and
    the description's words not already in the name."""
    name = re.sub(
        rf"^cluster\s*#?{cluster.index + 1}\b\s*[·:-]?\s*",
        "",
        cluster.name or "",
        flags=re.IGNORECASE,
    )
    words = _words(name)
    seen = {w.lower() for w in words}
    words += [w for w in _words(cluster.description) if w.lower() not in seen]
    return ", ".join(words)


def cluster_heading(cluster: Cluster, width: int = HEADING_CELLS) -> str:
    """``3 · calm, acoustic, 2010s · 12 tracks`` cut to one phone line (bold field name)."""
    size = f" · {cluster.size} track{'s' if cluster.size != 1 else ''}"
    number = f"{cluster.index + 1} · "
    words = sounds_like(cluster) or "close to the playlist average"
    return number + fit(words, width - len(number) - len(size)) + size


def representatives_shown(k: int) -> int:
    """3–5 tracks per cluster: fewer when there are many clusters, so k = 20 stays ~3 screens."""
    return 5 if k <= 4 else 4 if k <= 8 else 3


def cluster_field(
    cluster: Cluster,
    by_id: dict[str, Track],
    liked: set[str],
    *,
    tracks: int,
    links: bool = True,
) -> tuple[str, str]:
    """(field name, field value): the heading and up to ``tracks`` representatives."""
    lines = [
        track_line(by_id[tid], liked=tid in liked, link=links)
        for tid in cluster.representative_ids[:tracks]
        if tid in by_id
    ]
    return escape(cluster_heading(cluster)), truncate("\n".join(lines) or "—", FIELD_VALUE)


# ----------------------------------------------------------------------------- overview
SOURCE_WORDS = {"spotify": "Spotify", "reccobeats": "ReccoBeats", "csv": "the file"}
SKIPPED_WORDS = {
    "duplicate": ("duplicate", "duplicates"),
    "local": ("local file", "local files"),
    "episode": ("podcast episode", "podcast episodes"),
    "null": ("removed item", "removed items"),
    "unavailable": ("unavailable track", "unavailable tracks"),
    "over_limit": ("track over the size limit", "tracks over the size limit"),
    "invalid": ("unreadable row", "unreadable rows"),
}


def sound_sentence(analysis: Analysis) -> str:
    """e.g. "Sound from ReccoBeats for 97 of 99 tracks; the rest by year, popularity, length"."""
    n = len(analysis.tracks)
    audio = {s: c for s, c in analysis.coverage.items() if s in SOURCE_WORDS and c}
    if not audio or analysis.feature_mode == "metadata":
        return "No sound data for these tracks: grouped by release year, popularity and length"
    parts = [
        f"{SOURCE_WORDS[s]} for {c:,}"
        for s, c in sorted(audio.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if len(parts) == 1 and sum(audio.values()) == n:
        return f"Sound from {parts[0].replace(' for ', ' for all ')} tracks"
    text = "Sound from " + " and ".join(parts) + f" of {n:,} tracks"
    if sum(audio.values()) < n:
        text += "; the rest by year and length only"
    return text


def separation_words(silhouette: float | None) -> str | None:
    """How well the clusters separate, in words (silhouette bands as sklearn users read them)."""
    if silhouette is None:
        return None
    if silhouette >= 0.5:
        return "The clusters are clearly apart"
    if silhouette >= 0.25:
        return "The clusters are fairly distinct"
    if silhouette >= 0.1:
        return "The clusters overlap somewhat"
    return "The clusters overlap a lot: the playlist is fairly uniform"


def skipped_sentence(skipped: dict[str, int]) -> str | None:
    parts = []
    for key, n in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])):
        if n:
            one, many = SKIPPED_WORDS.get(key, (key, key))
            parts.append(f"{n:,} {one if n == 1 else many}")
    return ", ".join(parts) + " skipped" if parts else None


def overview_embed(
    analysis: Analysis, *, header: str | None = None, with_image: bool = True
) -> discord.Embed:
    """Playlist, size, k, where the sound came from, how well it split, skipped, scatter."""
    src = analysis.source
    asked = (
        f" (you asked for {analysis.k_requested})"
        if analysis.k_requested and analysis.k_requested != analysis.k
        else ""
    )
    lines = [f"**{len(analysis.tracks):,} tracks** in **{analysis.k} clusters**{asked}"]
    note = public_page_note(src, len(analysis.tracks) + sum(analysis.skipped.values()))
    if note:
        lines.append(f"*{note[0].upper()}{note[1:]}.*")
    lines.append(sound_sentence(analysis) + ".")
    split = separation_words(analysis.silhouette)
    if split:
        lines.append(split + (f", {analysis.split_by}" if analysis.split_by else "") + ".")
    elif analysis.split_by:
        lines.append(analysis.split_by[0].upper() + analysis.split_by[1:] + ".")
    skipped = skipped_sentence(analysis.skipped)
    if skipped:
        lines.append(skipped + ".")
    if header:
        lines.insert(0, truncate(header, 300))
    embed = discord.Embed(
        title=truncate(f"🎧 {src.name or 'Playlist'}", TITLE),
        url=src.url if src.url and src.url.startswith("https://") else None,
        description=truncate("\n".join(lines), DESCRIPTION),
        colour=0x1DB954,
    )
    if src.owner_name:
        embed.set_author(name=truncate(f"by {src.owner_name}", AUTHOR))
    if with_image:
        embed.set_image(url=f"attachment://{SCATTER_NAME}")
    return embed


def result_hint(analysis: Analysis) -> str:
    """The last words above the controls, naming them as they appear."""
    head = f"Analysis #{analysis.analysis_id} · " if analysis.analysis_id else ""
    if analysis.analysis_id is None:
        return "Playlist Clusters"
    return (
        head + "Browse a cluster below: every track, and Save as playlist. "
        "Report and Tracks: the full lists as files."
    )


# ----------------------------------------------------------------------------- packing
def analysis_embeds(
    analysis: Analysis,
    *,
    liked: Iterable[str] = frozenset(),
    header: str | None = None,
    with_image: bool = True,
    lead: Sequence[discord.Embed] = (),
) -> list[list[discord.Embed]]:
    """The result as few messages as Discord allows (one for most, two at most for k ≤ 20):
    ``lead`` embeds (a digest's changes), the overview + scatter, then every cluster as one
    field (heading + 3–5 tracks) of a shared embed, the hint in the last embed's footer.

    Tracks lose their links, then drop to 3 a cluster, when that is what keeps the result
    within two messages of 6,000 characters."""
    by_id = analysis.track_by_id()
    liked_set = set(liked) | set(analysis.liked)
    overview = overview_embed(analysis, header=header, with_image=with_image)
    tracks = representatives_shown(len(analysis.clusters))
    levels = [(tracks, True), (tracks, False), (3, False)]
    for n_tracks, links in levels:
        fields = [
            cluster_field(c, by_id, liked_set, tracks=n_tracks, links=links)
            for c in analysis.clusters
        ]
        messages = _pack([*lead, overview], fields)
        if len(messages) <= 2:
            break
    last = messages[-1][-1]
    last.set_footer(text=truncate(result_hint(analysis), FOOTER))
    return messages


def _pack(head: list[discord.Embed], fields: list[tuple[str, str]]) -> list[list[discord.Embed]]:
    """Greedy: head embeds, then cluster fields, into messages of ≤ 10 embeds and ≤ 6,000
    characters (footer hint included in the reserve)."""
    reserve = len(FOOTER_RESERVE)
    messages: list[list[discord.Embed]] = []
    current: list[discord.Embed] = []
    size = 0
    for e in head:
        n = len(e)
        if current and (len(current) >= MAX_EMBEDS_PER_MESSAGE or size + n > MAX_CHARS_PER_MESSAGE):
            messages.append(current)
            current, size = [], 0
        current.append(e)
        size += n
    block: discord.Embed | None = None
    for name, value in fields:
        n = len(name) + len(value)
        full = block is not None and len(block.fields) >= FIELDS
        if size + n + reserve > MAX_CHARS_PER_MESSAGE or (
            full and len(current) >= MAX_EMBEDS_PER_MESSAGE
        ):
            messages.append(current)
            current, size, block = [], 0, None
        if block is None or len(block.fields) >= FIELDS:
            block = discord.Embed(colour=0x1DB954)
            current.append(block)
        block.add_field(name=name, value=value, inline=False)
        size += n
    if current:
        messages.append(current)
    return messages


FOOTER_RESERVE = "x" * 200  # the hint set after packing (result_hint is ~130 characters)


def representative_ids(analysis: Analysis) -> list[str]:
    """Track ids shown in the cluster embeds (to ask which ones the user liked)."""
    shown = representatives_shown(len(analysis.clusters))
    return [tid for c in analysis.clusters for tid in c.representative_ids[:shown]]


def scatter_file(rendered_png: bytes) -> discord.File:
    return discord.File(io.BytesIO(rendered_png), filename=SCATTER_NAME)


def text_file(text: str | bytes, filename: str) -> discord.File:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return discord.File(io.BytesIO(data), filename=filename)


# ----------------------------------------------------------------------------- browse pages
PAGE_SIZE = 15


def page_count(cluster: Cluster, page_size: int = PAGE_SIZE) -> int:
    return max(1, -(-len(cluster.track_ids) // page_size))


def browse_line(track: Track, number: int, *, liked: bool = False) -> str:
    """``12. Title — Artist · popularity 71 💚`` (popularity only where the source has it)."""
    line = f"`{number:>2}.` " + track_line(track, width=LINE_CELLS + 12)
    if track.popularity is not None:
        line += f" · popularity {track.popularity}"
    return line + (f" {LIKED}" if liked else "")


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
            lines.append(browse_line(t, i, liked=tid in liked_set))
    embed = discord.Embed(
        title=escape(truncate(f"{cluster.index + 1} · {sounds_like(cluster)}", TITLE // 2)),
        description=truncate("\n".join(lines) or "No tracks.", DESCRIPTION),
        colour=COLOURS[cluster.index % len(COLOURS)],
    )
    embed.set_footer(
        text=truncate(
            f"Page {page + 1}/{pages} · {cluster.size} tracks · "
            f"{analysis.source.name} · analysis #{analysis.analysis_id} · "
            "Save as playlist puts them all in your Spotify",
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
