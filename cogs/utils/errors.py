"""Errors as users see them, and the one place app-command errors are answered.

Cogs raise: a :class:`bot.errors.PipelineError` (its ``user_message`` is shown as is), a
:class:`Refusal` (a check that says why), or anything else (an incident: logged under a new id,
the user gets the id). :class:`ClustersTree` answers every app-command error privately; views
and modals, which discord.py does not route to the tree, call :func:`answer_error` themselves.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.errors import PipelineError, member_message, new_incident_id
from bot.safety import neutralize_mentions
from cogs.utils.embeds import CONTENT, truncate
from cogs.utils.permissions import Refusal, permission_name

log = logging.getLogger(__name__)


def error_message(err: BaseException, *, incident_id: str | None = None) -> str:
    """What to tell the user about ``err`` (never a stack trace or a secret)."""
    if isinstance(err, PipelineError):
        # Messages quote data (playlist and file names): never as a mention.
        if err.for_operator:  # settings, paths: the operator's log only
            return truncate(f"❌ {member_message(err)}", CONTENT)
        return truncate(f"⚠️ {neutralize_mentions(err.user_message)}", CONTENT)
    incident = incident_id or new_incident_id()
    return (
        f"❌ Something went wrong on my side (incident `{incident}`). It has been logged; "
        "please try again later, and mention the incident id if you report it."
    )


def error_text(err: BaseException, where: str) -> str:
    """What to tell the user about ``err``; an unexpected one is logged under a new incident id."""
    if isinstance(err, PipelineError):
        return error_message(err)
    incident = new_incident_id()
    log.error("Incident %s in %s", incident, where, exc_info=err)
    return error_message(err, incident_id=incident)


def check_failure_text(error: app_commands.AppCommandError) -> str:
    if isinstance(error, Refusal):
        return error.user_message
    if isinstance(error, app_commands.MissingPermissions):
        perms = ", ".join(permission_name(p) for p in error.missing_permissions)
        return f"You need the **{perms}** permission to do that."
    if isinstance(error, app_commands.BotMissingPermissions):
        perms = ", ".join(permission_name(p) for p in error.missing_permissions)
        return f"I'm missing the **{perms}** permission in this channel."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.TransformerError):
        return f"I couldn't understand `{error.value}`."
    return str(error) or "You can't use this command here."


async def send_private(interaction: discord.Interaction, text: str) -> None:
    """Reply ephemerally whether or not the interaction was already acknowledged.

    After a "thinking…" defer, the first followup would take the place of the placeholder and
    keep its visibility (public for /cluster): the placeholder is deleted first, so the text
    stays private."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
            return
        if interaction.response.type == discord.InteractionResponseType.deferred_channel_message:
            try:
                await interaction.delete_original_response()
            except discord.HTTPException:
                log.debug("could not delete the deferred response of %s", interaction.id)
        await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("Could not deliver an error message for interaction %s", interaction.id)


async def answer_error(interaction: discord.Interaction, error: BaseException, where: str) -> None:
    """Tell the user privately what went wrong (an unexpected error becomes an incident)."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, app_commands.CheckFailure | app_commands.TransformerError):
        text = check_failure_text(error)
    else:
        text = error_text(error, where)
    await send_private(interaction, text)


class ClustersTree(app_commands.CommandTree[Any]):
    """The command tree: every app-command error is answered here, privately (like Red's
    ``RedTree``), so commands just raise."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        where = f"/{interaction.command and interaction.command.qualified_name}"
        await answer_error(interaction, error, where)
