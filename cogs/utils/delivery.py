"""Results as Discord messages, and where they go.

:func:`result_messages` turns an analysis into at most two messages within Discord's limits
(overview + scatter, every cluster with a few tracks, browse/download controls under the last). A
:class:`Destination` is where one request's progress and results go: the deferred response of
an interaction (then the channel, once the 15-minute token is too old), or a reply to a posted
message. :func:`post_ready` posts to a channel directly (jobs nobody awaits any more).

A job resumed after a restart finishes the ``/cluster`` reply it was asked from while that
reply's interaction token is still valid (:class:`ResumedReply`, from what
:meth:`InteractionDestination.submitted` kept with the job, encrypted); else its result goes to
the channel as before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot.errors import PipelineError
from bot.models import Analysis, Progress
from bot.sources.link_reader import FOR_ANYONE
from cogs.utils import embeds as E
from cogs.utils import views as V
from cogs.utils.permissions import can_post_results, channel_permissions
from cogs.utils.progress import Throttle, progress_text

if TYPE_CHECKING:
    from bot.app import PlaylistClustersBot
    from bot.jobs import JobOutcome
    from storage.jobs import ReplyRef

log = logging.getLogger(__name__)


@dataclass
class OutMessage:
    embeds: list[discord.Embed]
    files: list[discord.File]
    view: discord.ui.View | None
    content: str | None = None


def result_messages(
    analysis: Analysis,
    png: bytes | None,
    *,
    liked: set[str] | frozenset[str] = frozenset(),
    header: str | None = None,
    lead: Sequence[discord.Embed] = (),
    label: str | None = None,
    profile: bytes | None = None,
    reader: str = FOR_ANYONE,
) -> list[OutMessage]:
    """The messages to post for an analysis (one for most, at most two for k ≤ 20): the
    scatter on the first, the sound profile under the cluster list while it reads on a phone
    (k ≤ 6; else the Profile button sends it), the browse/download controls under the last
    message, below the clusters."""
    with_image = bool(png) and len(png or b"") <= E.MAX_FILE_BYTES
    with_profile = bool(profile) and len(profile or b"") <= E.MAX_FILE_BYTES
    batches = E.analysis_embeds(
        analysis,
        liked=liked,
        header=header,
        with_image=with_image,
        lead=lead,
        label=label,
        with_profile=with_profile,
        reader=reader,
    )
    out = [OutMessage(embeds=b, files=[], view=None) for b in batches]
    if with_image and png is not None:
        out[0].files = [E.scatter_file(png)]
    inline = out[-1].embeds[-1].image.url == f"attachment://{E.PROFILE_NAME}"
    if profile and inline:
        out[-1].files.append(E.scatter_file(profile, E.PROFILE_NAME))
    out[-1].view = V.result_view(analysis, profile=not inline)  # else a button sends it
    return out


def outcome_messages(
    outcome: JobOutcome,
    *,
    liked: set[str] | frozenset[str] = frozenset(),
    header: str | None = None,
    lead: Sequence[discord.Embed] = (),
    reader: str = FOR_ANYONE,
) -> list[OutMessage]:
    """:func:`result_messages` for a finished job (its analysis gets the stored id).
    ``reader``: who asked (:func:`bot.sources.link_reader.reader_for`), for the note of a
    partial public-page read."""
    analysis = outcome.analysis
    if analysis.analysis_id is None:
        analysis.analysis_id = outcome.analysis_id
    rendered = outcome.rendered
    return result_messages(
        analysis,
        rendered.png,
        liked=liked,
        header=header,
        lead=lead,
        profile=rendered.profile_png,
        reader=reader,
    )


class Destination:
    """Where progress and results of one request go. ``private``: only the requester sees
    them (an ephemeral response, a DM), so their 💚 marks may be shown."""

    private = False

    def __init__(self, bot: PlaylistClustersBot) -> None:
        self.bot = bot
        self.throttle = Throttle(self._progress, interval=bot.progress_interval_s, clock=bot.clock)

    async def on_progress(self, p: Progress) -> None:
        await self.throttle.update(progress_text(p))

    async def submitted(self, job_id: int) -> None:
        """The request became (or joined) job ``job_id``: keep what a resumed job would need
        to answer here, if the bot stops before the job ends."""

    async def _progress(self, text: str) -> None:
        raise NotImplementedError

    async def deliver(self, messages: list[OutMessage]) -> None:
        raise NotImplementedError

    async def fail(self, text: str, *, ephemeral: bool) -> None:
        raise NotImplementedError


async def channel_send(channel: Any, msg: OutMessage, **kwargs: Any) -> discord.Message:
    return await channel.send(
        content=msg.content,
        embeds=msg.embeds,
        files=msg.files or discord.utils.MISSING,
        view=msg.view or discord.utils.MISSING,
        **kwargs,
    )


def requester_mention(user_ids: int | list[int] | None) -> tuple[str, discord.AllowedMentions]:
    """The only mentions the bot means — whoever asked, on a result or error posted to the
    channel when their interaction has expired — and allowed mentions that ping only them
    (the bot's default pings nobody: names from data never mention anyone)."""
    ids = [user_ids] if isinstance(user_ids, int) else [u for u in user_ids or [] if u]
    allowed = discord.AllowedMentions.none()
    if not ids:
        return "", allowed
    allowed.users = [discord.Object(id=u) for u in ids]
    return " ".join(f"<@{u}>" for u in ids), allowed


async def post_ready(
    channel: Any, messages: list[OutMessage], user_ids: int | list[int] | None
) -> None:
    """Post results to the channel itself (interaction token too old, or a resumed job),
    mentioning whoever asked."""
    mention, allowed = requester_mention(user_ids)
    messages[0].content = f"{mention} your analysis is ready:".strip()
    for i, msg in enumerate(messages):
        await channel_send(channel, msg, **({"allowed_mentions": allowed} if i == 0 else {}))


class InteractionDestination(Destination):
    """Edits the deferred response, then followups; the channel once the token is too old."""

    def __init__(
        self,
        bot: PlaylistClustersBot,
        interaction: discord.Interaction,
        *,
        private: bool = False,
        original_id: int | None = None,
    ) -> None:
        super().__init__(bot)
        self.interaction = interaction
        self.started = bot.clock()
        # private: the response was deferred ephemerally; followups stay ephemeral too.
        self.private = private
        # The deferred response's message id (from the defer's callback), if known.
        self.original_id = original_id

    @property
    def expired(self) -> bool:
        return self.bot.clock() - self.started >= self.bot.interaction_ttl_s

    async def submitted(self, job_id: int) -> None:
        """Keep, with the job and encrypted, what a resumed job needs to finish this reply:
        the interaction token (a secret: never logged), the response's message id, and how
        long the token stays valid."""
        valid_s = self.bot.interaction_ttl_s - (self.bot.clock() - self.started)
        try:
            message_id = self.original_id
            if message_id is None:
                message_id = (await self.interaction.original_response()).id
            await self.bot.services.store.jobs.attach_reply(
                job_id,
                application_id=self.interaction.application_id,
                token=self.interaction.token,
                message_id=message_id,
                valid_s=valid_s,
                user_id=self.interaction.user.id,
                channel_id=self.interaction.channel_id,
            )
        except (discord.HTTPException, PipelineError) as exc:
            log.warning("job %d: its reply can't be finished after a restart (%s)", job_id, exc)

    async def _progress(self, text: str) -> None:
        if not self.expired:
            await self.interaction.edit_original_response(content=text)

    async def deliver(self, messages: list[OutMessage]) -> None:
        await self.throttle.close()
        if self.expired:
            await self._to_channel(messages)
            return
        first, rest = messages[0], messages[1:]
        try:
            await self.interaction.edit_original_response(
                content=first.content,
                embeds=first.embeds,
                attachments=first.files,
                view=first.view,
            )
        except discord.NotFound:  # deleted while it ran (a moderator?): the channel, then
            log.info(
                "interaction %s: response deleted; result posted to the channel",
                self.interaction.id,
            )
            for f in first.files:  # the refused edit may have read them already
                f.reset()
            if self.private:  # never to the channel: ephemeral followups
                for msg in messages:
                    await self._continue(msg)
            else:
                await self._to_channel(messages)
            return
        for msg in rest:
            await self._continue(msg)

    async def _continue(self, msg: OutMessage) -> None:
        """The rest of a result goes to the channel itself where we may post: a followup
        would repeat "<user> used /cluster" above it (Discord shows that on every followup).
        A private result stays private: ephemeral followups only."""
        channel = self.interaction.channel
        in_server = self.interaction.guild_id is not None
        public = in_server and not self.private
        if public and isinstance(channel, discord.abc.Messageable) and can_post_results(channel):
            try:
                await channel_send(channel, msg)
                return
            except discord.HTTPException:
                log.info("channel send refused; the rest of the result goes as a followup")
        await self.interaction.followup.send(
            content=msg.content or discord.utils.MISSING,
            embeds=msg.embeds,
            files=msg.files or discord.utils.MISSING,
            view=msg.view or discord.utils.MISSING,
            ephemeral=self.private,
        )

    async def _to_channel(self, messages: list[OutMessage]) -> None:
        channel = self.interaction.channel
        if not can_post_results(channel):
            log.warning("token expired and cannot post in channel %s", getattr(channel, "id", None))
            return
        await post_ready(channel, messages, self.interaction.user.id)

    async def fail(self, text: str, *, ephemeral: bool) -> None:
        await self.throttle.close()
        if self.expired:
            channel = self.interaction.channel
            perms = channel_permissions(channel)
            can_send = perms is None or perms.send_messages
            if isinstance(channel, discord.abc.Messageable) and can_send:
                mention, allowed = requester_mention(self.interaction.user.id)
                await channel.send(f"{mention} {text}", allowed_mentions=allowed)
            return
        if ephemeral:
            with contextlib.suppress(discord.HTTPException):
                await self.interaction.delete_original_response()
            await self.interaction.followup.send(text, ephemeral=True)
        else:
            await self.interaction.edit_original_response(content=text, embeds=[], view=None)


def can_reference(channel: Any) -> bool:
    """Whether the bot may answer a message as a reply (with the reply arrow) in ``channel``:
    Discord refuses a message_reference without Read Message History (error 160002)."""
    perms = channel_permissions(channel)
    return perms is None or perms.read_message_history


async def reply_to(message: discord.Message, content: str | None = None, **kwargs: Any) -> Any:
    """Answer a posted message: a reply where Discord allows one, else a plain message in its
    channel (an admin who denies Read Message History still gets the answer)."""
    if can_reference(message.channel):
        # A message deleted since (by its author or a moderator): no reply arrow, not an error.
        kwargs.update(reference=message.to_reference(fail_if_not_exists=False))
        kwargs.update(mention_author=False)
    return await message.channel.send(content, **kwargs)


class MessageDestination(Destination):
    """Replies to a posted link: ⏳ reaction, one progress reply edited in place, results."""

    def __init__(self, bot: PlaylistClustersBot, message: discord.Message) -> None:
        super().__init__(bot)
        self.message = message
        self.private = message.guild is None  # a link sent to the bot in a DM
        self.reply: discord.Message | None = None
        perms = channel_permissions(message.channel)
        self.can_react = perms is None or (perms.add_reactions and perms.read_message_history)

    async def start(self, note: str | None = None) -> None:
        if self.can_react:
            with contextlib.suppress(discord.HTTPException):
                await self.message.add_reaction("⏳")
        queued = progress_text(Progress(stage="queued"))
        self.reply = await reply_to(self.message, queued + (f"\n-# {note}" if note else ""))
        self.throttle._sent = queued  # the queued event must not edit the note away

    async def _progress(self, text: str) -> None:
        if self.reply is not None:
            try:
                await self.reply.edit(content=text)
            except discord.NotFound:  # deleted (by a moderator?): the result gets a new one
                self.reply = None

    async def _edit_reply(self, **fields: Any) -> bool:
        """Edit the progress reply into the answer; False when it was deleted meanwhile."""
        if self.reply is None:
            return False
        try:
            await self.reply.edit(**fields)
        except discord.NotFound:
            self.reply = None
            return False
        return True

    async def _done_reaction(self, emoji: str) -> None:
        me = self.bot.user
        if not self.can_react or me is None:
            return
        with contextlib.suppress(discord.HTTPException):
            await self.message.remove_reaction("⏳", me)
            await self.message.add_reaction(emoji)

    async def deliver(self, messages: list[OutMessage]) -> None:
        await self.throttle.close()
        first, rest = messages[0], messages[1:]
        edited = await self._edit_reply(
            content=first.content, embeds=first.embeds, attachments=first.files, view=first.view
        )
        if not edited:
            for f in first.files:  # a refused edit may have read them already
                f.reset()
            await reply_to(
                self.message,
                first.content,
                embeds=first.embeds,
                files=first.files or discord.utils.MISSING,
                view=first.view or discord.utils.MISSING,
            )
        for msg in rest:
            await channel_send(self.message.channel, msg)
        await self._done_reaction("✅")

    async def fail(self, text: str, *, ephemeral: bool) -> None:
        await self.throttle.close()
        if not await self._edit_reply(content=text):
            await reply_to(self.message, text)
        await self._done_reaction("❌")


class ResumedReply:
    """The ``/cluster`` reply of a job resumed after a restart, finished through the
    interaction token kept with the job (:meth:`InteractionDestination.submitted`). Each
    method returns False when Discord refuses (token expired early, reply deleted): the
    caller then posts to the channel instead."""

    def __init__(self, bot: PlaylistClustersBot, ref: ReplyRef, channel: Any) -> None:
        self.bot = bot
        self.ref = ref
        self.channel = channel
        self.webhook = discord.Webhook.partial(ref.application_id, ref.token, client=bot)
        # An interaction's webhook (what Interaction.followup is): ephemeral messages allowed.
        self.webhook.type = discord.WebhookType.application

    async def deliver(self, messages: list[OutMessage]) -> bool:
        first, rest = messages[0], messages[1:]
        try:
            await self.webhook.edit_message(
                self.ref.message_id,
                content=first.content,
                embeds=first.embeds,
                attachments=first.files,
                view=first.view,
            )
        except discord.HTTPException as exc:
            log.info("could not finish a resumed job's reply (%s); posting to the channel", exc)
            return False
        for msg in rest:  # the channel, like a live reply's rest; else followups
            if self.channel is not None and can_post_results(self.channel):
                with contextlib.suppress(discord.HTTPException):
                    await channel_send(self.channel, msg)
                    continue
            await self.webhook.send(
                content=msg.content or discord.utils.MISSING,
                embeds=msg.embeds,
                files=msg.files or discord.utils.MISSING,
                view=msg.view or discord.utils.MISSING,
            )
        return True

    async def fail(self, text: str, *, ephemeral: bool) -> bool:
        """The job failed: the reply says so (privately, when it is the member's mistake)."""
        try:
            if ephemeral:  # the public reply goes first (see errors.send_private)
                with contextlib.suppress(discord.HTTPException):
                    await self.webhook.delete_message(self.ref.message_id)
                await self.webhook.send(text, ephemeral=True)
            else:
                await self.webhook.edit_message(
                    self.ref.message_id, content=text, embeds=[], attachments=[], view=None
                )
        except discord.HTTPException as exc:
            log.info("could not finish a resumed job's reply (%s); posting to the channel", exc)
            return False
        return True
