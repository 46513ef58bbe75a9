"""/about: version, feature sources, Spotify app mode, uptime, queue size."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import PlaylistClustersBot
from bot.services import Services
from bot.sources.status import about_lines

log = logging.getLogger(__name__)


def format_uptime(started_at: datetime, now: datetime | None = None) -> str:
    seconds = int(((now or datetime.now(UTC)) - started_at).total_seconds())
    days, seconds = divmod(max(0, seconds), 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes = seconds // 60
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if days or hours else []
    parts.append(f"{minutes}m")
    return " ".join(parts)


async def spotify_mode(services: Services) -> str:
    spotify = services.ctx.spotify
    if spotify is None:
        return "not configured (no Spotify credentials: CSV uploads only)"
    try:
        mode = await spotify.detect_mode()
    except Exception:
        log.warning("detect_mode failed", exc_info=True)
        return "unknown (Spotify did not answer)"
    return {
        "development": "Development Mode (no audio-features; only playlists you own)",
        "extended": "Extended Quota (every endpoint)",
    }.get(mode, str(mode))


async def about_embed(bot: PlaylistClustersBot) -> discord.Embed:
    services = bot.services
    ctx = services.ctx
    # What each source's latest call actually returned (not one probe: an old client id can
    # keep audio-features while its playlist reads are limited to its owner's playlists).
    reads, features = about_lines(
        ctx.status,
        spotify=ctx.spotify,
        reccobeats=ctx.reccobeats,
        pages_enabled=services.settings.spotify_public_pages,
        linking=services.accounts is not None,
    )
    embed = discord.Embed(
        title="Playlist Clusters",
        description=(
            "Clusters a Spotify playlist by how its tracks sound, and shows each cluster with "
            "its most representative tracks and a scatter chart."
        ),
        colour=0x1DB954,
    )
    embed.add_field(name="Version", value=bot.version)
    embed.add_field(name="Uptime", value=format_uptime(services.started_at))
    embed.add_field(name="Queue", value=f"{len(services.queue.active_job_ids)} job(s) running")
    embed.add_field(name="Playlist reads", value="\n".join(reads), inline=False)
    embed.add_field(
        name="Audio features",
        value="\n".join([*features, "Exportify CSV audio columns: always"]),
        inline=False,
    )
    embed.add_field(name="Spotify app mode", value=await spotify_mode(services), inline=False)
    linking = "available (/spotify link)" if services.accounts is not None else "not configured"
    embed.add_field(name="Account linking", value=linking, inline=False)
    return embed


class About(commands.Cog):
    def __init__(self, bot: PlaylistClustersBot) -> None:
        self.bot = bot

    @app_commands.command(name="about", description="What this bot can do right now.")
    async def about(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(embed=await about_embed(self.bot), ephemeral=True)


async def setup(bot: PlaylistClustersBot) -> None:
    await bot.add_cog(About(bot))
