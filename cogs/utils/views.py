"""Persistent components for stored analyses (they keep working after a restart).

Every component is a :class:`discord.ui.DynamicItem` whose custom id carries what it needs
(scheme ``pc:<action>:<analysis_id>:<arg>``, see notes/apis.md), so nothing has to be kept in
memory between the message and the click:

* ``pc:browse:<aid>:<part>``        select a cluster to browse (part = which select, 25 each)
* ``pc:page:<aid>:<cluster>:<page>:<p|n>``  previous/next page of a cluster's tracks
* ``pc:dl:<aid>:<md|csv|profile>``  download the markdown report / the CSV / the sound profile
  PNG (ephemeral)
* ``pc:save:<aid>:<cluster>``       save a cluster as a playlist in the user's Spotify account

Personal, expiring components elsewhere follow the same scheme with the member's id and an
expiry (Unix seconds, :func:`expires_at`) in the custom id: ``pc:forget:…`` (cogs/privacy.py),
``pc:paste:…`` (cogs/spotify.py).

Callbacks never raise: DynamicItem errors are only logged by discord.py, so each one turns a
failure into an ephemeral message.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, cast

import discord

from bot import render
from bot.errors import PipelineError
from bot.models import ARTEFACTS, Analysis
from bot.safety import safe_export
from cogs.utils import embeds as E
from cogs.utils.errors import answer_error

if TYPE_CHECKING:
    from bot.app import PlaylistClustersBot
    from storage.store import Store

log = logging.getLogger(__name__)

# Page buttons edit their message in the callback itself (within Discord's 3 s).
LIKED_IN_CALLBACK_TIMEOUT_S = 2.0

FILES = {
    "md": (ARTEFACTS.markdown, "Report", "📄"),
    "csv": (ARTEFACTS.csv, "Tracks", "📊"),
    "profile": (ARTEFACTS.profile, "Profile", E.PROFILE_EMOJI),
}  # short labels: three buttons fit one row at 420 px ("Report (.md)" … wrapped to two)
SELECT_OPTIONS = 25
MAX_SELECTS = 3  # + 1 row of buttons = 4 of the 5 allowed action rows


# ----------------------------------------------------------------------------- loading
class AnalysisCache:
    """A few recently used analyses, so paging doesn't re-read a large JSON blob per click.

    A hit is checked against storage first (one primary-key read, not the blob): with several
    bot processes on one database ("Running at scale"), ``/privacy delete`` answered by another
    process clears only that process's cache, and this one must not show the deleted analysis
    again. Analysis ids are never reused (AUTOINCREMENT / identity), so "still stored" is
    "still the same analysis"."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: OrderedDict[int, Analysis] = OrderedDict()

    async def get(self, store: Store, analysis_id: int) -> Analysis | None:
        if analysis_id in self._items:
            if await store.analyses.owner(analysis_id) is None:  # deleted, maybe elsewhere
                del self._items[analysis_id]
                return None
            self._items.move_to_end(analysis_id)
            return self._items[analysis_id]
        analysis = await store.analyses.get(analysis_id)
        if analysis is not None:
            if analysis.analysis_id is None:
                analysis.analysis_id = analysis_id
            self._items[analysis_id] = analysis
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return analysis


def bot_of(interaction: discord.Interaction) -> PlaylistClustersBot:
    """The interaction's client, as the project's bot class (the only client there is)."""
    return cast("PlaylistClustersBot", interaction.client)


async def load_analysis(interaction: discord.Interaction, analysis_id: int) -> Analysis:
    bot = bot_of(interaction)
    analysis = await bot.analysis_cache.get(bot.services.store, analysis_id)
    if analysis is None:
        raise PipelineError(f"Analysis #{analysis_id} is no longer stored.")
    return analysis


async def liked_for(
    client: PlaylistClustersBot,
    user_id: int,
    track_ids: list[str],
    *,
    timeout_s: float | None = None,
) -> set[str]:
    """💚 marks: which of ``track_ids`` the user saved (empty when not linked or on error).

    ``timeout_s`` bounds the Spotify look-up where an interaction must be answered within
    Discord's 3 seconds: past it the page is shown without marks.
    """
    accounts = client.services.accounts
    if accounts is None or not track_ids:
        return set()
    try:
        if not await accounts.status(user_id):
            return set()
        return set(await asyncio.wait_for(accounts.liked_among(user_id, track_ids), timeout_s))
    except PipelineError:
        return set()
    except TimeoutError:
        log.info("💚 look-up took over %.1f s; page shown without marks", timeout_s)
        return set()
    except Exception:
        log.warning("liked_among failed", exc_info=True)
        return set()


def expires_at(client: PlaylistClustersBot, seconds: float) -> int:
    """When a personal component stops being valid, in Unix seconds (carried in its custom id,
    so it is still known after a restart; rounded up, so it never expires early)."""
    return math.ceil(client.wall_clock() + seconds)


def has_expired(client: PlaylistClustersBot, until: int) -> bool:
    return client.wall_clock() >= until


class Guarded:
    """Mixin for the items below: ``callback`` runs :meth:`act`, and any error becomes a private
    message (discord.py only logs component errors; they never reach the command tree)."""

    async def act(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self.act(interaction)
        except Exception as err:
            await answer_error(interaction, err, type(self).__name__)


# ----------------------------------------------------------------------------- items
def _button(
    custom_id: str,
    label: str,
    style: discord.ButtonStyle,
    *,
    emoji: str | None = None,
    disabled: bool = False,
) -> discord.ui.Button[Any]:
    return discord.ui.Button(
        label=label, style=style, emoji=emoji, custom_id=custom_id, disabled=disabled
    )


def cluster_option_label(analysis: Analysis, index: int) -> str:
    c = analysis.clusters[index]
    size = f" · {c.size} track{'s' if c.size != 1 else ''}"
    return E.truncate(f"{c.index + 1} · {E.sounds_like(c)}", 100 - len(size)) + size


class BrowseSelect(
    Guarded,
    discord.ui.DynamicItem[discord.ui.Select],
    template=r"pc:browse:(?P<aid>[0-9]+):(?P<part>[0-9]+)",
):
    """Pick a cluster → an ephemeral, pageable list of all its tracks."""

    def __init__(self, analysis_id: int, part: int, analysis: Analysis | None = None) -> None:
        options = [discord.SelectOption(label="…", value="0")]
        if analysis is not None:
            start = part * SELECT_OPTIONS
            options = [
                discord.SelectOption(
                    label=cluster_option_label(analysis, i),
                    value=str(i),
                )
                for i in range(start, min(start + SELECT_OPTIONS, len(analysis.clusters)))
            ]
        placeholder = "Browse a cluster: every track, Save as playlist…"
        if part:
            placeholder = f"Browse clusters {part * SELECT_OPTIONS + 1}+…"
        super().__init__(
            discord.ui.Select(
                custom_id=f"pc:browse:{analysis_id}:{part}",
                placeholder=placeholder,
                options=options,
                min_values=1,
                max_values=1,
            )
        )
        self.analysis_id = analysis_id
        self.part = part

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> BrowseSelect:
        return cls(int(match["aid"]), int(match["part"]))

    async def act(self, interaction: discord.Interaction) -> None:
        # Acknowledge first: the page waits on the store and on Spotify (💚 marks).
        await interaction.response.defer(ephemeral=True, thinking=True)
        index = int(self.item.values[0])
        embed, view = await browse_page(interaction, self.analysis_id, index, 0)
        await interaction.followup.send(embed=embed, view=view, ephemeral=True)


class PageButton(
    Guarded,
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"pc:page:(?P<aid>[0-9]+):(?P<c>[0-9]+):(?P<p>[0-9]+)(?::(?P<d>[pn]))?",
):
    """Previous/next page of a cluster's tracks (edits the ephemeral message in place)."""

    def __init__(
        self, analysis_id: int, cluster: int, page: int, direction: str, *, disabled: bool = False
    ) -> None:
        label = "◀ Prev" if direction == "p" else "Next ▶"
        custom_id = f"pc:page:{analysis_id}:{cluster}:{page}:{direction}"
        super().__init__(
            _button(custom_id, label, discord.ButtonStyle.secondary, disabled=disabled)
        )
        self.analysis_id, self.cluster, self.page = analysis_id, cluster, page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> PageButton:
        return cls(int(match["aid"]), int(match["c"]), int(match["p"]), match["d"] or "n")

    async def act(self, interaction: discord.Interaction) -> None:
        embed, view = await browse_page(interaction, self.analysis_id, self.cluster, self.page)
        await interaction.response.edit_message(embed=embed, view=view)


class DownloadButton(
    Guarded,
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"pc:dl:(?P<aid>[0-9]+):(?P<kind>md|csv|profile)",
):
    """Send the stored markdown report / CSV / sound profile as an ephemeral attachment."""

    def __init__(self, analysis_id: int, kind: str) -> None:
        _, label, emoji = FILES[kind]
        style = discord.ButtonStyle.secondary
        super().__init__(_button(f"pc:dl:{analysis_id}:{kind}", label, style, emoji=emoji))
        self.analysis_id, self.kind = analysis_id, kind

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> DownloadButton:
        return cls(int(match["aid"]), match["kind"])

    async def act(self, interaction: discord.Interaction) -> None:
        name = FILES[self.kind][0]
        filename = f"analysis-{self.analysis_id}-{name}"
        if self.kind == "md":
            await self._send_report(interaction, filename)
            return
        if self.kind == "profile":
            await self._send_profile(interaction, filename)
            return
        data = await bot_of(interaction).services.store.analyses.file(self.analysis_id, name)
        if data is None:
            raise PipelineError(f"The {name} of analysis #{self.analysis_id} is not stored.")
        # Files stored by older versions were not escaped: served safe whatever wrote them.
        data = await asyncio.to_thread(safe_export, name, data)
        if len(data) > E.MAX_FILE_BYTES:
            raise PipelineError(f"{name} is larger than Discord's 10 MiB file limit.")
        await interaction.response.send_message(file=E.text_file(data, filename), ephemeral=True)

    async def _send_report(self, interaction: discord.Interaction, filename: str) -> None:
        """report.md rendered for whoever clicks: the 💚 column holds the clicker's own saved
        tracks (one member's data, so the stored report has none and nobody else's show)."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # the look-up may take s
        analysis = await load_analysis(interaction, self.analysis_id)
        liked = await liked_for(
            bot_of(interaction),
            interaction.user.id,
            render.report_track_ids(analysis),
            timeout_s=5,  # deferred above, so not bound by the 3-second acknowledgement
        )
        text = await asyncio.to_thread(render.render_markdown, analysis, liked=liked)
        data = text.encode("utf-8")
        if len(data) > E.MAX_FILE_BYTES:
            raise PipelineError("report.md is larger than Discord's 10 MiB file limit.")
        await interaction.followup.send(file=E.text_file(data, filename), ephemeral=True)

    async def _send_profile(self, interaction: discord.Interaction, filename: str) -> None:
        """profile.png as stored, or drawn now for analyses stored before it existed."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # drawing takes ~1 s
        store = bot_of(interaction).services.store
        data = await store.analyses.file(self.analysis_id, ARTEFACTS.profile)
        if not data:
            analysis = await load_analysis(interaction, self.analysis_id)
            data = await asyncio.to_thread(render.render_profile, analysis)
        await interaction.followup.send(file=E.scatter_file(data, filename), ephemeral=True)


class SaveButton(
    Guarded,
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"pc:save:(?P<aid>[0-9]+):(?P<c>[0-9]+)",
):
    """Save a cluster as a new playlist in the clicking user's Spotify account."""

    def __init__(self, analysis_id: int, cluster: int) -> None:
        custom_id = f"pc:save:{analysis_id}:{cluster}"
        style = discord.ButtonStyle.success
        super().__init__(_button(custom_id, "Save as playlist", style, emoji="💾"))
        self.analysis_id, self.cluster = analysis_id, cluster

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> SaveButton:
        return cls(int(match["aid"]), int(match["c"]))

    async def act(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        accounts = bot_of(interaction).services.accounts
        if accounts is None:
            raise PipelineError(
                "Saving playlists needs Spotify account linking, which this bot's "
                "host has not set up."
            )
        if not await accounts.status(interaction.user.id):
            raise PipelineError(
                "Link your Spotify account first with `/spotify link`, then press "
                "**Save as playlist** again."
            )
        analysis = await load_analysis(interaction, self.analysis_id)
        if not 0 <= self.cluster < len(analysis.clusters):
            raise PipelineError("That cluster no longer exists in this analysis.")
        c = analysis.clusters[self.cluster]
        name = E.truncate(f"{analysis.source.name} · {E.cluster_title(c)}", 100)
        desc = E.truncate(
            f"{c.description} — made by Playlist Clusters from {analysis.source.name}", 300
        )
        meta = await accounts.save_cluster(interaction.user.id, name, desc, list(c.track_ids))
        link = meta.url or f"https://open.spotify.com/playlist/{meta.id}"
        await interaction.followup.send(
            f"💾 Saved **{E.escape(meta.name)}** ({len(c.track_ids)} tracks): {link}",
            ephemeral=True,
        )


DYNAMIC_ITEMS = (BrowseSelect, PageButton, DownloadButton, SaveButton)


# ----------------------------------------------------------------------------- builders
async def browse_page(
    interaction: discord.Interaction, analysis_id: int, index: int, page: int
) -> tuple[discord.Embed, discord.ui.View]:
    analysis = await load_analysis(interaction, analysis_id)
    if not 0 <= index < len(analysis.clusters):
        raise PipelineError("That cluster no longer exists in this analysis.")
    cluster = analysis.clusters[index]
    pages = E.page_count(cluster)
    page = min(max(0, page), pages - 1)
    ids = cluster.track_ids[page * E.PAGE_SIZE : (page + 1) * E.PAGE_SIZE]
    liked = await liked_for(
        bot_of(interaction), interaction.user.id, ids, timeout_s=LIKED_IN_CALLBACK_TIMEOUT_S
    )
    embed = E.browse_embed(analysis, cluster, page, liked=liked)
    return embed, page_view(analysis_id, index, page, pages)


def page_view(analysis_id: int, cluster: int, page: int, pages: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(PageButton(analysis_id, cluster, max(0, page - 1), "p", disabled=page <= 0))
    view.add_item(
        PageButton(analysis_id, cluster, min(pages - 1, page + 1), "n", disabled=page >= pages - 1)
    )
    view.add_item(SaveButton(analysis_id, cluster))
    return view


def result_view(analysis: Analysis, *, profile: bool = True) -> discord.ui.View | None:
    """Browse select(s) + download buttons for a stored analysis (None when not stored);
    ``profile``: a Profile button too (when the result does not show the sound profile)."""
    aid = analysis.analysis_id
    if aid is None:
        return None
    view = discord.ui.View(timeout=None)
    n = len(analysis.clusters)
    for part in range(min(MAX_SELECTS, -(-n // SELECT_OPTIONS))):
        view.add_item(BrowseSelect(aid, part, analysis))
    view.add_item(DownloadButton(aid, "md"))
    view.add_item(DownloadButton(aid, "csv"))
    if profile:
        view.add_item(DownloadButton(aid, "profile"))
    return view
