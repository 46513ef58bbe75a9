"""/cluster, posted playlist links, /clusters history|show|links — the analysis front door.

Flow for one request: check the channel permissions we need → acknowledge (defer within 3 s)
→ submit to the job queue with a throttled progress callback (≤ 1 edit / 1.5 s) → deliver the
result as one or more messages within Discord's limits (overview + scatter, one embed per
cluster, persistent browse/download components). Interaction tokens die after 15 minutes:
older than ``bot.interaction_ttl_s``, results go to the channel instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import embeds as E
from bot.app import error_text, permission_name
from bot.errors import InvalidCsv, InvalidLink, PipelineError
from bot.models import Analysis, Progress
from bot.pipeline import AnalysisRequest
from bot.sources.exportify import decode_csv
from bot.sources.links import find_spotify_links
from cogs import views as V

log = logging.getLogger(__name__)

MAX_CSV_BYTES = 5 * 1024 * 1024
RESTARTING = "⚠️ The bot is restarting; please ask again in a minute."
CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel")
NEEDED = ("send_messages", "embed_links", "attach_files")


# ----------------------------------------------------------------------------- helpers
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


async def _refused_for_permissions(interaction: discord.Interaction) -> bool:
    """Answer (ephemerally) when the bot can't post results here; True when it did."""
    missing = missing_permissions(interaction.app_permissions, ("embed_links", "attach_files"))
    if not missing:
        return False
    await interaction.response.send_message(
        missing_text(missing, interaction.channel), ephemeral=True
    )
    return True


def find_links(text: str) -> list[str]:
    """Playlist/album links in a chat message."""
    return [ref.url for ref in find_spotify_links(text or "")]


def progress_text(p: Progress) -> str:
    def count(noun: str) -> str:
        if p.done is not None and p.total:
            return f"{p.done:,}/{p.total:,} {noun}"
        if p.done is not None:
            return f"{p.done:,} {noun}"
        return noun

    text = {
        "queued": "⏳ Queued…",
        "fetching": f"📥 Fetched {count('tracks')}…",
        "featurizing": f"🎚️ Audio features: {count('tracks')}…",
        "clustering": "🧮 Clustering…",
        "rendering": "🎨 Drawing the chart…",
        "done": "✅ Done — posting the results…",
        "failed": "❌ Failed.",
    }.get(p.stage, f"{p.stage}…")
    return text


class Throttle:
    """Sends the latest progress text at most once per ``interval`` seconds.

    The first update goes out at once; later ones within the interval are coalesced and sent
    when it elapses. ``close()`` waits for an in-flight edit and drops anything pending, so
    a late progress edit can never overwrite the final result.
    """

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        interval: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._send, self.interval, self.clock, self._sleep = send, interval, clock, sleep
        self._latest: str | None = None
        self._sent: str | None = None
        self._last: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.closed = False

    async def update(self, text: str) -> None:
        if self.closed:
            return
        self._latest = text
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            await self._flush()
        elif self._task is None or self._task.done():
            delay = self.interval - (now - self._last)
            self._task = asyncio.create_task(self._later(delay))

    async def _later(self, delay: float) -> None:
        await self._sleep(delay)
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            if self.closed or self._latest is None or self._latest == self._sent:
                return
            text = self._latest
            self._last = self.clock()
            self._sent = text
            try:
                await self._send(text)
            except discord.HTTPException as exc:
                log.debug("progress edit failed: %s", exc)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:
            self.closed = True


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
) -> list[OutMessage]:
    """The messages to post for an analysis: scatter + components on the first one."""
    with_image = bool(png) and len(png or b"") <= E.MAX_FILE_BYTES
    batches = E.analysis_embeds(analysis, liked=liked, header=header, with_image=with_image)
    out = [OutMessage(embeds=b, files=[], view=None) for b in batches]
    if with_image and png is not None:
        out[0].files = [E.scatter_file(png)]
    out[0].view = V.result_view(analysis)
    return out


def outcome_messages(
    outcome: Any, *, liked: set[str] | frozenset[str] = frozenset(), header: str | None = None
) -> list[OutMessage]:
    """:func:`result_messages` for a finished job (its analysis gets the stored id)."""
    analysis = outcome.analysis
    if analysis.analysis_id is None:
        analysis.analysis_id = outcome.analysis_id
    return result_messages(analysis, outcome.rendered.png, liked=liked, header=header)


# ----------------------------------------------------------------------------- destinations
class Destination:
    """Where progress and results of one request go."""

    def __init__(self, bot: Any) -> None:
        self.bot = bot
        self.throttle = Throttle(self._progress, interval=bot.progress_interval_s, clock=bot.clock)

    async def on_progress(self, p: Progress) -> None:
        await self.throttle.update(progress_text(p))

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


def channel_permissions(channel: Any) -> discord.Permissions | None:
    guild = getattr(channel, "guild", None)
    if guild is None or guild.me is None:
        return None
    return channel.permissions_for(guild.me)


def can_post_results(channel: Any) -> bool:
    """Whether the bot has every permission results need in ``channel`` (unknown: try)."""
    perms = channel_permissions(channel)
    return perms is None or not missing_permissions(perms)


async def post_ready(channel: Any, messages: list[OutMessage], mention: str) -> None:
    """Post results to the channel itself (interaction token too old, or a resumed job)."""
    messages[0].content = f"{mention} your analysis is ready:".strip()
    for msg in messages:
        await channel_send(channel, msg)


class InteractionDestination(Destination):
    """Edits the deferred response, then followups; the channel once the token is too old."""

    def __init__(self, bot: Any, interaction: discord.Interaction) -> None:
        super().__init__(bot)
        self.interaction = interaction
        self.started = bot.clock()

    @property
    def expired(self) -> bool:
        return self.bot.clock() - self.started >= self.bot.interaction_ttl_s

    async def _progress(self, text: str) -> None:
        if not self.expired:
            await self.interaction.edit_original_response(content=text)

    async def deliver(self, messages: list[OutMessage]) -> None:
        await self.throttle.close()
        if self.expired:
            await self._to_channel(messages)
            return
        first, rest = messages[0], messages[1:]
        await self.interaction.edit_original_response(
            content=first.content,
            embeds=first.embeds,
            attachments=first.files,
            view=first.view,
        )
        for msg in rest:
            await self.interaction.followup.send(
                content=msg.content or discord.utils.MISSING,
                embeds=msg.embeds,
                files=msg.files or discord.utils.MISSING,
                view=msg.view or discord.utils.MISSING,
            )

    async def _to_channel(self, messages: list[OutMessage]) -> None:
        channel = self.interaction.channel
        if not can_post_results(channel):
            log.warning("token expired and cannot post in channel %s", getattr(channel, "id", None))
            return
        await post_ready(channel, messages, self.interaction.user.mention)

    async def fail(self, text: str, *, ephemeral: bool) -> None:
        await self.throttle.close()
        if self.expired:
            channel = self.interaction.channel
            perms = channel_permissions(channel)
            if channel is not None and (perms is None or perms.send_messages):
                await channel.send(f"{self.interaction.user.mention} {text}")
            return
        if ephemeral:
            with contextlib.suppress(discord.HTTPException):
                await self.interaction.delete_original_response()
            await self.interaction.followup.send(text, ephemeral=True)
        else:
            await self.interaction.edit_original_response(content=text, embeds=[], view=None)


class MessageDestination(Destination):
    """Replies to a posted link: ⏳ reaction, one progress reply edited in place, results."""

    def __init__(self, bot: Any, message: discord.Message) -> None:
        super().__init__(bot)
        self.message = message
        self.reply: discord.Message | None = None
        perms = channel_permissions(message.channel)
        self.can_react = perms is None or (perms.add_reactions and perms.read_message_history)

    async def start(self, note: str | None = None) -> None:
        if self.can_react:
            with contextlib.suppress(discord.HTTPException):
                await self.message.add_reaction("⏳")
        queued = progress_text(Progress(stage="queued"))
        self.reply = await self.message.reply(
            queued + (f"\n-# {note}" if note else ""), mention_author=False
        )
        self.throttle._sent = queued  # the queued event must not edit the note away

    async def _progress(self, text: str) -> None:
        if self.reply is not None:
            await self.reply.edit(content=text)

    async def _done_reaction(self, emoji: str) -> None:
        if not self.can_react:
            return
        with contextlib.suppress(discord.HTTPException):
            await self.message.remove_reaction("⏳", self.bot.user)
            await self.message.add_reaction(emoji)

    async def deliver(self, messages: list[OutMessage]) -> None:
        await self.throttle.close()
        first, rest = messages[0], messages[1:]
        if self.reply is not None:
            await self.reply.edit(
                content=first.content,
                embeds=first.embeds,
                attachments=first.files,
                view=first.view,
            )
        else:
            await channel_send(self.message.channel, first, reference=self.message)
        for msg in rest:
            await channel_send(self.message.channel, msg)
        await self._done_reaction("✅")

    async def fail(self, text: str, *, ephemeral: bool) -> None:
        await self.throttle.close()
        if self.reply is not None:
            await self.reply.edit(content=text)
        else:
            await self.message.reply(text, mention_author=False)
        await self._done_reaction("❌")


# ----------------------------------------------------------------------------- the cog
class ClusterCog(commands.Cog):
    clusters = app_commands.Group(
        name="clusters", description="Stored analyses and server settings.", guild_only=True
    )
    links = app_commands.Group(
        name="links",
        description="Reply to Spotify playlist links posted in this server.",
        parent=clusters,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: Any) -> None:
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
            outcome = await handle.result()
            liked: set[str] = set()
            if request.user_id is not None:
                ids = E.representative_ids(outcome.analysis)
                liked = await V.liked_for(self.bot, request.user_id, ids)
            header = "♻️ Unchanged since the last analysis — reused it." if outcome.reused else None
            await dest.deliver(outcome_messages(outcome, liked=liked, header=header))
            return outcome.analysis_id
        except PipelineError as err:
            await self._safe_fail(dest, E.error_message(err), ephemeral=err.ephemeral)
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

    async def _safe_fail(self, dest: Destination, text: str, *, ephemeral: bool) -> None:
        try:
            await dest.fail(text, ephemeral=ephemeral)
        except discord.HTTPException:
            log.warning("could not deliver an error message", exc_info=True)

    async def _on_job_end(
        self, job_id: int, request: AnalysisRequest, outcome: Any, error: Any
    ) -> None:
        """Jobs nobody is waiting for (resumed after a restart) are posted to their channel."""
        if self._closed or job_id in self._awaited or not request.channel_id:
            return
        await self.bot.wait_until_ready()
        channel = self.bot.get_channel(request.channel_id)
        if channel is None:
            return
        if not can_post_results(channel):
            log.warning("resumed job %s: cannot post in channel %s", job_id, request.channel_id)
            return
        mention = f"<@{request.user_id}>" if request.user_id else ""
        try:
            if error is not None:
                await channel.send(f"{mention} {E.error_message(error)}".strip())
                return
            if outcome is None:
                return
            header = "This analysis was interrupted by a restart and has now finished."
            await post_ready(channel, outcome_messages(outcome, header=header), mention)
        except discord.HTTPException:
            log.warning("could not post resumed job %s", job_id, exc_info=True)

    # --------------------------------------------------------------- /cluster
    @app_commands.command(name="cluster", description="Cluster a Spotify playlist by sound.")
    @app_commands.describe(
        playlist="A Spotify playlist or album link (or pick one of yours)",
        k="Number of clusters (2-20); leave empty to choose automatically",
        csv="An Exportify CSV export of a playlist",
        liked="Cluster your Liked Songs (needs /spotify link)",
    )
    async def cluster(
        self,
        interaction: discord.Interaction,
        playlist: str | None = None,
        k: app_commands.Range[int, 2, 20] | None = None,
        csv: discord.Attachment | None = None,
        liked: bool = False,
    ) -> None:
        # Permissions first: it is instant, and the answer IS the response.
        if interaction.guild is not None and await _refused_for_permissions(interaction):
            return
        await interaction.response.defer(thinking=True)
        dest = InteractionDestination(self.bot, interaction)
        try:
            request = await self._build_request(interaction, playlist, k, csv, liked)
        except PipelineError as err:
            await self._safe_fail(dest, E.error_message(err), ephemeral=True)
            return
        await self.run(dest, request)

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
        base = {
            "k": k,
            "user_id": interaction.user.id,
            "guild_id": interaction.guild_id,
            "channel_id": interaction.channel_id,
        }
        if csv is not None:
            text = await read_csv_attachment(csv)
            return AnalysisRequest(csv_text=text, csv_name=csv.filename, **base)
        if liked:
            accounts = self.services.accounts
            if accounts is None or not await accounts.status(interaction.user.id):
                raise PipelineError(
                    "Liked Songs need a linked Spotify account: run `/spotify link` first."
                )
            return AnalysisRequest(liked=True, **base)
        return AnalysisRequest(link=(playlist or "").strip(), **base)

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
        if message.author.bot or message.webhook_id is not None or message.guild is None:
            return
        if message.id in self._handled:
            return
        links = find_links(message.content)
        if not links:
            return
        self._remember(message.id)  # before any await: a replayed event must not pass too
        settings = await self.services.store.get_guild_settings(message.guild.id)
        if not settings.get("links_enabled", True):
            return
        perms = channel_permissions(message.channel)
        if perms is not None:
            if not perms.send_messages:
                log.info("cannot reply in channel %s (no Send Messages)", message.channel.id)
                return
            missing = missing_permissions(perms)
            if missing:
                with contextlib.suppress(discord.HTTPException):
                    await message.reply(
                        missing_text(missing, message.channel), mention_author=False
                    )
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
            guild_id=message.guild.id,
            channel_id=message.channel.id,
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
            rows = await self.services.store.list_analyses(guild_id=interaction.guild_id, limit=15)
            title = "Recent analyses in this server"
        else:
            rows = await self.services.store.list_analyses(user_id=interaction.user.id, limit=15)
            title = "Your recent analyses"
        await interaction.followup.send(embed=E.history_embed(rows, title=title), ephemeral=True)

    @clusters.command(name="show", description="Show a stored analysis again (no refetch).")
    @app_commands.describe(id="The analysis number (see /clusters history)")
    async def show(self, interaction: discord.Interaction, id: app_commands.Range[int, 1]) -> None:
        if await _refused_for_permissions(interaction):
            return
        await interaction.response.defer(thinking=True)
        dest = InteractionDestination(self.bot, interaction)
        try:
            analysis = await self._stored(id, interaction)
            png = await self.services.store.get_file(id, E.SCATTER_NAME)
            liked = await V.liked_for(self.bot, interaction.user.id, E.representative_ids(analysis))
            await dest.deliver(
                result_messages(analysis, png, liked=liked, header=f"Stored analysis #{id}")
            )
        except PipelineError as err:
            await self._safe_fail(dest, E.error_message(err), ephemeral=True)

    async def _stored(self, analysis_id: int, interaction: discord.Interaction) -> Analysis:
        row = await self.services.db.fetchone(
            "SELECT requested_by, guild_id FROM analyses WHERE id = ?", (analysis_id,)
        )
        missing = PipelineError(f"There is no stored analysis #{analysis_id}.")
        if row is None:
            raise missing
        other_guild = row["guild_id"] is not None and row["guild_id"] != interaction.guild_id
        if other_guild and row["requested_by"] != interaction.user.id:
            raise PipelineError(f"Analysis #{analysis_id} was made in another server.")
        # Decoded only once allowed: a large analysis is not read just to be refused.
        analysis = await self.services.store.get_analysis(analysis_id)
        if analysis is None:
            raise missing
        if row["requested_by"] != interaction.user.id:
            analysis.liked = []  # someone else's 💚 marks stay private
        analysis.analysis_id = analysis_id
        return analysis

    @links.command(name="enable", description="Reply to Spotify playlist links posted here.")
    async def links_enable(self, interaction: discord.Interaction) -> None:
        await self._set_links(interaction, True)

    @links.command(name="disable", description="Stop replying to posted playlist links.")
    async def links_disable(self, interaction: discord.Interaction) -> None:
        await self._set_links(interaction, False)

    async def _set_links(self, interaction: discord.Interaction, enabled: bool) -> None:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        await self.services.store.set_links_enabled(interaction.guild_id, enabled)
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
    if not name.lower().endswith(".csv") and ctype not in CSV_TYPES:
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


async def setup(bot: commands.Bot) -> None:
    bot.add_dynamic_items(*V.DYNAMIC_ITEMS)
    await bot.add_cog(ClusterCog(bot))
