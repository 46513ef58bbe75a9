"""Permission checks, in one place: what the bot needs to post, and who may manage the server.

Checks are app-command checks that raise; :class:`cogs.utils.errors.ClustersTree` answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import discord
from discord import app_commands

T = TypeVar("T")

# What results (embeds + the scatter image) need in a channel.
NEEDED = ("send_messages", "embed_links", "attach_files")
# Discord's UI calls some flags differently from the API.
_SHOWN_AS = {"manage_guild": "Manage Server"}


class Refusal(app_commands.CheckFailure):
    """A check that failed for a reason the user can fix; ``user_message`` says which."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


def permission_name(perm: str) -> str:
    """``embed_links`` → ``Embed Links``: a permission flag as people read it in Discord."""
    return _SHOWN_AS.get(perm) or perm.replace("_", " ").title()


def missing_permissions(perms: discord.Permissions, needed: tuple[str, ...] = NEEDED) -> list[str]:
    """Readable names of the ``needed`` permissions that ``perms`` lacks."""
    return [permission_name(p) for p in needed if not getattr(perms, p)]


def missing_text(missing: list[str], channel: Any) -> str:
    where = getattr(channel, "mention", "this channel")
    perms = ", ".join(f"**{m}**" for m in missing)
    return (
        f"⚠️ I can't post results in {where}: I'm missing the {perms} permission"
        f"{'s' if len(missing) > 1 else ''} there. Ask a server admin to grant "
        f"{'them' if len(missing) > 1 else 'it'} to my role, or use me in another channel."
    )


def channel_permissions(channel: Any) -> discord.Permissions | None:
    """The bot's permissions in ``channel`` (None: not a guild channel, or not known: a
    channel the bot has only an id of, which discord.py gives as a PartialMessageable whose
    permissions always read as none, or a thread whose parent is not cached).

    In a thread (a forum post too) Discord asks for Send Messages in Threads where a channel
    asks for Send Messages (a forum's Send Messages is its Create Posts), so that is what
    ``send_messages`` says there."""
    guild = getattr(channel, "guild", None)
    if guild is None or guild.me is None or isinstance(channel, discord.PartialMessageable):
        return None
    try:
        perms: discord.Permissions = channel.permissions_for(guild.me)
    except discord.ClientException:  # Thread.permissions_for: "Parent channel not found"
        return None
    if isinstance(channel, discord.Thread):
        perms.send_messages = perms.send_messages_in_threads
    return perms


def can_post_results(channel: Any) -> bool:
    """Whether the bot has every permission results need in ``channel`` (unknown: try)."""
    perms = channel_permissions(channel)
    return perms is None or not missing_permissions(perms)


def bot_can_post_results() -> Callable[[T], T]:
    """Check: in a server, refuse at once (the refusal IS the response) when the bot cannot
    post embeds and the scatter image in this channel — before anything is queued."""

    def predicate(interaction: discord.Interaction) -> bool:
        if interaction.guild is None:
            return True
        missing = missing_permissions(interaction.app_permissions, ("embed_links", "attach_files"))
        if missing:
            raise Refusal(missing_text(missing, interaction.channel))
        return True

    return app_commands.check(predicate)


def has_manage_server(perms: discord.Permissions) -> bool:
    return bool(perms.manage_guild or perms.administrator)


def require_manage_server(interaction: discord.Interaction) -> bool:
    """Server managers only (Manage Server, or Administrator), in servers only; raises.

    ``default_permissions`` (see :func:`managers_group`) hides such commands from others, but
    server admins can override it per role or channel, so it is checked again at run time."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    if not has_manage_server(interaction.permissions):
        raise app_commands.MissingPermissions(["manage_guild"])
    return True


def manage_server_only() -> Callable[[T], T]:
    """:func:`require_manage_server` as a command decorator."""
    return app_commands.check(require_manage_server)


def managers_group(
    name: str, description: str, *, parent: app_commands.Group | None = None
) -> app_commands.Group:
    """A command group shown to server managers only, in servers only (a subgroup inherits
    "servers only" from its parent). Pair it with :func:`require_manage_server`."""
    where: dict[str, Any] = {"parent": parent} if parent is not None else {"guild_only": True}
    return app_commands.Group(
        name=name,
        description=description,
        default_permissions=discord.Permissions(manage_guild=True),
        **where,
    )
