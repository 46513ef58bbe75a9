"""Start-up of ``python -m bot`` as an operator sees it.

* Every start-up failure ends in **one line** on stderr (what failed, what to do) and exit code
  1; the traceback is logged at DEBUG (``LOG_LEVEL=DEBUG``). Bad configuration values, a
  rejected token, an unreachable Discord, a corrupted or locked database and an unwritable data
  directory are each recognised; anything else is a bug and keeps its traceback (at ERROR).
* The log says where the database and the settings are, so a bot started from another folder
  never looks like one that lost its data.
* SIGTERM/SIGINT are handled from the first moment (before the database is opened or migrated),
  not only once the bot runs: ``docker stop`` during a long migration stops the bot cleanly.
* A heartbeat file next to the database (``<DATABASE_PATH>.heartbeat``), rewritten every 30 s
  by the event loop, lets ``python -m bot healthcheck`` (the Docker HEALTHCHECK) tell a live bot
  from a dead or hung one without web mode.
* discord.py's two "voice will NOT be supported" warnings are dropped: this bot has no voice.

Nothing here runs for the offline CLI except :func:`load_settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings, get_settings

if TYPE_CHECKING:
    from pydantic import ValidationError

log = logging.getLogger(__name__)

EXIT_STARTUP_FAILED = 1

HEARTBEAT_INTERVAL_S = 30.0
# Healthy while the last beat is younger than this: three missed beats (Docker marks the
# container unhealthy only after its own --retries on top).
HEARTBEAT_MAX_AGE_S = 3 * HEARTBEAT_INTERVAL_S

DISCORD_HOSTS = "discord.com and gateway.discord.gg"


class StartupError(Exception):
    """A start-up failure the operator can fix; ``str()`` is the one line to print."""


# ------------------------------------------------------------------------------- settings
def load_settings() -> Settings:
    """Settings from the environment and ``.env``; a bad value is a :class:`StartupError`."""
    from pydantic import ValidationError

    try:
        try:
            return get_settings()
        except UnicodeDecodeError as exc:
            encoding = _env_file_encoding(exc)
            return Settings(_env_file_encoding=encoding)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise StartupError(_settings_error_text(exc)) from exc


def _env_file_encoding(exc: UnicodeDecodeError) -> str:
    """The encoding to read a ``.env`` that is not UTF-8 with: "utf-16" when it starts with a
    UTF-16 byte-order mark (what Windows PowerShell 5's ``echo … > .env`` and Notepad's
    "Unicode" write; it stopped start-up with a UnicodeDecodeError traceback), else a
    :class:`StartupError` saying where the odd byte is and how to save the file."""
    env = Path(".env")
    try:
        with env.open("rb") as fh:
            head = fh.read(2)
    except OSError:
        head = b""
    if head in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    raise StartupError(
        f".env in {Path.cwd()} is not UTF-8 text (byte {exc.start + 1} is not): save it as "
        "UTF-8 (in Notepad: Save as → Encoding: UTF-8), or move it aside to start with the "
        "defaults."
    ) from exc


def _settings_error_text(exc: ValidationError) -> str:
    # Values are never echoed: some settings are secrets.
    problems = []
    for err in exc.errors():
        name = "_".join(str(part) for part in err["loc"]).upper() or "settings"
        problems.append(f"{name}: {err['msg']}")
    where = f".env in {Path.cwd()}" if Path(".env").is_file() else "the environment"
    return (
        f"invalid setting in {where}: {'; '.join(problems)}. Fix or empty the value "
        "(an empty value means the default; README.md, section Configuration, lists them)."
    )


# ------------------------------------------------------------------------------- logging
class VoiceWarningFilter(logging.Filter):
    """Drops discord.py's "PyNaCl/davey is not installed, voice will NOT be supported".

    discord.py logs both from ``discord.client`` whenever a Client is created without the voice
    extras (Rapptz/discord.py#1719); this bot never joins voice, so they are noise at every start.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).endswith("voice will NOT be supported")


def configure_logging(settings: Settings) -> None:
    """discord.py's log format at ``LOG_LEVEL``, without the voice warnings."""
    import discord

    discord.utils.setup_logging(level=getattr(logging, settings.log_level.upper(), logging.INFO))
    silence_voice_warnings()


def silence_voice_warnings() -> None:
    logger = logging.getLogger("discord.client")
    if not any(isinstance(f, VoiceWarningFilter) for f in logger.filters):
        logger.addFilter(VoiceWarningFilter())


# ------------------------------------------------------------------------------- pre-flight
def check_token(settings: Settings) -> None:
    """What a copied DISCORD_TOKEN can carry that no token has, said before Discord is asked
    (it answered "rejected", and the operator looked for a wrong token): the quotes ``docker run
    --env-file`` keeps, a "Bot " prefix (discord.py adds it), a space or line break inside.
    The token itself is never printed."""
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    problem = None
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        problem = (
            "is wrapped in quotes (docker run --env-file keeps them as part of the value): "
            "remove them"
        )
    elif token.lower().startswith("bot "):
        problem = "starts with “Bot ”: leave that out, the bot adds it itself"
    elif any(c.isspace() for c in token):
        problem = "has a space or line break in it: copy the token again as one piece"
    if problem:
        raise StartupError(f"DISCORD_TOKEN {problem}.")


def check_data_dir(db_path: Path) -> None:
    """The database's folder exists (created if needed) and a file can be written in it."""
    if str(db_path) == ":memory:":
        return
    if db_path.is_dir():  # DATABASE_PATH=/data: the volume, not the file in it
        raise StartupError(
            f"DATABASE_PATH {db_path.resolve()} is a folder; it names the database file: set "
            f"it to {db_path.resolve() / 'playlist_clusters.sqlite3'}."
        )
    folder = db_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A real write, not os.access: root ignores permission bits but not read-only mounts.
        with tempfile.TemporaryFile(dir=folder):
            pass
        if db_path.exists() and not os.access(db_path, os.R_OK | os.W_OK):
            raise PermissionError(13, "Permission denied", str(db_path))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = "a file is in the way of the folder"
        raise StartupError(
            f"cannot write the data directory {folder.resolve()} ({reason}). Set DATABASE_PATH "
            "to a file in a writable folder (with Docker, use a named volume at /data, or make "
            "a host folder writable for uid 1000)."
        ) from exc


def check_encryption_key(settings: Settings) -> None:
    """The token key works (never: linking silently off, "no Spotify app configured").

    With TOKEN_ENCRYPTION_KEY unset, an existing ``<DATABASE_PATH>.key`` is read. A missing one
    is not created here: the account service does that once the database has opened, so a
    corrupted database never gets a fresh key file that a restored backup would not match.
    """
    from bot.errors import StorageError
    from storage.accounts import key_file_path, load_cipher

    key_file = key_file_path(settings)
    if settings.token_encryption_key is None and (key_file is None or not key_file.exists()):
        return
    try:
        load_cipher(settings)
    except StorageError as exc:
        if settings.token_encryption_key is not None:
            raise StartupError(exc.user_message) from exc
        raise StartupError(
            f"the token encryption key file {key_file} is damaged (not a Fernet "
            "key). Restore it from your backup; deleting it instead makes every member link "
            "their Spotify account again."
        ) from exc
    except OSError as exc:
        raise StartupError(
            f"cannot read the token encryption key file {key_file} "
            f"({exc.strerror or exc}). Fix its permissions or set TOKEN_ENCRYPTION_KEY."
        ) from exc


def describe_locations(settings: Settings) -> None:
    """Log where the settings, the database and the token key are (absolute paths)."""
    from storage.accounts import key_file_path

    env = Path(".env")
    if env.is_file():
        log.info("Settings: environment and %s", env.resolve())
    else:
        log.info("Settings: environment only (no .env in %s)", Path.cwd())
    db_path = Path(settings.database_path)
    if settings.database_url_value:
        from storage.postgres import redact_url

        log.info("Database: %s", redact_url(settings.database_url_value))
    else:
        log.info("Database: %s", db_path if str(db_path) == ":memory:" else db_path.resolve())
    if settings.token_encryption_key is None:
        key = key_file_path(settings)
        if key is not None:
            log.info("Token encryption key: %s", key.resolve())


# ------------------------------------------------------------------------------- failures
def explain(exc: BaseException) -> str | None:
    """The one line for a failure the operator can fix; None for an unexpected one (a bug)."""
    import aiohttp
    import discord

    from bot.errors import PipelineError

    if isinstance(exc, StartupError):
        return str(exc)
    if isinstance(exc, SystemExit) and isinstance(exc.code, str):
        # run_bot's own sentences: a rejected token (LoginFailure), a refused intent.
        return exc.code
    if isinstance(exc, PipelineError):  # StorageError: corrupted, locked, newer schema, …
        return exc.user_message
    if isinstance(exc, discord.DiscordServerError):
        return (
            f"Discord is having trouble (HTTP {exc.status}); the bot could not log in. "
            "Start it again in a few minutes (https://discordstatus.com)."
        )
    if isinstance(exc, discord.HTTPException):
        return (
            f"Discord refused the login (HTTP {exc.status}: {exc.text or exc}). "
            "Check DISCORD_TOKEN and try again later."
        )
    network = (
        aiohttp.ClientConnectionError,  # refused, DNS, TLS, reset (ClientConnectorError, …)
        discord.GatewayNotFound,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
    )
    if isinstance(exc, network):
        where = ""
        if isinstance(exc, aiohttp.ClientConnectorError):
            where = f" at {exc.host}:{exc.port}"
        return (
            f"could not reach Discord{where} ({_short_cause(exc)}). Check this machine's internet "
            f"connection, DNS and firewall (the bot needs outbound HTTPS to {DISCORD_HOSTS}), "
            "then start it again."
        )
    return None


def _short_cause(exc: BaseException) -> str:
    """The innermost OS-level reason, e.g. "Connection refused", "Name or service not known"."""
    seen: set[int] = set()
    inner: BaseException = exc
    while id(inner) not in seen:
        seen.add(id(inner))
        nxt = getattr(inner, "os_error", None) or inner.__cause__ or inner.__context__
        if nxt is None:
            break
        inner = nxt
    if isinstance(inner, socket.gaierror) and inner.strerror:
        return inner.strerror
    if isinstance(inner, OSError) and inner.errno and inner.errno > 0:
        return os.strerror(inner.errno)  # asyncio's strerror is "Connect call failed (…)"
    if isinstance(inner, TimeoutError):
        return "timed out"
    return (str(inner) or type(inner).__name__).strip().rstrip(".")


def report_failure(exc: BaseException) -> int:
    """Log the details, print the one line, return the exit code."""
    line = explain(exc)
    if line is None:
        log.error("The bot stopped on an unexpected error (a bug; please report it):", exc_info=exc)
        line = (
            f"the bot stopped on an unexpected error: {type(exc).__name__}: {exc}. "
            "The traceback is in the log above."
        )
    else:
        log.debug("Start-up failure details", exc_info=exc)
    print(f"error: {line}", file=sys.stderr, flush=True)
    return EXIT_STARTUP_FAILED


# ------------------------------------------------------------------------------- heartbeat
def heartbeat_path(settings: Settings) -> Path | None:
    db_path = Path(settings.database_path)
    if str(db_path) == ":memory:":
        return None
    return db_path.with_name(db_path.name + ".heartbeat")


def write_heartbeat(path: Path, now: float) -> None:
    """Atomically write ``<pid> <unix time>`` (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()} {now:.0f}\n", encoding="ascii")
    os.replace(tmp, path)


async def heartbeat_loop(
    path: Path,
    *,
    interval_s: float = HEARTBEAT_INTERVAL_S,
    clock: Callable[[], float] = time.time,
) -> None:
    """Beat until cancelled; a beat that cannot be written is logged, never fatal."""
    while True:
        try:
            write_heartbeat(path, clock())
        except OSError as exc:
            log.warning("Could not write the heartbeat file %s: %s", path, exc.strerror or exc)
        await asyncio.sleep(interval_s)


def check_health(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    max_age_s: float = HEARTBEAT_MAX_AGE_S,
) -> tuple[bool, str]:
    """(healthy, one line) from the heartbeat file that a running bot keeps fresh."""
    path = heartbeat_path(settings)
    if path is None:
        return False, "no heartbeat with an in-memory database"
    try:
        pid_text, stamp_text = path.read_text(encoding="ascii").split()
        age = clock() - float(stamp_text)
    except FileNotFoundError:
        return False, f"no heartbeat file {path}: the bot is not running (or still starting)"
    except (OSError, ValueError) as exc:
        return False, f"unreadable heartbeat file {path}: {exc}"
    if age > max_age_s:
        return False, f"last heartbeat {age:.0f} s ago (pid {pid_text}): the bot is stuck or gone"
    return True, f"healthy: last heartbeat {max(age, 0):.0f} s ago (pid {pid_text})"


def healthcheck_main() -> int:
    """``python -m bot healthcheck``: exit 0 when the bot's heartbeat is fresh, else 1."""
    try:
        settings = load_settings()
    except StartupError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    ok, line = check_health(settings)
    print(line if ok else f"unhealthy: {line}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


# ------------------------------------------------------------------------------- running
@contextlib.contextmanager
def _stop_on_signals(task: asyncio.Task[object], stopped_by: list[str]) -> Iterator[None]:
    """SIGTERM/SIGINT cancel ``task`` until the bot installs its own graceful handlers."""
    loop = asyncio.get_running_loop()
    installed = []

    def stop(name: str) -> None:
        stopped_by.append(name)
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop, sig.name)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _serve(settings: Settings) -> str | None:
    """Pre-flight checks, heartbeat, then the bot. Returns the signal that stopped start-up."""
    from bot.app import run_bot

    task = asyncio.current_task()
    assert task is not None
    stopped_by: list[str] = []
    beat = None
    path = None
    with _stop_on_signals(task, stopped_by):
        try:
            describe_locations(settings)
            check_token(settings)
            check_data_dir(Path(settings.database_path))
            check_encryption_key(settings)
            path = heartbeat_path(settings)
            if path is not None:
                beat = asyncio.create_task(heartbeat_loop(path), name="heartbeat")
            await run_bot(settings, configure_logging=False)
        except asyncio.CancelledError:
            if not stopped_by:
                raise
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
                if path is not None:
                    with contextlib.suppress(OSError):
                        path.unlink()
    return stopped_by[0] if stopped_by else None


async def serve(settings: Settings) -> int:
    """Run the bot until it stops; the process exit code (0, or 1 after one error line)."""
    try:
        stopped_by = await _serve(settings)
    except (Exception, SystemExit) as exc:
        return report_failure(exc)
    if stopped_by:
        log.info("Stopped by %s during start-up", stopped_by)
    return 0


def run(settings: Settings, *, setup_logging: bool = True) -> int:
    """``python -m bot`` with a token: logging, then :func:`serve` in a new event loop."""
    if setup_logging:
        configure_logging(settings)
    else:
        silence_voice_warnings()
    return asyncio.run(serve(settings))
