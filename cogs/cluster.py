"""/cluster, posted playlist links, /clusters history|show|links — the analysis front door.

Flow for one request: check the channel permissions we need → acknowledge (defer within 3 s)
→ submit to the job queue with a throttled progress callback (≤ 1 edit / 1.5 s) → deliver the
result as one or more messages within Discord's limits (overview + scatter, one embed per
cluster, persistent browse/download components). Interaction tokens die after 15 minutes:
older than ``bot.interaction_ttl_s``, results go to the channel instead.

Why one module (~510 lines): /cluster, posted links and /clusters show are three doors to
the same run-and-deliver path (:meth:`ClusterCog.run`, the resume of interrupted jobs, who may
see a stored analysis); the delivery itself lives in :mod:`cogs.utils.delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import replace

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import PlaylistClustersBot
from bot.errors import InvalidCsv, InvalidLink, PipelineError
from bot.jobs import JobOutcome
from bot.models import Analysis, AnalysisRequest
from bot.safety import audience
from bot.sources.exportify import decode_csv
from bot.sources.link_reader import FOR_ANYONE, reader_for
from bot.sources.links import find_short_links, find_spotify_links
from cogs.utils import embeds as E
from cogs.utils import views as V
from cogs.utils.delivery import (
    Destination,
    InteractionDestination,
    MessageDestination,
    ResumedReply,
    outcome_messages,
    post_ready,
    reply_to,
    requester_mention,
    result_messages,
)
from cogs.utils.errors import error_message, error_text
from cogs.utils.permissions import (
    bot_can_post_results,
    can_post_results,
    channel_permissions,
    manage_server_only,
    managers_group,
    missing_permissions,
    missing_text,
)
from storage.jobs import ReplyRef

log = logging.getLogger(__name__)

# What a member can attach on Discord without Nitro (10 MiB): an exportify.app export of
# 10,000 tracks with every option is 5.6 MiB (it was refused at 5 MiB).
MAX_CSV_BYTES = 10 * 1024 * 1024
RESTARTING = "⚠️ The bot is restarting; please ask again in a minute."
# One phone line: the overview's worst case is measured with it (tests/test_result_layout.py).
RESUMED = "Finished after being interrupted by a restart."
CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel")
# Exportify's "Export All" zip and spreadsheet workbooks (zips too) are read to say what they
# are (bot.sources.exportify), instead of "doesn't look like a CSV".
ZIP_LIKE = (".zip", ".xlsx", ".ods", ".numbers")


def find_links(text: str) -> list[str]:
    """Playlist/album links in a chat message (phones' short links too: followed later)."""
    return [ref.url for ref in find_spotify_links(text or "")] + find_short_links(text or "")


# ----------------------------------------------------------------------------- the cog
class ClusterCog(commands.Cog):
    clusters = app_commands.Group(
        name="clusters", description="Stored analyses and server settings.", guild_only=True
    )
    links = managers_group(
        "links", "Reply to Spotify playlist links posted in this server.", parent=clusters
    )

    def __init__(self, bot: PlaylistClustersBot) -> None:
        self.bot = bot
        self.services = bot.services
        self._awaited: set[int] = set()  # job ids someone is already delivering
        self._handled: OrderedDict[int, None] = OrderedDict()  # message ids replied to
        self._closed = False
        self.services.queue.add_listener(self._on_job_end)

    async def cog_unload(self) -> None:
        self._closed = True

    # --------------------------------------------------------------- running a request
    async def run(self, dest: Destination, request: AnalysisRequest) -> int | None:
        """Submit, follow progress, deliver. Returns the analysis id (None on failure)."""
        job_id: int | None = None
        try:
            handle = await self.services.queue.submit(request, progress=dest.on_progress)
            job_id = handle.job_id
            self._awaited.add(job_id)
            await dest.submitted(job_id)  # what a resume needs to answer here (joiners too)
            outcome = await handle.result()
            liked: set[str] = set()  # 💚 marks are one member's data: only where only they see
            if request.user_id is not None and dest.private:
                ids = E.representative_ids(outcome.analysis)
                liked = await V.liked_for(self.bot, request.user_id, ids)
            header = "♻️ Unchanged since last time: reused." if outcome.reused else None
            reader = await self._reader(request.user_id)
            await dest.deliver(outcome_messages(outcome, liked=liked, header=header, reader=reader))
            return outcome.analysis_id
        except PipelineError as err:
            await self._safe_fail(dest, error_message(err), ephemeral=err.ephemeral)
        except Exception as err:
            if self.bot.closing:
                # Shutting down: services are closing under us; not a bug to report.
                log.info("analysis of %r stopped by shutdown: %r", _describe(request), err)
                await self._safe_fail(dest, RESTARTING, ephemeral=False)
                return None
            text = error_text(err, f"the analysis of {_describe(request)!r}")
            await self._safe_fail(dest, text, ephemeral=True)
        finally:
            await dest.throttle.close()
            if job_id is not None:
                self._awaited.discard(job_id)
        return None

    async def _reader(self, user_id: int | None) -> str:
        """Who a result's partial-read note speaks to: the member who asked, as they are now
        (linked or not, or linking not offered here). Never stored with the analysis."""
        accounts = self.services.accounts
        if user_id is None:
            return FOR_ANYONE
        linking = accounts is not None and bool(self.services.settings.spotify_client_id)
        try:
            linked = linking and accounts is not None and await accounts.is_linked(user_id)
        except PipelineError:
            return FOR_ANYONE
        return reader_for(linking=linking, linked=linked)

    async def _safe_fail(self, dest: Destination, text: str, *, ephemeral: bool) -> None:
        try:
            await dest.fail(text, ephemeral=ephemeral)
        except discord.HTTPException:
            log.warning("could not deliver an error message", exc_info=True)

    async def _on_job_end(
        self,
        job_id: int,
        request: AnalysisRequest,
        outcome: JobOutcome | None,
        error: BaseException | None,
    ) -> None:
        """This cog's jobs (/cluster, posted links) that nobody awaits any more (resumed after a
        restart) finish their reply or are posted to their channel; other origins (digests)
        belong to their cog. The reply kept for that (a secret) is dropped once the job ended,
        whichever queue ran it."""
        try:
            await self._announce(job_id, request, outcome, error)
        finally:
            if request.origin == "interaction":
                try:
                    await self.services.store.jobs.drop_reply(job_id)
                except PipelineError:
                    log.warning("could not drop the stored reply of job %s", job_id)

    async def _announce(
        self,
        job_id: int,
        request: AnalysisRequest,
        outcome: JobOutcome | None,
        error: BaseException | None,
    ) -> None:
        if self._closed or job_id in self._awaited or not request.channel_id:
            return
        if request.origin not in ("interaction", "message"):
            return
        await self.bot.wait_until_ready()
        # Everyone who asked: the requester and whoever joined the identical job, each
        # finished in their own reply while its token lasts, else told in their channel.
        unfinished: dict[int, list[int | None]] = {}
        for user_id, channel_id, ref in await self._requesters(job_id, request):
            channel = self._channel(channel_id)
            if ref is not None and await self._finish_reply(ref, user_id, outcome, error, channel):
                continue
            unfinished.setdefault(channel_id, []).append(user_id)
        for channel_id, user_ids in unfinished.items():
            await self._post_resumed(job_id, channel_id, user_ids, outcome, error)

    async def _requesters(
        self, job_id: int, request: AnalysisRequest
    ) -> list[tuple[int | None, int, ReplyRef | None]]:
        """(member, channel, their kept reply if its token is still valid) for each member
        who asked for this job; the requester alone when no reply was kept."""
        refs: list[ReplyRef] = []
        if request.origin == "interaction":
            try:
                refs = await self.services.store.jobs.replies(job_id)
            except PipelineError:
                log.warning("resumed job %s: its stored replies can't be read", job_id)
        assert request.channel_id is not None
        out: list[tuple[int | None, int, ReplyRef | None]] = []
        for ref in refs:
            usable = ref if self.services.store.jobs.usable(ref) else None
            out.append(
                (ref.user_id or request.user_id, ref.channel_id or request.channel_id, usable)
            )
        if not any(user == request.user_id for user, _, _ in out):
            out.insert(0, (request.user_id, request.channel_id, None))
        return out

    async def _post_resumed(
        self,
        job_id: int,
        channel_id: int,
        user_ids: list[int | None],
        outcome: JobOutcome | None,
        error: BaseException | None,
    ) -> None:
        """A resumed job's result (or error) posted to a channel, mentioning who asked there."""
        channel = self._channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        if not can_post_results(channel):
            log.warning("resumed job %s: cannot post in channel %s", job_id, channel_id)
            return
        members = [u for u in dict.fromkeys(user_ids) if u]
        mention, allowed = requester_mention(members)
        try:
            if error is not None:
                text = f"{mention} {error_message(error)}".strip()
                await channel.send(text, allowed_mentions=allowed)
                return
            if outcome is None:
                return
            reader = await self._reader(members[0] if members else None)
            msgs = outcome_messages(outcome, header=RESUMED, reader=reader)
            await post_ready(channel, msgs, members)
        except discord.HTTPException:
            log.warning("could not post resumed job %s", job_id, exc_info=True)

    def _channel(self, channel_id: int) -> object:
        """A channel to post a resumed job in: the cached one, else one known by id only (a
        DM, which the bot never has cached after a restart, or a thread not cached yet);
        Discord then says whether the bot may post there."""
        return self.bot.get_channel(channel_id) or self.bot.get_partial_messageable(channel_id)

    async def _finish_reply(
        self,
        ref: ReplyRef,
        user_id: int | None,
        outcome: JobOutcome | None,
        error: BaseException | None,
        channel: object,
    ) -> bool:
        """A resumed /cluster job finishes a reply whose token is still valid (instead of
        leaving it on its last progress line). False: post to the channel."""
        reply = ResumedReply(self.bot, ref, channel)
        if error is not None:
            ephemeral = bool(getattr(error, "ephemeral", True))
            return await reply.fail(error_message(error), ephemeral=ephemeral)
        if outcome is None:
            return False
        reader = await self._reader(user_id)
        return await reply.deliver(outcome_messages(outcome, header=RESUMED, reader=reader))

    # --------------------------------------------------------------- /cluster
    @app_commands.command(name="cluster", description="Cluster a Spotify playlist by sound.")
    @app_commands.describe(
        playlist="A Spotify playlist or album link (or pick one of yours)",
        k="Number of clusters (2-20); leave empty to choose automatically",
        csv="An Exportify CSV export of a playlist",
        liked="Cluster your Liked Songs (needs /spotify link)",
    )
    @bot_can_post_results()  # first: it is instant, and the refusal IS the response
    async def cluster(
        self,
        interaction: discord.Interaction,
        playlist: str | None = None,
        k: app_commands.Range[int, 2, 20] | None = None,
        csv: discord.Attachment | None = None,
        liked: bool = False,
    ) -> None:
        deferred = await interaction.response.defer(thinking=True)
        request = await self._build_request(interaction, playlist, k, csv, liked)  # may raise
        original = deferred.message_id if deferred is not None else None
        await self.run(InteractionDestination(self.bot, interaction, original_id=original), request)

    async def _build_request(
        self,
        interaction: discord.Interaction,
        playlist: str | None,
        k: int | None,
        csv: discord.Attachment | None,
        liked: bool,
    ) -> AnalysisRequest:
        chosen = sum(bool(x) for x in (playlist, csv, liked))
        if chosen == 0:
            raise InvalidLink(
                "Give me a playlist: `playlist:` with a Spotify link, `csv:` with an Exportify "
                "export, or `liked:True` for your Liked Songs."
            )
        if chosen > 1:
            raise InvalidLink("Pick just one of `playlist:`, `csv:` or `liked:`.")
        base = AnalysisRequest(
            origin="interaction",
            k=k,
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
        )
        if csv is not None:
            text = await read_csv_attachment(csv)
            return replace(base, csv_text=text, csv_name=csv.filename)
        if liked:
            accounts = self.services.accounts
            if accounts is None or not await accounts.status(interaction.user.id):
                raise PipelineError(
                    "Liked Songs need a linked Spotify account: run `/spotify link` first."
                )
            return replace(base, liked=True)
        return replace(base, link=(playlist or "").strip())

    @cluster.autocomplete("playlist")
    async def playlist_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        accounts = self.services.accounts
        if accounts is None:
            return []
        try:
            if not await accounts.status(interaction.user.id):
                return []
            metas = await asyncio.wait_for(accounts.my_playlists(interaction.user.id), 2.5)
        except Exception:
            log.debug("playlist autocomplete failed", exc_info=True)
            return []
        needle = current.lower().strip()
        out = []
        for m in metas:
            if needle and needle not in (m.name or "").lower() and needle not in m.id:
                continue
            url = m.url or f"https://open.spotify.com/playlist/{m.id}"
            label = E.truncate(f"{m.name} ({m.total} tracks)" if m.total else m.name, 100)
            out.append(app_commands.Choice(name=label or m.id, value=url[:100]))
            if len(out) == 25:
                break
        return out

    # --------------------------------------------------------------- posted links
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        # DMs too: a member who sends the bot a link privately gets the answer there.
        if message.author.bot or message.webhook_id is not None:
            return
        if message.id in self._handled:
            return
        links = find_links(message.content)
        if not links:
            return
        self._remember(message.id)  # before any await: a replayed event must not pass too
        guild_id = message.guild.id if message.guild is not None else None
        if guild_id is not None:
            settings = await self.services.store.guilds.settings(guild_id)
            if not settings.links_enabled:
                return
        perms = channel_permissions(message.channel)
        if perms is not None:
            if not perms.send_messages:
                log.info("cannot reply in channel %s (no Send Messages)", message.channel.id)
                return
            missing = missing_permissions(perms)
            if missing:
                with contextlib.suppress(discord.HTTPException):
                    await reply_to(message, missing_text(missing, message.channel))
                return
        note = f"Analysing the first of {len(links)} links." if len(links) > 1 else None
        dest = MessageDestination(self.bot, message)
        try:
            await dest.start(note)
        except discord.HTTPException:
            log.warning("could not reply to message %s", message.id, exc_info=True)
            return
        request = AnalysisRequest(
            link=links[0],
            user_id=message.author.id,
            guild_id=guild_id,
            channel_id=message.channel.id,
            origin="message",
        )
        await self.run(dest, request)

    def _remember(self, message_id: int) -> None:
        self._handled[message_id] = None
        while len(self._handled) > 5000:
            self._handled.popitem(last=False)

    # --------------------------------------------------------------- /clusters ...
    @clusters.command(name="history", description="Recent analyses (yours, or this server's).")
    @app_commands.describe(server="Show the whole server's analyses instead of yours")
    async def history(self, interaction: discord.Interaction, server: bool = False) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        if server:
            rows = await self.services.store.analyses.recent(
                guild_id=interaction.guild_id, limit=15
            )
            title = "Recent analyses in this server"
        else:
            rows = await self.services.store.analyses.recent(user_id=interaction.user.id, limit=15)
            title = "Your recent analyses"
        await interaction.followup.send(embed=E.history_embed(rows, title=title), ephemeral=True)

    @clusters.command(name="show", description="Show a stored analysis again (no refetch).")
    @app_commands.describe(id="The analysis number (see /clusters history)")
    @bot_can_post_results()
    async def show(self, interaction: discord.Interaction, id: app_commands.Range[int, 1]) -> None:
        # Who may see it is decided from the rows alone, before answering: an analysis made in
        # a DM or in another server is shown only to its requester, and then privately.
        private = await self._audience(id, interaction) == "requester"  # may raise: refused
        await interaction.response.defer(thinking=True, ephemeral=private)
        dest = InteractionDestination(self.bot, interaction, private=private)
        analysis = await self._stored(id, interaction)
        png = await self.services.store.analyses.file(id, E.SCATTER_NAME)
        profile = await self.services.store.analyses.file(id, E.PROFILE_NAME)
        liked = (
            await V.liked_for(self.bot, interaction.user.id, E.representative_ids(analysis))
            if private  # shown to the channel: the viewer's 💚 marks stay theirs
            else set()
        )
        await dest.deliver(
            result_messages(
                analysis, png, liked=liked, label=f"Stored analysis #{id}", profile=profile
            )
        )

    async def _audience(self, analysis_id: int, interaction: discord.Interaction) -> str:
        """``"server"`` or ``"requester"`` (see bot.safety.audience); refusals raise."""
        seen = await self.services.store.privacy.audience(analysis_id)
        if seen is None:
            raise PipelineError(f"There is no stored analysis #{analysis_id}.")
        who = audience(interaction.user.id, interaction.guild_id, seen.requesters, seen.guilds)
        if who is None:
            where = "in another server" if seen.guilds else "in a private conversation"
            raise PipelineError(
                f"Analysis #{analysis_id} was made {where}; only the person who asked for it "
                "can see it."
            )
        return who

    async def _stored(self, analysis_id: int, interaction: discord.Interaction) -> Analysis:
        """The analysis, once :meth:`_audience` allowed it (decoded only then: a large
        analysis is not read just to be refused)."""
        owner = await self.services.store.analyses.owner(analysis_id)
        analysis = await self.services.store.analyses.get(analysis_id)
        if owner is None or analysis is None:
            raise PipelineError(f"There is no stored analysis #{analysis_id}.")
        if owner.requested_by != interaction.user.id:
            analysis.liked = []  # someone else's 💚 marks stay private
        analysis.analysis_id = analysis_id
        return analysis

    @links.command(name="enable", description="Reply to Spotify playlist links posted here.")
    @manage_server_only()
    async def links_enable(self, interaction: discord.Interaction) -> None:
        await self._set_links(interaction, True)

    @links.command(name="disable", description="Stop replying to posted playlist links.")
    @manage_server_only()
    async def links_disable(self, interaction: discord.Interaction) -> None:
        await self._set_links(interaction, False)

    async def _set_links(self, interaction: discord.Interaction, enabled: bool) -> None:
        assert interaction.guild_id is not None  # manage_server_only()
        await self.services.store.guilds.set_links_enabled(interaction.guild_id, enabled)
        text = (
            "✅ I'll reply to Spotify playlist links posted in this server."
            if enabled
            else "🔕 I'll ignore playlist links posted in this server (`/cluster` still works)."
        )
        await interaction.response.send_message(text, ephemeral=True)


async def read_csv_attachment(att: discord.Attachment) -> str:
    """Validate and download an Exportify CSV attachment."""
    name = att.filename or ""
    ctype = (att.content_type or "").split(";")[0].strip().lower()
    if not name.lower().endswith((".csv", *ZIP_LIKE)) and ctype not in CSV_TYPES:
        raise InvalidCsv(f"`{E.truncate(name, 80)}` doesn't look like a CSV file (expected .csv).")
    if att.size > MAX_CSV_BYTES:
        raise InvalidCsv(
            f"`{E.truncate(name, 80)}` is {att.size / 1048576:.1f} MiB; the limit is "
            f"{MAX_CSV_BYTES // 1048576} MiB."
        )
    try:
        data = await att.read()
    except discord.HTTPException as exc:
        raise InvalidCsv("I couldn't download that attachment; please upload it again.") from exc
    return decode_csv(data)  # UTF-8/UTF-16/cp1252, as the CLI reads files


def _describe(request: AnalysisRequest) -> str:
    if request.csv_text is not None:
        return f"csv:{request.csv_name}"
    if request.liked:
        return "liked songs"
    return request.link or "demo"


async def setup(bot: PlaylistClustersBot) -> None:
    bot.add_dynamic_items(*V.DYNAMIC_ITEMS)
    await bot.add_cog(ClusterCog(bot))
