"""``/privacy show | delete``: what the bot stores about you, and deleting it.

Everything is answered privately. ``delete`` asks for a confirmation (a button only the asker
sees, valid for two minutes, still answered after a restart: :class:`DeleteAnswer`) and then
removes the member's analyses (with their files), jobs (with any uploaded CSV text), uploads,
Liked Songs snapshots, the records of which playlists they read, and their Spotify link — see
:class:`storage.privacy.PrivacyRepository`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import PlaylistClustersBot
from bot.errors import PipelineError
from cogs.utils.views import AnalysisCache, Guarded, bot_of, expires_at, has_expired
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


def expired_text() -> str:
    return (
        "⌛ Nothing was deleted: the confirmation expired after "
        f"{CONFIRM_TIMEOUT_S / 60:g} minutes. Run `/privacy delete` again."
    )


class DeleteAnswer(
    Guarded,
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"pc:forget:(?P<act>yes|no):(?P<uid>[0-9]+):(?P<until>[0-9]+)",
):
    """ "Delete everything" / "Cancel" under ``/privacy delete`` (an ephemeral message).

    Persistent: the custom id carries whose confirmation it is and when it expires (Unix
    seconds), so a click after a restart is answered too (it used to end in Discord's "This
    interaction failed"), a late one is refused, and nobody answers another member's.
    """

    def __init__(self, act: str, user_id: int, until: int) -> None:
        custom_id = f"pc:forget:{act}:{user_id}:{until}"
        if act == "yes":
            button: discord.ui.Button[Any] = discord.ui.Button(
                label="Delete everything",
                style=discord.ButtonStyle.danger,
                emoji="🗑️",
                custom_id=custom_id,
            )
        else:
            button = discord.ui.Button(
                label="Cancel", style=discord.ButtonStyle.secondary, custom_id=custom_id
            )
        super().__init__(button)
        self.act_name, self.user_id, self.until = act, user_id, until

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> DeleteAnswer:
        return cls(match["act"], int(match["uid"]), int(match["until"]))

    async def act(self, interaction: discord.Interaction) -> None:
        if interaction.user.id != self.user_id:
            await interaction.response.send_message(
                "This confirmation belongs to someone else: run `/privacy delete` yourself "
                "to delete what the bot stores about you.",
                ephemeral=True,
            )
            return
        bot = bot_of(interaction)
        cog = bot.get_cog(PrivacyCog.__cog_name__)
        if isinstance(cog, PrivacyCog) and interaction.message is not None:
            cog.answered(interaction.message.id)
        if has_expired(bot, self.until):
            await interaction.response.edit_message(content=expired_text(), view=None)
            return
        if self.act_name == "no":
            await interaction.response.edit_message(content="Nothing was deleted.", view=None)
            return
        if not isinstance(cog, PrivacyCog):  # the cog failed to load in this process
            raise PipelineError("Deleting isn't available right now; nothing was deleted.")
        text = await cog.delete_member(self.user_id)
        await interaction.response.edit_message(content=text, view=None)


def confirm_view(user_id: int, until: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)  # persistent: the items carry what they need
    view.add_item(DeleteAnswer("yes", user_id, until))
    view.add_item(DeleteAnswer("no", user_id, until))
    return view


class PrivacyCog(commands.Cog):
    privacy = app_commands.Group(
        name="privacy", description="What the bot stores about you, and deleting it."
    )

    def __init__(self, bot: PlaylistClustersBot) -> None:
        self.bot = bot
        self.services = bot.services
        # confirmation message id -> the task that takes its buttons away when it expires
        self._expiring: dict[int, asyncio.Task[None]] = {}

    async def cog_unload(self) -> None:
        for task in self._expiring.values():
            task.cancel()
        self._expiring.clear()

    def answered(self, message_id: int) -> None:
        """A confirmation was clicked: its buttons are gone, nothing to expire."""
        task = self._expiring.pop(message_id, None)
        if task is not None:
            task.cancel()

    async def _expire(self, asked: discord.Interaction, message_id: int) -> None:
        """An unanswered confirmation takes its buttons away when it expires and says nothing
        was deleted (in this process; after a restart a late click is refused instead)."""
        try:
            await asyncio.sleep(CONFIRM_TIMEOUT_S)
            with contextlib.suppress(discord.HTTPException):
                await asked.edit_original_response(content=expired_text(), view=None)
        finally:
            self._expiring.pop(message_id, None)

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
        view = confirm_view(interaction.user.id, expires_at(self.bot, CONFIRM_TIMEOUT_S))
        sent = await interaction.response.send_message("\n".join(lines), view=view, ephemeral=True)
        if sent.message_id is not None:
            self._expiring[sent.message_id] = asyncio.create_task(
                self._expire(interaction, sent.message_id), name="privacy-confirm-expiry"
            )

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
        # Drop decoded analyses kept for paging at once (other processes' caches check every
        # hit against storage: AnalysisCache.get).
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
    bot.add_dynamic_items(DeleteAnswer)
    await bot.add_cog(PrivacyCog(bot))
