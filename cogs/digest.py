"""/digest: scheduled playlist digests posted to a channel (issue #6).

``/digest add|list|remove|run|resume`` — server managers only (Manage Server, checked by
Discord through ``default_permissions`` and again here at run time), in servers only.

The cog is thin: schedules, storage and the change summary live in :mod:`bot.digests`, the
look in :mod:`cogs.utils.digest_embeds`. The cog owns the :class:`bot.digests.DigestScheduler`'s
loop: started in ``cog_load`` with this cog's :meth:`DigestCog.post` (how a
:class:`bot.digests.DigestMessage` becomes Discord messages), stopped in ``cog_unload``. A
channel that is gone or no longer writable is reported to the scheduler as
:class:`bot.digests.DestinationGone`, which pauses the subscription; so is a creator who left
the server (:meth:`DigestCog.check_creator`, asked of Discord before each run, raises
:class:`bot.digests.CreatorGone`): their linked Spotify account must not keep reading for it.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import PlaylistClustersBot
from bot.digests import (
    WEEKDAYS,
    CreatorGone,
    DestinationGone,
    DigestMessage,
    Schedule,
    suggest_timezones,
)
from bot.errors import PipelineError
from bot.sources.link_reader import resolve_ref
from bot.sources.links import SpotifyRef, is_short_link, parse_spotify_link
from cogs.utils import embeds as E
from cogs.utils.delivery import channel_send, outcome_messages
from cogs.utils.digest_embeds import changes_embed, digest_header, list_embed, md, ts
from cogs.utils.permissions import (
    Refusal,
    channel_permissions,
    managers_group,
    missing_permissions,
    require_manage_server,
)
from storage.digests import Subscription

log = logging.getLogger(__name__)

ID_HELP = "The digest's number (see /digest list)"
REMOVED = "I was removed from this server (add me back, then `/digest resume`)."
# What the bot needs in a digest channel.
NEEDED = ("view_channel", "send_messages", "embed_links", "attach_files")
# Discord's answers to GET /guilds/{guild}/members/{user} for someone who is not a member.
UNKNOWN_MEMBER, UNKNOWN_USER = 10007, 10013


def creator_left_reason(sub: Subscription) -> str:
    """Why a digest whose creator left its server is paused (stored as its pause reason)."""
    return (
        f"<@{sub.created_by}>, who set it up, is no longer a member of this server, so the "
        "playlist is no longer read with their Spotify account."
    )


def creator_left_remedy(sub: Subscription) -> str:
    return (
        f"To keep this digest, a server manager runs `/digest remove {sub.id}`, then "
        "`/digest add` with the same playlist and channel: it is then read with their own "
        "linked Spotify account (`/spotify link`), or as anyone can read it."
    )


class DigestCog(commands.Cog):
    """Slash commands and the poster for scheduled digests."""

    digest = managers_group(
        "digest", "Post a playlist's clusters (and what changed) to a channel on a schedule"
    )

    def __init__(self, bot: PlaylistClustersBot) -> None:
        self.bot = bot
        self.scheduler = bot.services.digests

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Every /digest command: server managers only (the command tree answers refusals)."""
        return require_manage_server(interaction)

    async def cog_load(self) -> None:
        """The cog owns the scheduler's loop: it runs while this cog can post."""
        await self.scheduler.start(self.post, creator_check=self.check_creator)

    async def cog_unload(self) -> None:
        await self.scheduler.close()

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
    )  # type: ignore[misc]  # str and int choices in one call: mypy wants one ChoiceT
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
        # Bad input raises a PipelineError: the command tree answers it privately.
        # A short link (spotify.link/…, what phones share) names no playlist: it is followed
        # after deferring, as a redirect lookup may outlast Discord's 3 s to answer.
        ref = None if is_short_link(playlist) else parse_spotify_link(playlist)
        if weekday is not None and every.value != "weekly":
            raise PipelineError(
                f"`weekday:{weekday.name}` is only for weekly digests: choose `every:weekly`, "
                "or leave `weekday` out for a daily one."
            )
        schedule = Schedule.build(
            every.value, at, timezone, weekday.value if weekday is not None else None
        )
        target = channel or interaction.channel
        if not isinstance(target, discord.TextChannel):
            raise Refusal(
                "Digests are posted in a text channel, and this one isn't (a thread, forum "
                "post or voice channel chat): add `channel:` with the text channel to post in."
            )
        missing = self._missing_perms(interaction, target)
        if missing:
            raise Refusal(
                f"I can't post digests in {target.mention}: I'm missing "
                f"**{', '.join(missing)}** there. Fix the channel permissions and try again."
            )
        await interaction.response.defer(ephemeral=True, thinking=True)
        if ref is None:
            ref = await resolve_ref(playlist, self.bot.services.ctx.pages)
        # A playlist that doesn't exist or can't be read is refused now, not at the first slot.
        name = await self._playlist_name(ref, interaction.user.id)
        sub = await self.scheduler.subscribe(
            guild_id=interaction.guild_id or 0,
            channel_id=target.id,
            playlist_ref=ref.url,
            playlist_id=ref.id,
            schedule=schedule,
            k=k,
            created_by=interaction.user.id,
        )
        what = f"**{md(name)}** (<{ref.url}>)" if name else f"<{ref.url}>"
        await interaction.followup.send(
            f"✅ Digest `#{sub.id}`: {what} → {target.mention}, {schedule.describe()}.\n"
            f"First one {ts(sub.next_run_at, 'F')} ({ts(sub.next_run_at, 'R')}) — or now with "
            f"`/digest run {sub.id}`. The playlist is read with your linked Spotify account "
            "when you have one (`/spotify link`), so your own private playlists work too.",
            ephemeral=True,
        )

    async def _playlist_name(self, ref: SpotifyRef, user_id: int) -> str | None:
        """The playlist's name, read as the digest will read it (the member's linked account,
        else the bot's app). Raises NotFound/NotOwner/… (answered privately by the tree);
        None when Spotify isn't configured (nothing to check with)."""
        ctx = self.bot.services.ctx
        if ctx.spotify is None:
            return None
        gateway = ctx.spotify
        token = await ctx.user_tokens(user_id) if ctx.user_tokens is not None else None
        if token:
            gateway = gateway.with_user_token(token)
        return (await gateway.get_meta(ref)).name

    @staticmethod
    def _missing_perms(interaction: discord.Interaction, channel: discord.TextChannel) -> list[str]:
        """Permissions the bot lacks in ``channel`` (Discord's own answer for this channel)."""
        perms: discord.Permissions | None
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
        subs = await self.scheduler.subscriptions(interaction.guild_id or 0)
        await interaction.response.send_message(embed=list_embed(subs), ephemeral=True)

    @digest.command(name="remove", description="Stop a digest")
    @app_commands.describe(id=ID_HELP)
    async def remove(self, interaction: discord.Interaction, id: int) -> None:
        sub = await self.scheduler.unsubscribe(interaction.guild_id or 0, id)
        await interaction.response.send_message(
            f"🗑️ Removed digest `#{sub.id}` ({md(sub.label)} → <#{sub.channel_id}>).",
            ephemeral=True,
        )

    @digest.command(name="resume", description="Resume a paused digest")
    @app_commands.describe(id=ID_HELP)
    async def resume(self, interaction: discord.Interaction, id: int) -> None:
        paused = await self.scheduler.get(interaction.guild_id or 0, id)
        try:  # asked of Discord, not the cache: a deleted channel used to resume, then pause
            await self.bot.fetch_channel(paused.channel_id)
        except (discord.NotFound, discord.Forbidden) as exc:
            gone = "was deleted" if isinstance(exc, discord.NotFound) else "is hidden from me"
            await interaction.response.send_message(
                f"⚠️ Digest `#{id}` stays paused: its channel <#{paused.channel_id}> {gone}. "
                f"Remove it with `/digest remove {id}` and add it again in another channel.",
                ephemeral=True,
            )
            return
        if await self._creator_gone(paused.guild_id, paused.created_by):
            await interaction.response.send_message(
                f"⚠️ Digest `#{id}` stays paused: {creator_left_reason(paused)} "
                + creator_left_remedy(paused),
                ephemeral=True,
            )
            return
        sub = await self.scheduler.resume(interaction.guild_id or 0, id)
        await interaction.response.send_message(
            f"▶️ Digest `#{sub.id}` resumed. Next {ts(sub.next_run_at, 'F')} "
            f"({ts(sub.next_run_at, 'R')}).",
            ephemeral=True,
        )

    @digest.command(name="run", description="Post a digest now (its schedule stays the same)")
    @app_commands.describe(id=ID_HELP)
    async def run(self, interaction: discord.Interaction, id: int) -> None:
        guild_id = interaction.guild_id or 0
        sub = await self.scheduler.get(guild_id, id)
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.scheduler.run_now(guild_id, id)
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

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Removed from a server (kicked, or the server deleted; not an outage, which is
        ``on_guild_unavailable``): its digests pause now, rather than each reading Spotify at
        its next slot for a channel the bot can no longer post in. Added back, a server
        manager sees why in ``/digest list`` and resumes them."""
        try:
            await self.scheduler.pause_guild(guild.id, REMOVED)
        except PipelineError:
            log.warning("could not pause the digests of a server the bot left", exc_info=True)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        """A digest's channel deleted: its digests pause and the server is told now, rather
        than after the next slot has read Spotify for a channel that is gone."""
        reason = f"The channel #{channel.name} was deleted."
        try:
            await self.scheduler.pause_guild(channel.guild.id, reason, channel_id=channel.id)
        except PipelineError:
            log.warning("could not pause the digests of a deleted channel", exc_info=True)

    # -------------------------------------------------------------------- the creator
    async def _creator_gone(self, guild_id: int, user_id: int) -> bool:
        """Whether ``user_id`` has left ``guild_id``, asked of Discord (REST): the bot runs
        without the members intent, so its cache never hears of a member leaving. Anything
        but Discord's Unknown Member / Unknown User (an outage, the bot removed from the
        server) is "can't tell": False, and the run goes on as before (a removed bot's post
        pauses it anyway)."""
        await self.bot.wait_until_ready()
        try:
            guild = self.bot.get_guild(guild_id) or await self.bot.fetch_guild(guild_id)
            await guild.fetch_member(user_id)
        except discord.NotFound as exc:
            if exc.code in (UNKNOWN_MEMBER, UNKNOWN_USER):
                return True
            log.info("could not check a digest creator's membership: %s", exc)
        except discord.HTTPException as exc:
            log.info("could not check a digest creator's membership: %s", exc)
        return False

    async def check_creator(self, sub: Subscription) -> None:
        """The scheduler's creator check, before each run: a digest keeps reading its
        playlist with its creator's linked Spotify account, which must stop once they left
        the server. Raises CreatorGone (the scheduler pauses the digest; :meth:`post` says
        so in its channel)."""
        if await self._creator_gone(sub.guild_id, sub.created_by):
            raise CreatorGone(creator_left_reason(sub))

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
        assert outcome is not None  # "unchanged" and "digest" messages carry the job's outcome
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
        # Full digest: the change summary (when there is a previous digest) leads the clusters
        # as /cluster shows them, in the same one or two messages (controls under the last).
        lead = []
        if message.changes is not None:
            lead.append(changes_embed(message.changes, since=message.since))
        msgs = outcome_messages(
            outcome,
            header="First digest of this playlist." if message.changes is None else None,
            lead=lead,
        )
        msgs[0].content = digest_header(message, name)
        for msg in msgs:
            await channel_send(channel, msg)

    async def _report_paused(self, message: DigestMessage) -> None:
        """Tell the guild once: system channel, else the first channel the bot can write in.
        A digest paused because its creator left is said in its own channel first (it is
        still there), with how to re-create it (resuming would not help). A server this
        process does not have (several bot processes: another shard's) is told in the
        digest's channel, asked of Discord; a server the bot left, nowhere."""
        sub = message.subscription
        creator_left = message.text == creator_left_reason(sub)
        if creator_left:
            text = E.truncate(
                f"⏸️ Digest `#{sub.id}` ({md(sub.label)}) is paused: {message.text}\n"
                + creator_left_remedy(sub),
                E.CONTENT,
            )
        else:
            text = E.truncate(
                f"⏸️ Digest `#{sub.id}` ({md(sub.label)} → <#{sub.channel_id}>, set up by "
                f"<@{sub.created_by}>) is paused: {message.text}\nA server manager can fix "
                f"that and run `/digest resume {sub.id}`, or stop it with "
                f"`/digest remove {sub.id}`.",
                E.CONTENT,
            )
        guild = self.bot.get_guild(sub.guild_id)
        if guild is None:
            try:
                await (await self._channel(sub.channel_id)).send(text)
            except (DestinationGone, discord.HTTPException) as exc:
                log.info("digest %s paused (%s); not reported: %s", sub.id, message.text, exc)
            return
        channels: list[discord.TextChannel] = _report_channels(guild)
        own = guild.get_channel(sub.channel_id)
        if creator_left and isinstance(own, discord.TextChannel):
            channels = [own, *(c for c in channels if c != own)]
        for channel in channels:
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


async def setup(bot: PlaylistClustersBot) -> None:
    await bot.add_cog(DigestCog(bot))
