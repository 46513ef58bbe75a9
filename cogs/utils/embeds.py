"""Discord embeds for analyses (part of the cogs' Discord toolkit, :mod:`cogs.utils`).

Every function here returns payloads that respect Discord's limits for ANY input: 10 embeds
and 6,000 characters per message, title 256, description 4,096, 25 fields, field name 256 /
value 1,024, footer 2,048, author 256. :func:`analysis_embeds` lays a result out for a phone:
the overview + scatter, then every cluster as a bold heading (number, name, size) with 3–5
tracks on one phone line each, in shared embed descriptions (a field costs 10 px more per
cluster at 420 px), in one message (two at most for k ≤ 20); README "What a result looks like".
Why one module (~515 lines): the overview, the cluster lines and the browse pages share one
height and character budget, measured together by tests/test_result_layout.py.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Sequence

import discord

from bot import render
from bot.models import ARTEFACTS, Analysis, Cluster, Track
from bot.sources.link_reader import FOR_ANYONE, public_page_note
from bot.sources.normalise import skipped_count
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
PROFILE_NAME = ARTEFACTS.profile
PROFILE_EMOJI = "🎚️"
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
# A result must read on a phone. At 420 px an embed's text column is ~308 px: 22 em of 14 px
# text (measured with ../shared/tools/render_messages.py; Discord's gg sans is about as wide as
# Arial). Text widths are estimated per character from Arial's advance widths, so every track
# line and cluster heading is cut to one phone line; desktop (900 px) has room to spare.
LINE_EM = 21.0  # a track line (14 px)
HEADING_EM = 20.5  # a cluster heading (14 px bold: Arial bold is ~7% wider, the estimate errs wide)
TITLE_EM = 17.0  # the overview title (16 px bold): one phone line (it links to the playlist)
_NARROW = frozenset("ijlI.,:;'|!`")
_SLIM = frozenset('ftr()[]-/ *"')
_BROAD = frozenset("mwMW@%")


def char_em(ch: str) -> float:
    """Estimated advance width of ``ch`` in em (Arial-like metrics; emoji drawn ~1.3 em)."""
    if ch in _NARROW:
        return 0.25
    if ch in _SLIM:
        return 0.32
    if ch in _BROAD:
        return 0.85
    if ch in "—…":
        return 1.0
    if ch.isascii():
        return 0.68 if ch.isupper() or ch in "&" else 0.55
    if unicodedata.combining(ch):
        return 0.0
    if unicodedata.east_asian_width(ch) in "WF":
        return 1.3 if unicodedata.category(ch) == "So" else 1.0
    return 0.6


def text_em(text: str) -> float:
    """Estimated width of ``text`` in em."""
    return sum(char_em(ch) for ch in text)


def fit(text: str, width: float) -> str:
    """Cut ``text`` to at most ``width`` em, ending with "…" when cut."""
    text = " ".join((text or "").split())
    if text_em(text) <= width:
        return text
    out: list[str] = []
    used = 0.0
    for ch in text:
        w = char_em(ch)
        if used + w > width - 1.0 or len(out) >= 4 * width:  # combining marks take no room
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
    track: Track, *, liked: bool = False, link: bool = True, width: float = LINE_EM
) -> str:
    """``Title — Artist`` on one phone line; the title links to Spotify when it can."""
    title = short_title(track.name or "Unknown track")
    artist = ", ".join(track.artists) or "Unknown artist"
    room = width - 1.6 - (1.6 if liked else 0)  # " — " and " 💚"
    artist = fit(artist, max(min(text_em(artist), 8.0), room - text_em(title)))
    title = fit(title, max(5.0, room - text_em(artist)))
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


def cluster_heading(cluster: Cluster, width: float = HEADING_EM) -> str:
    """``3 · calm, acoustic, 2010s · 12 tracks`` cut to one phone line (bold field name)."""
    size = f" · {cluster.size} track{'s' if cluster.size != 1 else ''}"
    number = f"{cluster.index + 1} · "
    words = sounds_like(cluster) or "close to the playlist average"
    return number + fit(words, width - text_em(number + size)) + size


def representatives_shown(k: int) -> int:
    """3–5 tracks per cluster: fewer when there are many clusters, so k = 20 stays ~3 screens."""
    return 5 if k <= 4 else 4 if k <= 8 else 3


def cluster_block(
    cluster: Cluster,
    by_id: dict[str, Track],
    liked: set[str],
    *,
    tracks: int,
    links: bool = True,
) -> str:
    """A cluster's lines in a shared embed description: its bold heading, then up to
    ``tracks`` representatives. (Not a field each: at 420 px an embed field costs 10 px of
    spacing more than a line, 200 px over 20 clusters, and the result must stay ~3 screens.)"""
    lines = [f"**{escape(cluster_heading(cluster))}**"]
    lines += [
        track_line(by_id[tid], liked=tid in liked, link=links)
        for tid in cluster.representative_ids[:tracks]
        if tid in by_id
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- overview
SOURCE_WORDS = {"spotify": "Spotify", "reccobeats": "ReccoBeats", "csv": "the file"}


def sound_sentence(analysis: Analysis) -> str:
    """e.g. "Sound from ReccoBeats for 97 of 99 tracks; 2 by year and length only".

    When ReccoBeats could not answer for some tracks this time (``Analysis.unanswered``: an
    outage, a rate limit), it says so in as many lines as without (two at most on a phone:
    the overview's worst case is within 10 px of its budget, tests/test_result_layout.py);
    the report and the CLI give the whole sentence (``render.unanswered_sentence``). A later
    run asks again for those tracks (``Worker._find_reusable``).
    """
    n = len(analysis.tracks)
    audio = {s: c for s, c in analysis.coverage.items() if s in SOURCE_WORDS and c}
    without = n - sum(audio.values())
    unanswered = min(analysis.unanswered, without)
    if not audio or analysis.feature_mode == "metadata":
        if unanswered:
            return (
                "No sound: ReccoBeats did not answer (try later). "
                f"Grouped by {render.grouped_by(analysis.feature_names, short=True)}"
            )
        by = render.grouped_by(analysis.feature_names)
        return f"No sound data for these tracks: grouped by {by}"
    parts = [
        f"{SOURCE_WORDS[s]} for {c:,}"
        for s, c in sorted(audio.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if len(parts) == 1 and without == 0:
        return f"Sound from {parts[0].replace(' for ', ' for all ')} tracks"
    text = "Sound from " + ", ".join(parts) + f" of {n:,} tracks"
    if unanswered == without > 0:
        text += f"; {without:,} unanswered (try later)"
    elif unanswered:
        text += f"; none for {without:,} ({unanswered:,} unanswered)"
    elif without > 0:
        text += f"; {without:,} by year and length only"
    return text


def separation_words(silhouette: float | None) -> str | None:
    """How well the clusters separate, in words (silhouette bands as sklearn users read them)."""
    if silhouette is None:
        return None
    if silhouette >= 0.5:
        return "Clearly separate clusters"
    if silhouette >= 0.25:
        return "Fairly distinct clusters"
    if silhouette >= 0.1:
        return "Clusters overlap somewhat"
    return "Clusters overlap a lot (a fairly uniform playlist)"


def skipped_sentence(skipped: dict[str, int], width: float = LINE_EM) -> str | None:
    """e.g. "90 duplicates, 2 local files skipped", on one phone line: the kinds that do not
    fit are counted together ("…, 7 other")."""
    counts = sorted(((n, key) for key, n in skipped.items() if n), key=lambda p: (-p[0], p[1]))
    parts = []
    for n, key in counts:
        parts.append(skipped_count(key, n))
    for shown in range(len(parts), 0, -1):
        rest = sum(n for n, _ in counts[shown:])
        text = ", ".join(parts[:shown] + ([f"{rest:,} other"] if rest else [])) + " skipped."
        if text_em(text) <= width or shown == 1:
            return fit(text[:-1], width)
    return None


def overview_embed(
    analysis: Analysis,
    *,
    header: str | None = None,
    with_image: bool = True,
    reader: str = FOR_ANYONE,
) -> discord.Embed:
    """Playlist, size, k, where the sound came from, how well it split, skipped, scatter.
    ``reader``: who the partial-read note speaks to (:func:`public_page_note`)."""
    src = analysis.source
    asked = (
        f" (you asked for {analysis.k_requested})"
        if analysis.k_requested and analysis.k_requested != analysis.k
        else ""
    )
    clusters = "1 cluster" if analysis.k == 1 else f"{analysis.k} clusters"
    lines = [f"**{len(analysis.tracks):,} tracks** in **{clusters}**{asked}"]
    note = public_page_note(
        src, len(analysis.tracks) + sum(analysis.skipped.values()), reader=reader
    )
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
        title=escape(fit(f"🎧 {src.name or 'Playlist'}", TITLE_EM)),
        url=src.url if src.url and src.url.startswith("https://") else None,
        description=truncate("\n".join(lines), DESCRIPTION),
        colour=0x1DB954,
    )
    if src.owner_name:
        embed.set_author(name=truncate(fit(f"by {src.owner_name}", HEADING_EM), AUTHOR))
    if with_image:
        embed.set_image(url=f"attachment://{SCATTER_NAME}")
    return embed


def profile_inline(k: int) -> bool:
    """Whether the sound profile goes under the cluster list: while Discord shows it wide
    enough that its text reads ≥ 11 px (an embed image fits in 308 × 300 px at 420 px, and
    the chart grows a row a cluster: k ≤ 6). Otherwise the **Profile** button sends it."""
    shown = render.embed_width_px(render.FIG_WIDTH_IN, render.profile_height_in(k))
    text_px = render.phone_px(render.TEXT_PT, render.FIG_WIDTH_IN, shown)
    return text_px >= render.MIN_PHONE_TEXT_PX


def result_hint(analysis: Analysis, label: str | None = None, *, profile: bool = False) -> str:
    """The last words above the controls, naming them as they appear; two phone lines at
    most (12-px footer: ~25 em a line)."""
    if analysis.analysis_id is None:
        return "Playlist Clusters"
    label = label or f"Analysis #{analysis.analysis_id}"
    files = "Report, Tracks, Profile" if profile else "Report and Tracks"
    return f"{fit(label, 12)} · Browse a cluster: every track, Save as playlist. {files}: files."


# ----------------------------------------------------------------------------- packing
def analysis_embeds(
    analysis: Analysis,
    *,
    liked: Iterable[str] = frozenset(),
    header: str | None = None,
    with_image: bool = True,
    lead: Sequence[discord.Embed] = (),
    label: str | None = None,
    with_profile: bool = False,
    reader: str = FOR_ANYONE,
) -> list[list[discord.Embed]]:
    """The result as few messages as Discord allows (one for most, two at most for k ≤ 20):
    ``lead`` embeds (a digest's changes), the overview + scatter, then every cluster (bold
    heading + 3–5 tracks) in shared embed descriptions, the hint in the last embed's footer.

    Tracks lose their links, then drop to 3 a cluster, when that is what keeps the result
    in one message (else two) of 6,000 characters."""
    by_id = analysis.track_by_id()
    liked_set = set(liked)  # never analysis.liked: an old stored one could be anyone's
    overview = overview_embed(analysis, header=header, with_image=with_image, reader=reader)
    tracks = representatives_shown(len(analysis.clusters))
    levels = [(tracks, True), (tracks, False), (3, False)]
    packed = []
    for n_tracks, links in levels:
        blocks = [
            cluster_block(c, by_id, liked_set, tracks=n_tracks, links=links)
            for c in analysis.clusters
        ]
        packed.append(_pack([*lead, overview], blocks))
    # One message if any level fits in one (a second message costs a header and padding,
    # ~100 px on a phone), else the first level that fits in two, else the most compact.
    messages = next(
        (m for limit in (1, 2) for m in packed if len(m) <= limit),
        packed[-1],
    )
    last = messages[-1][-1]
    inline = with_profile and profile_inline(len(analysis.clusters)) and last is not overview
    hint = result_hint(analysis, label, profile=not inline)
    last.set_footer(text=truncate(hint, FOOTER))
    if inline:
        last.set_image(url=f"attachment://{PROFILE_NAME}")  # what each cluster sounds like
    return messages


def _pack(head: list[discord.Embed], blocks: list[str]) -> list[list[discord.Embed]]:
    """Greedy: head embeds, then cluster blocks into shared descriptions (≤ 4,096
    characters each), into messages of ≤ 10 embeds and ≤ 6,000 characters (footer hint
    included in the reserve)."""
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
    block_embed: discord.Embed | None = None
    for block in blocks:
        text = truncate(block, DESCRIPTION)
        n = len(text) + 1
        new_embed = block_embed is None or len(block_embed.description or "") + n > DESCRIPTION
        if size + n + reserve > MAX_CHARS_PER_MESSAGE or (
            new_embed and len(current) >= MAX_EMBEDS_PER_MESSAGE
        ):
            messages.append(current)
            current, size, new_embed = [], 0, True
        if new_embed:
            block_embed = discord.Embed(colour=0x1DB954, description="")
            current.append(block_embed)
        assert block_embed is not None
        desc = block_embed.description or ""
        block_embed.description = f"{desc}\n{text}" if desc else text
        size += n
    if current:
        messages.append(current)
    return messages


FOOTER_RESERVE = "x" * 200  # the hint set after packing (result_hint is ~130 characters)


def representative_ids(analysis: Analysis) -> list[str]:
    """Track ids shown in the cluster embeds (to ask which ones the user liked)."""
    shown = representatives_shown(len(analysis.clusters))
    return [tid for c in analysis.clusters for tid in c.representative_ids[:shown]]


def scatter_file(rendered_png: bytes, filename: str = SCATTER_NAME) -> discord.File:
    return discord.File(io.BytesIO(rendered_png), filename=filename)


def text_file(text: str | bytes, filename: str) -> discord.File:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return discord.File(io.BytesIO(data), filename=filename)


# ----------------------------------------------------------------------------- browse pages
PAGE_SIZE = 15


def page_count(cluster: Cluster, page_size: int = PAGE_SIZE) -> int:
    return max(1, -(-len(cluster.track_ids) // page_size))


def browse_line(track: Track, number: int, *, liked: bool = False) -> str:
    """``12. Title — Artist · popularity 71 💚`` (popularity only where the source has it)."""
    line = f"`{number:>2}.` " + track_line(track, width=LINE_EM + 6)
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
    liked_set = set(liked)  # never analysis.liked: an old stored one could be anyone's
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
