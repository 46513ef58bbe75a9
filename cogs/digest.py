"""/digest: scheduled playlist digests posted to a channel (issue #6).

``/digest add|list|remove|run|resume`` — server managers only (Manage Server, checked by
Discord through ``default_permissions`` and again here at run time), in servers only.

The cog is thin: schedules, storage and the change summary live in :mod:`bot.digests`; this
module gives the :class:`bot.digests.DigestScheduler` its ``poster`` (how a
:class:`bot.digests.DigestMessage` becomes Discord messages) and renders the change summary
within Discord's limits. A channel that is gone or no longer writable is reported to the
scheduler as :class:`bot.digests.DestinationGone`, which pauses the subscription.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot import embeds as E
from bot.app import send_ephemeral
from bot.digests import (
    WEEKDAYS,
    DestinationGone,
    DigestChanges,
    DigestError,
    DigestMessage,
    DigestScheduler,
    Schedule,
    TrackChange,
    suggest_timezones,
)
from bot.errors import PipelineError
from bot.sources.links import parse_spotify_link
from cogs.cluster import channel_permissions, channel_send, missing_permissions, outcome_messages
from storage.digests import Subscription, parse_iso

log = logging.getLogger(__name__)

# Per-list budgets inside one field (≤ 1,024 characters each).
LIST_LINES = 10
LINE_CHARS = 110
MANAGE_HINT = "You need the **Manage Server** permission to manage playlist digests."
# What the bot needs in a digest channel.
NEEDED = ("view_channel", "send_messages", "embed_links", "attach_files")


# ------------------------------------------------------------------------------ rendering
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


def _track_text(change: TrackChange) -> str:
    name = md(E.truncate(change.name or change.track_id, 60))
    artists = md(E.truncate(", ".join(change.artists) or "Unknown artist", 40))
    return f"**{name}** — {artists}"


def _cluster_label(index: int | None, name: str | None) -> str:
    if index is None:
        return "no cluster"
    return md(E.truncate(name or f"Cluster {index + 1}", 40))


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
            f"{_track_text(c)} → {_cluster_label(c.cluster, c.cluster_name)}" for c in changes.added
        ]
        embed.add_field(
            name=f"➕ Added ({len(changes.added)})", value=bullet_list(lines), inline=False
        )
    if changes.removed:
        lines = [
            f"{_track_text(c)} (was in {_cluster_label(c.cluster, c.cluster_name)})"
            for c in changes.removed
        ]
        embed.add_field(
            name=f"➖ Removed ({len(changes.removed)})", value=bullet_list(lines), inline=False
        )
    rows = []
    for c in sorted(changes.clusters, key=lambda c: (-abs(c.delta), c.index)):
        label = _cluster_label(c.index, c.name)
        if c.previous_index is None:
            rows.append(f"🆕 {label}: {c.size} tracks (new)")
        elif c.delta > 0:
            rows.append(f"📈 {label}: {c.previous_size} → {c.size} (+{c.delta})")
        elif c.delta < 0:
            rows.append(f"📉 {label}: {c.previous_size} → {c.size} ({c.delta})")
    for v in changes.vanished:
        rows.append(
            f"🗑️ {_cluster_label(v.index, v.name)} of the last digest "
            f"({v.previous_size} tracks) is gone"
        )
    if rows:
        embed.add_field(name="Clusters", value=bullet_list(rows), inline=False)
    elif not changes.added and not changes.removed:
        embed.add_field(name="Clusters", value="Same clusters as before.", inline=False)
    return embed


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


def _header(message: DigestMessage, name: str) -> str:
    sched = message.schedule
    kind = "Digest" if sched is None else f"{sched.every.title()} digest"
    how = " (run by hand)" if message.manual else ""
    return E.truncate(f"📬 **{kind}** · {md(name)}{how}", E.CONTENT)


# ------------------------------------------------------------------------------ the cog
def _has_manage_guild(interaction: discord.Interaction) -> bool:
    perms = interaction.permissions
    return bool(perms.manage_guild or perms.administrator)


class DigestCog(commands.Cog):
    """Slash commands and the poster for scheduled digests."""

    digest = app_commands.Group(
        name="digest",
        description="Post a playlist's clusters (and what changed) to a channel on a schedule",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: commands.Bot, scheduler: DigestScheduler) -> None:
        self.bot = bot
        self.scheduler = scheduler

    async def cog_load(self) -> None:
        self.scheduler.set_poster(self.post)

    async def cog_unload(self) -> None:
        self.scheduler.set_poster(None)

    # -------------------------------------------------------------------- checks
    async def _allowed(self, interaction: discord.Interaction) -> bool:
        """Runtime check on top of ``default_permissions`` (which admins can override)."""
        if interaction.guild_id is None:
            await send_ephemeral(interaction, "Digests only work in a server.")
            return False
        if not _has_manage_guild(interaction):
            await send_ephemeral(interaction, MANAGE_HINT)
            return False
        return True

    async def _fail(self, interaction: discord.Interaction, err: PipelineError) -> None:
        await send_ephemeral(interaction, E.error_message(err))

    # -------------------------------------------------------------------- commands
    @digest.command(name="add", description="Post a playlist's clusters to a channel regularly")
    @app_commands.describe(
        playlist="Spotify playlist or album link",
        every="How often",
        at="Local time, 24-hour HH:MM (e.g. 09:00)",
        channel="Where to post (default: this channel)",
        timezone="IANA time zone, e.g. Europe/Paris (default UTC)",
        weekday="Weekly digests: which day (default Monday)",
        k="Number of clusters (default: chosen automatically)",
    )
    @app_commands.choices(
        every=[
            app_commands.Choice(name="daily", value="daily"),
            app_commands.Choice(name="weekly", value="weekly"),
        ],
        weekday=[app_commands.Choice(name=day, value=i) for i, day in enumerate(WEEKDAYS)],
    )
    async def add(
        self,
        interaction: discord.Interaction,
        playlist: str,
        every: app_commands.Choice[str],
        at: str,
        channel: discord.TextChannel | None = None,
        timezone: str | None = None,
        weekday: app_commands.Choice[int] | None = None,
        k: app_commands.Range[int, 2, 20] | None = None,
    ) -> None:
        if not await self._allowed(interaction):
            return
        try:
            ref = parse_spotify_link(playlist)
            schedule = Schedule.build(
                every.value, at, timezone, weekday.value if weekday is not None else None
            )
        except PipelineError as err:
            await self._fail(interaction, err)
            return
        target = channel or interaction.channel
        if not isinstance(target, discord.TextChannel):
            await send_ephemeral(interaction, "Pick a text channel for the digest.")
            return
        missing = self._missing_perms(interaction, target)
        if missing:
            await send_ephemeral(
                interaction,
                f"I can't post digests in {target.mention}: I'm missing "
                f"**{', '.join(missing)}** there. Fix the channel permissions and try again.",
            )
            return
        try:
            sub = await self.scheduler.subscribe(
                guild_id=interaction.guild_id or 0,
                channel_id=target.id,
                playlist_ref=ref.url,
                playlist_id=ref.id,
                schedule=schedule,
                k=k,
                created_by=interaction.user.id,
            )
        except PipelineError as err:
            await self._fail(interaction, err)
            return
        await interaction.response.send_message(
            f"✅ Digest `#{sub.id}`: <{ref.url}> → {target.mention}, {schedule.describe()}.\n"
            f"First one {ts(sub.next_run_at, 'F')} ({ts(sub.next_run_at, 'R')}) — or now with "
            f"`/digest run {sub.id}`. The playlist is read with your linked Spotify account "
            "when you have one (`/spotify link`), so your own private playlists work too.",
            ephemeral=True,
        )

    @staticmethod
    def _missing_perms(interaction: discord.Interaction, channel: discord.TextChannel) -> list[str]:
        """Permissions the bot lacks in ``channel`` (Discord's own answer for this channel)."""
        if channel.id == interaction.channel_id:
            perms = interaction.app_permissions
        else:
            perms = channel_permissions(channel)
        return [] if perms is None else missing_permissions(perms, NEEDED)

    @add.autocomplete("timezone")
    async def _tz_complete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=z, value=z) for z in suggest_timezones(current)]

    @digest.command(name="list", description="Show this server's digests (and paused ones)")
    async def list_(self, interaction: discord.Interaction) -> None:
        if not await self._allowed(interaction):
            return
        subs = await self.scheduler.subscriptions(interaction.guild_id or 0)
        await interaction.response.send_message(embed=list_embed(subs), ephemeral=True)

    @digest.command(name="remove", description="Stop a digest")
    @app_commands.describe(id="The digest's number (see /digest list)")
    async def remove(self, interaction: discord.Interaction, id: int) -> None:
        if not await self._allowed(interaction):
            return
        try:
            sub = await self.scheduler.unsubscribe(interaction.guild_id or 0, id)
        except PipelineError as err:
            await self._fail(interaction, err)
            return
        await interaction.response.send_message(
            f"🗑️ Removed digest `#{sub.id}` ({md(sub.label)} → <#{sub.channel_id}>).",
            ephemeral=True,
        )

    @digest.command(name="resume", description="Resume a paused digest")
    @app_commands.describe(id="The digest's number (see /digest list)")
    async def resume(self, interaction: discord.Interaction, id: int) -> None:
        if not await self._allowed(interaction):
            return
        try:
            sub = await self.scheduler.resume(interaction.guild_id or 0, id)
        except PipelineError as err:
            await self._fail(interaction, err)
            return
        await interaction.response.send_message(
            f"▶️ Digest `#{sub.id}` resumed. Next {ts(sub.next_run_at, 'F')} "
            f"({ts(sub.next_run_at, 'R')}).",
            ephemeral=True,
        )

    @digest.command(name="run", description="Post a digest now (its schedule stays the same)")
    @app_commands.describe(id="The digest's number (see /digest list)")
    async def run(self, interaction: discord.Interaction, id: int) -> None:
        if not await self._allowed(interaction):
            return
        guild_id = interaction.guild_id or 0
        try:
            sub = await self.scheduler.get(guild_id, id)
        except PipelineError as err:
            await self._fail(interaction, err)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            result = await self.scheduler.run_now(guild_id, id)
        except PipelineError as err:
            await self._fail(interaction, err)
            return
        text = {
            "posted": f"📬 Posted digest `#{sub.id}` in <#{sub.channel_id}>.",
            "unchanged": f"📭 No changes since the last digest; said so in <#{sub.channel_id}>.",
        }.get(result.status, f"Digest `#{sub.id}`: {result.message}")
        try:
            await interaction.followup.send(E.truncate(text, E.CONTENT), ephemeral=True)
        except discord.HTTPException:  # token expired on a very long run: the post is what counts
            log.info("could not answer /digest run %s", id)

    @remove.autocomplete("id")
    @resume.autocomplete("id")
    @run.autocomplete("id")
    async def _id_complete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        if interaction.guild_id is None:
            return []
        subs = await self.scheduler.subscriptions(interaction.guild_id)
        out = []
        for s in subs:
            label = E.truncate(f"#{s.id} {s.label}" + (" (paused)" if s.paused else ""), 100)
            if current.strip().lstrip("#").lower() in label.lower():
                out.append(app_commands.Choice(name=label, value=s.id))
        return out[:25]

    # -------------------------------------------------------------------- posting
    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        await self.bot.wait_until_ready()
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(channel_id)
            except discord.NotFound as exc:
                raise DestinationGone(f"The channel <#{channel_id}> was deleted.") from exc
            except discord.Forbidden as exc:
                raise DestinationGone(f"I can no longer see the channel <#{channel_id}>.") from exc
        if not isinstance(channel, discord.abc.Messageable):
            raise DestinationGone(f"<#{channel_id}> is not a channel I can post in.")
        return channel

    async def post(self, message: DigestMessage) -> None:
        """The scheduler's poster: DigestMessage → Discord messages."""
        if message.kind == "paused":
            await self._report_paused(message)
            return
        channel = await self._channel(message.subscription.channel_id)
        try:
            await self._send(channel, message)
        except discord.NotFound as exc:  # 10003 Unknown Channel (deleted between checks)
            raise DestinationGone(
                f"The channel <#{message.subscription.channel_id}> was deleted."
            ) from exc
        except discord.Forbidden as exc:  # 50001 Missing Access / 50013 Missing Permissions
            raise DestinationGone(
                f"I no longer have permission to post in <#{message.subscription.channel_id}> "
                f"({exc.text or 'missing access'})."
            ) from exc

    async def _send(self, channel: discord.abc.Messageable, message: DigestMessage) -> None:
        sub = message.subscription
        outcome = message.outcome
        analysis = outcome.analysis if outcome is not None else None
        name = (analysis.source.name if analysis is not None else None) or sub.label
        if message.kind == "skipped":
            await channel.send(
                E.truncate(
                    f"⚠️ Digest `#{sub.id}` ({md(name)}) skipped: {message.text} "
                    f"I'll try again {ts(sub.next_run_at, 'R')}.",
                    E.CONTENT,
                )
            )
            return
        if message.kind == "unchanged":
            since = ts(message.since, "D") if message.since else "the last digest"
            await channel.send(
                E.truncate(
                    f"📭 **{md(name)}**: no changes since {since}. "
                    f"See the clusters again with `/clusters show id:{outcome.analysis_id}`.",
                    E.CONTENT,
                )
            )
            return
        # Full digest: the change summary (when there is a previous digest), then the clusters
        # exactly as /cluster shows them (scatter image on the first cluster message).
        header = _header(message, name)
        if message.changes is not None:
            await channel.send(header, embed=changes_embed(message.changes, since=message.since))
            header = ""
        msgs = outcome_messages(
            outcome, header="First digest of this playlist." if message.changes is None else None
        )
        # A digest's browse/download components go under its last message.
        view, msgs[0].view = msgs[0].view, None
        msgs[-1].view = view
        msgs[0].content = header or None
        for msg in msgs:
            await channel_send(channel, msg)

    async def _report_paused(self, message: DigestMessage) -> None:
        """Tell the guild once: system channel, else the first channel the bot can write in."""
        sub = message.subscription
        guild = self.bot.get_guild(sub.guild_id)
        if guild is None:
            log.info("digest %s paused in a guild the bot left: %s", sub.id, message.text)
            return
        text = E.truncate(
            f"⏸️ Digest `#{sub.id}` ({md(sub.label)} → <#{sub.channel_id}>, set up by "
            f"<@{sub.created_by}>) is paused: {message.text}\nA server manager can fix that "
            f"and run `/digest resume {sub.id}`, or stop it with `/digest remove {sub.id}`.",
            E.CONTENT,
        )
        for channel in _report_channels(guild):
            try:
                await channel.send(text)
                return
            except discord.HTTPException:
                continue
        log.warning("digest %s paused but no channel to report it in", sub.id)


def _report_channels(guild: discord.Guild) -> list[discord.TextChannel]:
    me = guild.me
    candidates = ([guild.system_channel] if guild.system_channel else []) + sorted(
        guild.text_channels, key=lambda c: (c.position, c.id)
    )
    out = []
    for channel in candidates:
        if channel is None or channel in out:
            continue
        perms = channel.permissions_for(me) if me is not None else None
        if perms is None or (perms.view_channel and perms.send_messages):
            out.append(channel)
    return out


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(DigestCog(bot, bot.services.digests))
