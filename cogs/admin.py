"""Owner-only maintenance: deliberate application-command sync.

``!sync`` (prefix, works before any slash command exists) and ``/admin sync``. Global sync is
rate limited by Discord and takes a while to propagate, so it never happens on start-up
unless DISCORD_SYNC_GLOBAL is set.
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import PlaylistClustersBot
from cogs.utils.delivery import reply_to


async def do_sync(bot: PlaylistClustersBot, scope: str, guild_id: int | None) -> str:
    if scope == "global":
        done = await bot.sync_commands(guild_id=None, globally=True)
    else:
        if guild_id is None:
            return "Use `guild` scope inside a server (or `global`)."
        done = await bot.sync_commands(guild_id=guild_id, globally=False)
    return f"Synced application commands: {', '.join(done) or 'nothing'}."


class Admin(commands.Cog):
    admin = app_commands.Group(
        name="admin",
        description="Bot owner tools.",
        default_permissions=discord.Permissions(administrator=True),
    )

    def __init__(self, bot: PlaylistClustersBot) -> None:
        self.bot = bot

    @commands.command(name="sync", hidden=True)
    @commands.is_owner()
    async def sync_prefix(self, ctx: commands.Context, scope: str = "guild") -> None:
        """``!sync`` → this guild (instant); ``!sync global`` → everywhere."""
        scope = "global" if scope.lower() == "global" else "guild"
        text = await do_sync(self.bot, scope, ctx.guild.id if ctx.guild else None)
        await reply_to(ctx.message, text)  # a plain message where Discord refuses a reply

    @sync_prefix.error
    async def sync_prefix_error(self, ctx: commands.Context, error: Exception) -> None:
        if isinstance(error, commands.NotOwner):
            await reply_to(ctx.message, "Only the bot owner can sync commands.")
        else:
            raise error

    @admin.command(name="sync", description="Sync slash commands (bot owner only).")
    @app_commands.describe(scope="guild: this server, instantly; global: everywhere, slowly")
    async def sync_slash(
        self, interaction: discord.Interaction, scope: Literal["guild", "global"] = "guild"
    ) -> None:
        if not await self.bot.is_owner(interaction.user):
            await interaction.response.send_message(
                "Only the bot owner can sync commands.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await do_sync(self.bot, scope, interaction.guild_id)
        await interaction.followup.send(text, ephemeral=True)


async def setup(bot: PlaylistClustersBot) -> None:
    await bot.add_cog(Admin(bot))
