"""``/spotify link | status | unlink``: link a Discord user to their Spotify account.

Thin Discord layer over :class:`bot.accounts.AccountService`. Every reply is ephemeral: the
authorize link is personal (its ``state`` is bound to the user who asked).

A member whose link the bot had to drop (Spotify refused to renew it) is told once, privately:
in the reply to ``/spotify status`` or ``/spotify link``, else as an ephemeral followup when any
of their next slash commands completes (:meth:`SpotifyCog.tell_relink_notice`). A posted link
gets a public reply, so its notice waits for their next command.

Two callback modes (see the README, "Linking Spotify accounts"):

* ``PUBLIC_BASE_URL`` set: Spotify redirects to the bot's web server (:mod:`bot.web`, started
  with the bot, see :class:`bot.app.PlaylistClustersBot`); the ephemeral message is edited to
  "Linked" when done.
* otherwise: the redirect URI is a loopback address; the user copies the URL the browser ends
  up on and pastes it into a modal ("Paste the URL" button, :class:`PasteButton`, which
  still works after a restart).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.accounts import STATE_TTL, AccountService, relink_notice_text
from bot.app import PlaylistClustersBot
from bot.errors import PipelineError
from cogs.utils.errors import answer_error
from cogs.utils.permissions import Refusal
from cogs.utils.views import Guarded, bot_of, expires_at, has_expired

log = logging.getLogger(__name__)

MAX_LINK_BUTTON_URL = 512  # Discord's limit for a link button's url

NOT_AVAILABLE = (
    # Only when the account service failed to start (a missing Spotify app is reported by
    # /spotify link itself, a bad TOKEN_ENCRYPTION_KEY stops start-up): don't guess the cause.
    "Spotify account linking isn't available on this bot right now: it failed to start (the "
    "bot's owner can see why in its log). "
    "You can still attach an Exportify CSV of a playlist."
)


def _ts(iso: str | None, style: str = "D") -> str:
    """An ISO time as a Discord timestamp tag (rendered in the reader's time zone)."""
    if not iso:
        return "unknown"
    try:
        return f"<t:{int(datetime.fromisoformat(iso).timestamp())}:{style}>"
    except ValueError:
        return iso


def link_instructions(url: str, *, web_callback: bool, redirect_uri: str) -> str:
    """The ephemeral text of ``/spotify link`` (kept in line with the NotOwner advice)."""
    minutes = int(STATE_TTL.total_seconds() // 60)
    lines = [
        "**Link your Spotify account**",
        "Spotify only lets this bot read playlists that you own or collaborate on, through "
        "your own linked account (apps in Development Mode can't read other playlists). "
        "Linking also enables your Liked Songs, the 💚 marks and *Save as playlist*.",
        "",
        "1. Open the authorization link below and approve.",
    ]
    if web_callback:
        lines.append("2. You'll see **Linked** in your browser; this message updates too.")
    else:
        lines += [
            f"2. Your browser then opens `{redirect_uri}?code=…` — it may show *can't connect*; "
            "that's expected. Copy the **whole address** from the address bar.",
            "3. Click **Paste the URL** below and paste it.",
        ]
    lines += [
        "",
        f"The link works once, for {minutes} minutes, and only for you. Don't share it.",
        "Can't link (e.g. the bot is full: Spotify allows 5 users per app in Development "
        "Mode)? Attach an Exportify CSV (https://exportify.net) of the playlist instead.",
    ]
    if len(url) > MAX_LINK_BUTTON_URL:
        lines.append(f"\n<{url}>")
    return "\n".join(lines)


def status_text(info: dict[str, Any]) -> str:
    name = info.get("display_name") or info.get("spotify_user_id") or "unknown"
    lines = [f"Linked as **{discord.utils.escape_markdown(name)}**"]
    if info.get("spotify_user_id"):
        lines[0] += f" (`{info['spotify_user_id']}`)"
    lines.append(f"Since: {_ts(info.get('linked_at'))}")
    lines.append("Scopes: " + (", ".join(f"`{s}`" for s in info.get("scopes", [])) or "none"))
    if info.get("token_state") == "valid":
        minutes = max(1, info.get("token_expires_in_s", 0) // 60)
        lines.append(f"Access token: valid for about {minutes} more minutes.")
    else:
        lines.append("Access token: expired; it is refreshed automatically on next use.")
    lines.append(
        f"Spotify ends the link around {_ts(info.get('consent_expires_at'))} (6 months after "
        "you approved); then run `/spotify link` again."
    )
    if info.get("missing_scopes"):
        lines.append(
            "Missing permissions: "
            + ", ".join(f"`{s}`" for s in info["missing_scopes"])
            + ". Run `/spotify link` again to grant them."
        )
    return "\n".join(lines)


def linked_text(info: dict[str, Any]) -> str:
    name = info.get("display_name") or info.get("spotify_user_id") or "your Spotify account"
    return (
        f"✅ Linked as **{discord.utils.escape_markdown(name)}**. Your own and collaborative "
        "playlists, Liked Songs and *Save as playlist* now work for you. "
        "`/spotify status` shows the link; `/spotify unlink` removes it."
    )


class PasteUrlModal(discord.ui.Modal, title="Finish linking Spotify"):
    url: discord.ui.TextInput[PasteUrlModal] = discord.ui.TextInput(
        label="The address your browser ended up on",
        style=discord.TextStyle.paragraph,
        placeholder="http://127.0.0.1:8080/spotify/callback?code=…&state=…",
        min_length=10,
        max_length=2000,
    )

    def __init__(self, accounts: AccountService) -> None:
        super().__init__(timeout=STATE_TTL.total_seconds())
        self.accounts = accounts

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        info = await self.accounts.complete_from_redirect(interaction.user.id, str(self.url.value))
        await interaction.followup.send(linked_text(info), ephemeral=True)

    async def on_error(  # type: ignore[override]  # Modal's own signature, not BaseView's
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        """Modals are not answered by the command tree: the same private answer, from here."""
        await answer_error(interaction, error, "the paste-URL modal")


class PasteButton(
    Guarded,
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"pc:paste:(?P<uid>[0-9]+):(?P<until>[0-9]+)",
):
    """ "Paste the URL" (loopback mode): opens the modal for the address the browser ended on.

    Persistent: the custom id carries whose link it is and when its ``state`` expires (Unix
    seconds), so a click after a restart opens the modal (it used to end in Discord's "This
    interaction failed"), a late one says the link expired, and nobody uses another's.
    """

    def __init__(self, user_id: int, until: int) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.primary,
                label="Paste the URL",
                emoji="📋",
                custom_id=f"pc:paste:{user_id}:{until}",
            )
        )
        self.user_id, self.until = user_id, until

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> PasteButton:
        return cls(int(match["uid"]), int(match["until"]))

    async def act(self, interaction: discord.Interaction) -> None:
        if interaction.user.id != self.user_id:
            await interaction.response.send_message(
                "This link belongs to someone else: run `/spotify link` yourself.",
                ephemeral=True,
            )
            return
        bot = bot_of(interaction)
        if has_expired(bot, self.until):
            await interaction.response.edit_message(content=expired_link_text(), view=None)
            return
        accounts = bot.services.accounts
        if accounts is None:
            raise Refusal(NOT_AVAILABLE)
        await interaction.response.send_modal(PasteUrlModal(accounts))


def expired_link_text() -> str:
    minutes = int(STATE_TTL.total_seconds() // 60)
    return (
        f"⌛ This authorization link expired (it works for {minutes} minutes). "
        "Run `/spotify link` again for a new one."
    )


def link_view(url: str, *, paste: PasteButton | None) -> discord.ui.View:
    """The authorize link button, plus "Paste the URL" in loopback mode (``paste``)."""
    view = discord.ui.View(timeout=None)  # persistent: the items carry what they need
    if len(url) <= MAX_LINK_BUTTON_URL:
        view.add_item(
            discord.ui.Button(style=discord.ButtonStyle.link, label="Authorize on Spotify", url=url)
        )
    if paste is not None:
        view.add_item(paste)
    return view


class SpotifyCog(
    commands.GroupCog, group_name="spotify", group_description="Link your Spotify account"
):
    def __init__(self, bot: PlaylistClustersBot) -> None:
        self.bot = bot
        # discord user id -> (interaction of their latest /spotify link, bot.clock() time);
        # dropped once older than bot.interaction_ttl_s (the token can't edit the reply then)
        self._pending: dict[int, tuple[discord.Interaction, float]] = {}
        super().__init__()

    @property
    def accounts(self) -> AccountService | None:
        return self.bot.services.accounts

    def _linking(self) -> AccountService:
        """The account service, or a refusal that says linking is not set up here."""
        if self.accounts is None:
            raise Refusal(NOT_AVAILABLE)
        return self.accounts

    async def cog_load(self) -> None:
        if self.accounts is not None:
            self.accounts.add_link_listener(self._on_linked)

    async def _on_linked(self, user_id: int, info: dict[str, Any]) -> None:
        """A link completed (web callback): update the user's ephemeral /spotify link reply."""
        pending = self._pending.pop(user_id, None)
        if pending is None:
            return
        interaction, since = pending
        if self.bot.clock() - since > self.bot.interaction_ttl_s:
            return
        try:
            await interaction.edit_original_response(content=linked_text(info), view=None)
        except discord.HTTPException as exc:
            log.info("could not update the /spotify link message: %s", exc)

    # --- the relink notice -------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_app_command_completion(
        self, interaction: discord.Interaction, command: object
    ) -> None:
        await self.tell_relink_notice(interaction)

    async def tell_relink_notice(self, interaction: discord.Interaction) -> None:
        """After any slash command of a member whose link was dropped: tell them once, in an
        ephemeral followup only they see. Sent after the command's own answer (a followup
        sent while a deferred reply still shows "thinking…" would take its place and its
        public visibility); when it can't be sent (token expired) it waits for the next one."""
        accounts = self.accounts
        done = (
            discord.InteractionResponseType.channel_message,
            discord.InteractionResponseType.deferred_channel_message,
        )
        if accounts is None or self.bot.closing or interaction.response.type not in done:
            return  # nothing to follow up (a modal was opened, no answer), or shutting down
        try:
            notice = await accounts.take_relink_notice(interaction.user.id)
        except PipelineError:
            log.warning("could not read the relink notice of a member", exc_info=True)
            return
        if notice is None:
            return
        try:
            await interaction.followup.send(relink_notice_text(notice), ephemeral=True)
        except discord.HTTPException as exc:
            log.info("relink notice not delivered (%s); it waits for the next command", exc)
            await accounts.return_relink_notice(notice)

    # --- commands ---------------------------------------------------------------------------
    @app_commands.command(name="link", description="Link your Spotify account (private reply)")
    async def link(self, interaction: discord.Interaction) -> None:
        accounts = self._linking()
        current = await accounts.status(interaction.user.id)
        url = await accounts.start_link(interaction.user.id)  # may raise: the tree answers
        text = link_instructions(
            url, web_callback=accounts.web_callback, redirect_uri=accounts.redirect_uri
        )
        notice = await accounts.take_relink_notice(interaction.user.id)
        if notice is not None:  # they are linking again: why, without "link again"
            text = relink_notice_text(notice, linking=True) + "\n\n" + text
        elif current is not None:
            name = current.get("display_name") or current.get("spotify_user_id") or "?"
            text = (
                f"You're already linked as **{discord.utils.escape_markdown(name)}**; "
                "approving again replaces that link.\n\n" + text
            )
        paste = None
        if not accounts.web_callback:
            until = expires_at(self.bot, STATE_TTL.total_seconds())
            paste = PasteButton(interaction.user.id, until)
        view = link_view(url, paste=paste)
        await interaction.response.send_message(text, view=view, ephemeral=True)
        if accounts.web_callback:
            now = self.bot.clock()
            ttl = self.bot.interaction_ttl_s
            self._pending = {uid: p for uid, p in self._pending.items() if now - p[1] < ttl}
            self._pending[interaction.user.id] = (interaction, now)

    @app_commands.command(name="status", description="Show your linked Spotify account")
    async def status(self, interaction: discord.Interaction) -> None:
        accounts = self._linking()
        info = await accounts.status(interaction.user.id)  # may raise: the tree answers
        notice = await accounts.take_relink_notice(interaction.user.id) if info is None else None
        if notice is not None:
            text = relink_notice_text(notice)
        elif info is None:
            text = "You haven't linked a Spotify account. Use `/spotify link` to link one."
        else:
            text = status_text(info)
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="unlink", description="Remove your Spotify link from this bot")
    async def unlink(self, interaction: discord.Interaction) -> None:
        accounts = self._linking()
        self._pending.pop(interaction.user.id, None)
        notice = await accounts.take_relink_notice(interaction.user.id)
        if await accounts.unlink(interaction.user.id):
            text = (
                "Unlinked: your Spotify tokens were deleted from this bot. To also revoke its "
                "access on Spotify's side, remove the app at "
                "<https://www.spotify.com/account/apps/>."
            )
        elif notice is not None:  # the link was already dropped: say why, once
            text = relink_notice_text(notice)
        else:
            text = "You had no linked Spotify account, so there was nothing to delete."
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: PlaylistClustersBot) -> None:
    bot.add_dynamic_items(PasteButton)
    await bot.add_cog(SpotifyCog(bot))
