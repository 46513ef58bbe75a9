"""The Discord bot: a ``commands.Bot`` that owns the long-lived services (composition root).

``python -m bot`` (bot/__main__.py) calls :func:`run_bot` when DISCORD_TOKEN is set. Start-up
(``setup_hook``) opens the services, loads the cogs, starts the job worker and the OAuth
callback web server (when ``PUBLIC_BASE_URL`` is set) and syncs the application commands
*deliberately*: instantly to ``DISCORD_DEV_GUILD_ID`` when set, globally
only when ``DISCORD_SYNC_GLOBAL`` is true (or an owner runs ``!sync`` / ``/admin sync``), so a
restart never burns the global command-sync rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import discord
from discord.ext import commands

from bot import __version__
from bot.config import Settings
from bot.safety import clamp_secret_loggers
from bot.services import Services, build_services, close_services
from bot.web import CallbackServer
from cogs.utils.errors import ClustersTree
from cogs.utils.views import AnalysisCache

log = logging.getLogger(__name__)

EXTENSIONS = [
    "cogs.cluster",
    "cogs.about",
    "cogs.admin",
    "cogs.spotify",
    "cogs.digest",
    "cogs.privacy",
]
# The bot is useless without these; the others (linking, digests) may fail alone.
CORE_EXTENSIONS = frozenset({"cogs.cluster", "cogs.about", "cogs.admin"})

# Interaction tokens live 15 minutes; stop using them a little earlier.
INTERACTION_TTL_S = 14 * 60


def make_intents() -> discord.Intents:
    """Guilds + guild messages + message content (to see posted playlist links)."""
    intents = discord.Intents.default()
    intents.message_content = True
    intents.members = False
    intents.presences = False
    return intents


class PlaylistClustersBot(commands.Bot):
    """The bot. Cogs reach the services as ``bot.services``.

    ``interaction_ttl_s`` / ``clock`` decide when an interaction token is too old to use (results
    then go to the channel); ``wall_clock`` (Unix seconds) dates what must survive a restart,
    such as a persistent button's expiry carried in its custom id; tests inject them.
    ``manage_services``: start the queue (and the OAuth callback server) in ``setup_hook`` and
    close every service in ``close()``. Errors of app commands are answered by
    :class:`cogs.utils.errors.ClustersTree`.
    """

    services: Services
    analysis_cache: AnalysisCache  # recently shown analyses (component clicks page through them)
    web_server: CallbackServer | None  # Spotify's OAuth redirect target, when PUBLIC_BASE_URL set

    def __init__(
        self,
        services: Services,
        *,
        interaction_ttl_s: float = INTERACTION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        manage_services: bool = True,
        extensions: list[str] | None = None,
        progress_interval_s: float = 1.5,
        **client_options: Any,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned_or("!"),
            intents=make_intents(),
            help_command=None,
            # Nobody is pinged unless a send says so (issue #13): names from data (playlists,
            # tracks, files) can't mention anyone; the requester is named per message.
            allowed_mentions=discord.AllowedMentions.none(),
            activity=discord.Activity(type=discord.ActivityType.listening, name="/cluster"),
            tree_cls=ClustersTree,
            **client_options,
        )
        self.services = services
        self.analysis_cache = AnalysisCache()
        self.web_server = None
        self.interaction_ttl_s = interaction_ttl_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.manage_services = manage_services
        self.extensions_to_load = list(EXTENSIONS if extensions is None else extensions)
        self.progress_interval_s = progress_interval_s
        self.version = __version__
        self.failed_extensions: list[str] = []
        self.closing = False
        self.synced: list[str] = []  # scopes synced ("guild:<id>", "global"), for /about + tests
        self._mode_probe: asyncio.Task[str] | None = None

    # ----------------------------------------------------------------------------- start-up
    async def setup_hook(self) -> None:
        clamp_secret_loggers()  # also when the bot is embedded without run_bot
        for ext in self.extensions_to_load:
            try:
                await self.load_extension(ext)
            except commands.ExtensionNotFound:
                log.warning("Extension %s not found; skipped", ext)
            except commands.ExtensionFailed:
                if ext in CORE_EXTENSIONS:
                    raise
                log.exception("Extension %s failed to load; the rest of the bot runs", ext)
                self.failed_extensions.append(ext)
        if self.manage_services:
            await self._start_services()
        await self.sync_commands(
            guild_id=self.services.settings.discord_dev_guild_id,
            globally=self.services.settings.discord_sync_global,
        )

    async def _start_services(self) -> None:
        spotify = self.services.ctx.spotify
        if spotify is not None:
            # One request per process (a 403 in Development Mode), so the first job doesn't pay
            # for it and /about answers at once. In the background: start-up never waits on it.
            self._mode_probe = asyncio.create_task(spotify.detect_mode(), name="spotify-mode")
        await self.services.queue.start()  # the digest scheduler is started by its cog
        await self._start_web_server()

    async def _start_web_server(self) -> None:
        """Spotify's OAuth redirect lands here when ``PUBLIC_BASE_URL`` is set; a port that is
        taken only disables the web callback (logged), the bot runs."""
        accounts = self.services.accounts
        if accounts is None or not getattr(accounts, "web_callback", False):  # tests' stubs
            return
        server = CallbackServer(accounts, accounts.settings)
        try:
            await server.start()
        except OSError as exc:
            log.error(
                "Could not start the OAuth callback server on %s:%s (%s); /spotify link "
                "will not complete until it can.",
                accounts.settings.web_host,
                accounts.settings.web_port,
                exc,
            )
        else:
            self.web_server = server

    async def sync_commands(self, *, guild_id: int | None, globally: bool) -> list[str]:
        """Sync app commands to a dev guild (instant) and/or globally (rate limited, slow)."""
        done: list[str] = []
        if guild_id:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            cmds = await self.tree.sync(guild=guild)
            log.info("Synced %d commands to guild %s", len(cmds), guild_id)
            done.append(f"guild:{guild_id}")
        if globally:
            cmds = await self.tree.sync()
            log.info("Synced %d commands globally", len(cmds))
            done.append("global")
        if not done:
            log.info(
                "Commands not synced (set DISCORD_DEV_GUILD_ID or DISCORD_SYNC_GLOBAL, "
                "or run !sync as the bot owner)"
            )
        self.synced += done
        return done

    async def on_ready(self) -> None:
        log.info(
            "Logged in as %s (%s) in %d guild(s)",
            self.user,
            self.user and self.user.id,
            len(self.guilds),
        )

    # ----------------------------------------------------------------------------- shutdown
    async def close(self) -> None:
        self.closing = True
        if self._mode_probe is not None:
            self._mode_probe.cancel()
        try:
            if self.web_server is not None:
                server, self.web_server = self.web_server, None
                await server.close()
            if self.manage_services:
                await close_services(self.services)
        finally:
            await super().close()


class ShardedPlaylistClustersBot(PlaylistClustersBot, commands.AutoShardedBot):
    """The bot on several gateway shards in one process (discord.py's AutoShardedBot).

    Run one process per group of shards: ``SHARD_COUNT`` in total, ``SHARD_IDS`` here. Every
    process shares the database, so stored analyses, persistent buttons (DynamicItems that
    carry the analysis id) and digests (claimed by compare-and-set) work from any shard.
    """


def make_bot(services: Services, **kwargs: Any) -> PlaylistClustersBot:
    """The bot for ``services.settings``: sharded when SHARD_COUNT or SHARD_IDS is set."""
    settings = services.settings
    if settings.shard_count is None:
        return PlaylistClustersBot(services, **kwargs)
    return ShardedPlaylistClustersBot(
        services, shard_count=settings.shard_count, shard_ids=settings.shard_id_list, **kwargs
    )


async def run_bot(settings: Settings, *, configure_logging: bool = True) -> None:
    """Start the bot with ``settings`` (blocks until it stops; SIGTERM/SIGINT close it cleanly).

    Raises SystemExit with an actionable message for a rejected token or a privileged intent
    that is not enabled in the Developer Portal. The token itself is never logged.
    """
    if configure_logging:
        discord.utils.setup_logging(
            level=getattr(logging, settings.log_level.upper(), logging.INFO)
        )
    # Loggers that print secrets at DEBUG (bearer tokens, OAuth codes and states, interaction
    # tokens) are held at INFO whatever LOG_LEVEL says (bot.safety.SECRET_LOGGERS).
    clamp_secret_loggers()
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise SystemExit("DISCORD_TOKEN is not set.")
    services = await build_services(settings)
    hold = getattr(services.db, "hold_gateway_lock", None)  # PostgreSQL: one process per shard
    if hold is not None:
        try:
            await hold(settings.shard_id_list, settings.shard_count)
        except BaseException:
            await close_services(services)
            raise
    bot = make_bot(services)
    signals = _install_signal_handlers(bot)
    try:
        async with bot:
            await bot.start(settings.discord_token.get_secret_value().strip())
    except discord.LoginFailure:
        raise SystemExit(
            "Discord rejected DISCORD_TOKEN. Copy the bot token again from the Developer "
            "Portal (Applications → your app → Bot → Reset Token)."
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise SystemExit(
            "Discord refused the Message Content intent. Enable it in the Developer Portal "
            "(Applications → your app → Bot → Privileged Gateway Intents → Message Content)."
        ) from None
    finally:
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.remove_signal_handler(sig)


def _install_signal_handlers(bot: PlaylistClustersBot) -> list[int]:
    """SIGTERM (docker stop, systemd) and SIGINT close the bot gracefully."""
    import signal

    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
            installed.append(sig)
    return installed
