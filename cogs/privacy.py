"""``/privacy show | delete``: what the bot stores about you, and deleting it.

Everything is answered privately. ``delete`` asks for a confirmation (a button only the asker
sees, valid for two minutes) and then removes the member's analyses (with their files),
jobs (with any uploaded CSV text), uploads, Liked Songs snapshots, the records of which
playlists they read, and their Spotify link — see :class:`storage.privacy.PrivacyRepository`.
"""

from __future__ import annotations

import contextlib
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import PlaylistClustersBot
from cogs.utils.errors import answer_error
from cogs.utils.views import AnalysisCache
from storage.privacy import MemberData

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 120.0


def stored_lines(data: MemberData, linked: str | None) -> list[str]:
    """``/privacy show``: what is stored about a member, one line per kind."""
    lines = [
        f"**Analyses you asked for:** {data.analyses}"
        + (f" ({data.dm_analyses} in DMs)" if data.dm_analyses else ""),
        f"**Uploaded CSV files among them:** {data.uploads}",
        f"**Jobs (requests) on record:** {data.jobs}"
        + (f", {data.active_jobs} running" if data.active_jobs else ""),
        f"**Spotify link:** {linked or 'none'}",
    ]
    if data.digests:
        lines.append(
            f"**Digests you created:** {data.digests} (they belong to their server and stay)"
        )
    return lines


class ConfirmDelete(discord.ui.View):
    """The "Delete everything" button under ``/privacy delete`` (ephemeral: only the asker)."""

    def __init__(self, cog: PrivacyCog, user_id: int) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT_S)
        self.cog, self.user_id = cog, user_id
        self.asked: discord.Interaction | None = None  # the /privacy delete it answers

    async def on_timeout(self) -> None:
        """The buttons stop listening: take them away and say so (a late click would end in
        Discord's "This interaction failed")."""
        if self.asked is None:
            return
        with contextlib.suppress(discord.HTTPException):
            await self.asked.edit_original_response(
                content="⌛ Nothing was deleted: the confirmation expired after "
                f"{CONFIRM_TIMEOUT_S / 60:g} minutes. Run `/privacy delete` again.",
                view=None,
            )

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger, emoji="🗑️")
    async def confirm(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        self.stop()
        text = await self.cog.delete_member(self.user_id)
        await interaction.response.edit_message(content=text, view=None)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item
    ) -> None:
        await answer_error(interaction, error, "/privacy delete")

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


class PrivacyCog(commands.Cog):
    privacy = app_commands.Group(
        name="privacy", description="What the bot stores about you, and deleting it."
    )

    def __init__(self, bot: PlaylistClustersBot) -> None:
        self.bot = bot
        self.services = bot.services

    async def _linked(self, user_id: int) -> str | None:
        accounts = self.services.accounts
        if accounts is None:
            return None
        info = await accounts.status(user_id)
        if not info:
            return None
        return str(info.get("display_name") or info.get("spotify_user_id") or "linked")

    @privacy.command(name="show", description="What the bot stores about you.")
    async def show(self, interaction: discord.Interaction) -> None:
        data = await self.services.store.privacy.about(interaction.user.id)
        lines = stored_lines(data, await self._linked(interaction.user.id))
        lines += [
            "",
            "Analyses made in a server can be seen by that server's members; those made in a "
            "DM only by you. `/privacy delete` removes all of the above.",
        ]
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @privacy.command(name="delete", description="Delete everything the bot stores about you.")
    async def delete(self, interaction: discord.Interaction) -> None:
        data = await self.services.store.privacy.about(interaction.user.id)
        lines = [
            "**Delete everything the bot stores about you?** This can't be undone:",
            *stored_lines(data, await self._linked(interaction.user.id)),
            "",
            "Your results already posted in channels stay there (delete those messages in "
            "Discord); their buttons stop working.",
        ]
        view = ConfirmDelete(self, interaction.user.id)
        view.asked = interaction
        await interaction.response.send_message("\n".join(lines), view=view, ephemeral=True)

    async def delete_member(self, user_id: int) -> str:
        """Delete the member's data (refused while one of their analyses is running)."""
        data = await self.services.store.privacy.about(user_id)
        if data.active_jobs:
            return (
                f"You have {data.active_jobs} analysis running; nothing was deleted. Run "
                "`/privacy delete` again once it has finished."
            )
        deleted = await self.services.store.privacy.delete_member(user_id)
        unlinked = False
        if self.services.accounts is not None:
            unlinked = await self.services.accounts.unlink(user_id)
        # Drop decoded analyses kept for paging: none of the deleted ones may be shown again.
        cache = self.bot.analysis_cache
        self.bot.analysis_cache = AnalysisCache(cache.size)
        log.info("privacy: deleted the data of one member (%d analyses)", deleted.analyses)
        return (
            f"🗑️ Deleted: {deleted.analyses} analyses ({deleted.uploads} from uploads), "
            f"{deleted.jobs} jobs" + (", and your Spotify link" if unlinked else "") + ". "
            "To remove the app from your Spotify account too, see "
            "https://www.spotify.com/account/apps/."
        )


async def setup(bot: PlaylistClustersBot) -> None:
    await bot.add_cog(PrivacyCog(bot))
