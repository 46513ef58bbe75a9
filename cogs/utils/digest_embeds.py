"""How digests look in Discord: the change summary, the /digest list, headers and timestamps.

Pure rendering of :mod:`bot.digests` data within Discord's limits (the digest cog posts it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import discord

from bot.digests import DigestChanges, DigestError, DigestMessage, Schedule, TrackChange
from cogs.utils import embeds as E
from storage.digests import Subscription, parse_iso

# Per-list budgets inside one field (≤ 1,024 characters each): a few lines, like the result's
# clusters (the report and /clusters show have the rest).
LIST_LINES = 5


def md(text: str | None) -> str:
    """Markdown-escaped text (the same escaping as the /cluster embeds)."""
    return E.escape(text or "")


def ts(moment: str | datetime | None, style: str = "f") -> str:
    """A Discord timestamp (shown in each reader's own time zone)."""
    if moment is None:
        return "never"
    dt = parse_iso(moment) if isinstance(moment, str) else moment
    return discord.utils.format_dt(dt, style)  # type: ignore[arg-type]


def bullet_list(lines: Sequence[str], *, limit: int = LIST_LINES, budget: int = 1024) -> str:
    """Up to ``limit`` lines within ``budget`` characters, then "… and N more"."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        rest = len(lines) - i
        tail = f"… and {rest} more"
        if i >= limit or used + len(line) + 1 + len(tail) + 1 > budget:
            out.append(tail)
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out) or "—"


def track_text(change: TrackChange) -> str:
    """``Title — Artist`` cut to fit, as the result's track lines."""
    name = E.fit(E.short_title(change.name or change.track_id), 14)
    artists = E.fit(", ".join(change.artists) or "Unknown artist", 8)
    return f"{md(name)} — {md(artists)}"


def cluster_label(index: int | None, name: str | None) -> str:
    """``3 · calm, acoustic`` — the number the result's cluster list uses, and its words."""
    if index is None:
        return "no cluster"
    words = re.sub(rf"^cluster\s*#?{index + 1}\b\s*[·:-]?\s*", "", name or "", flags=re.I)
    words = ", ".join(w.strip() for w in words.split("·") if w.strip())
    return md(f"{index + 1} · " + E.fit(words, 11) if words else f"Cluster {index + 1}")


def changes_embed(changes: DigestChanges, *, since: str | None) -> discord.Embed:
    """What changed since the previous digest, within Discord's embed limits."""
    previous = since or changes.previous_created_at
    when = ts(previous, "D") if previous else "the last digest"
    # Timestamps do not render in embed titles: the date goes in the description.
    embed = discord.Embed(title="What changed", colour=0x5865F2)
    summary = [
        f"Since {when}: **{len(changes.added)}** added · **{len(changes.removed)}** removed",
    ]
    if changes.moved:
        summary.append(
            f"{changes.moved} track{'s' if changes.moved != 1 else ''} changed cluster"
            + (
                " — the playlist was regrouped, so sizes below are approximate."
                if changes.reshuffled
                else "."
            )
        )
    embed.description = E.truncate("\n".join(summary), E.DESCRIPTION)
    if changes.added:
        lines = [
            f"{track_text(c)} → {cluster_label(c.cluster, c.cluster_name)}" for c in changes.added
        ]
        embed.add_field(
            name=f"➕ Added ({len(changes.added)})", value=bullet_list(lines), inline=False
        )
    if changes.removed:
        lines = [  # a cluster that vanished since is named by its old number and name
            f"{track_text(c)} (was in {cluster_label(_was_in(c), c.cluster_name)})"
            for c in changes.removed
        ]
        embed.add_field(
            name=f"➖ Removed ({len(changes.removed)})", value=bullet_list(lines), inline=False
        )
    rows = []
    for c in sorted(changes.clusters, key=lambda c: (-abs(c.delta), c.index)):
        label = cluster_label(c.index, c.name)
        if c.previous_index is None:
            rows.append(f"🆕 {label}: {_tracks(c.size)} (new)")
        elif c.delta > 0:
            rows.append(f"📈 {label}: {c.previous_size} → {c.size} (+{c.delta})")
        elif c.delta < 0:
            rows.append(f"📉 {label}: {c.previous_size} → {c.size} ({c.delta})")
    for v in changes.vanished:
        old = f"{cluster_label(v.index, v.name)} of the last digest ({_tracks(v.previous_size)})"
        if v.merged_into is not None:
            rows.append(f"🔀 {old} merged into {cluster_label(v.merged_into, v.merged_into_name)}")
        else:
            rows.append(f"🗑️ {old} is gone")
    if rows:
        embed.add_field(name="Clusters", value=bullet_list(rows), inline=False)
    elif not changes.added and not changes.removed:
        embed.add_field(name="Clusters", value="Same clusters as before.", inline=False)
    return embed


def _was_in(c: TrackChange) -> int | None:
    return c.cluster if c.cluster is not None else c.previous_cluster


def _tracks(n: int) -> str:
    return f"{n} track{'s' if n != 1 else ''}"


def describe_subscription(sub: Subscription) -> str:
    """One /digest list line."""
    try:
        when = Schedule.of(sub).describe()
    except DigestError:
        when = f"{sub.every} at {sub.at_time} ({sub.timezone})"
    name = md(E.truncate(sub.label, 60))
    head = f"`#{sub.id}` [{name}]({sub.playlist_ref}) → <#{sub.channel_id}> · {when}"
    if sub.paused:
        reason = E.truncate(sub.pause_reason or "paused", 200)
        return f"{head}\n⏸️ **Paused:** {reason} — `/digest resume {sub.id}`"
    last = f" · last: {E.truncate(sub.last_status, 120)}" if sub.last_status else ""
    return f"{head}\nNext {ts(sub.next_run_at, 'R')}{last}"


def list_embed(subs: Sequence[Subscription]) -> discord.Embed:
    lines = [describe_subscription(s) for s in subs]
    text = (
        bullet_list(lines, limit=len(lines), budget=E.DESCRIPTION)
        if lines
        else ("No digests yet. Add one with `/digest add`.")
    )
    embed = discord.Embed(title="Playlist digests", description=text, colour=0x1DB954)
    paused = sum(1 for s in subs if s.paused)
    embed.set_footer(text=f"{len(subs)} digest(s), {paused} paused")
    return embed


def digest_header(message: DigestMessage, name: str) -> str:
    sched = message.schedule
    kind = "Digest" if sched is None else f"{sched.every.title()} digest"
    how = " (run by hand)" if message.manual else ""
    return E.truncate(f"📬 **{kind}** · {md(name)}{how}", E.CONTENT)
