"""Start-up as an operator meets it: one readable line and exit code 1 for every failure,
SIGTERM handled before the database migrates, the heartbeat health check, ``--version``."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import discord
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot import __version__, startup
from bot.__main__ import main
from bot.config import Settings, get_settings
from bot.errors import StorageError
from tests.fakes.discord_fixtures import discord_test_settings

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a bot process: only what the test sets, no .env (cwd is tmp_path)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISCORD_", "SPOTIFY_", "RECCOBEATS_", "DATABASE_", "TOKEN_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_PATH=str(tmp_path / "data" / "bot.sqlite3"),
        TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        WORKER_PROCESSES="0",
        RECCOBEATS_ENABLED="false",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def _launcher(tmp_path: Path, api_base: str) -> Path:
    """``python -m bot`` with discord.py pointed at ``api_base`` (how the fakes are reached)."""
    script = tmp_path / "launch_bot.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            import discord.http
            discord.http.Route.BASE = {api_base!r}
            from bot.__main__ import main
            sys.exit(main([]))
            """
        )
    )
    return script


def test_unreachable_discord_ends_in_one_line_and_exit_code_1(tmp_path: Path) -> None:
    api_base = f"http://127.0.0.1:{_closed_port()}/api/v10"
    proc = subprocess.run(
        [sys.executable, str(_launcher(tmp_path, api_base))],
        cwd=tmp_path,
        env=_bot_env(tmp_path, DISCORD_TOKEN="not.a.real-token"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("error: could not reach Discord at 127.0.0.1:"), lines[-1]
    assert "(Connection refused)" in lines[-1] and "firewall" in lines[-1]
    assert sum(ln.startswith("error:") for ln in lines) == 1
    # Nothing else above INFO: no aiohttp noise, no voice warnings (PyNaCl, davey).
    assert not [ln for ln in lines[:-1] if "WARNING" in ln or "ERROR" in ln], lines
    assert "voice will NOT be supported" not in proc.stderr
    # The log says where the database is.
    assert f"Database: {tmp_path / 'data' / 'bot.sqlite3'}" in proc.stderr
    assert "not.a.real-token" not in proc.stderr + proc.stdout
    assert not (tmp_path / "data" / "bot.sqlite3.heartbeat").exists()  # removed at exit


def test_sigterm_before_the_database_migrates_stops_cleanly(tmp_path: Path) -> None:
    # Another connection holds the database's write lock, so start-up waits in SQLite's busy
    # timeout (5 s) before migrating: the window where SIGTERM used to be ignored or fatal.
    db_path = tmp_path / "data" / "bot.sqlite3"
    db_path.parent.mkdir()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    api_base = f"http://127.0.0.1:{_closed_port()}/api/v10"
    proc = subprocess.Popen(
        [sys.executable, str(_launcher(tmp_path, api_base))],
        cwd=tmp_path,
        env=_bot_env(tmp_path, DISCORD_TOKEN="not.a.real-token", DATABASE_PATH=str(db_path)),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait until start-up is under way
            if "Database:" in line:
                break
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        rc = proc.wait(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, rest
    assert "Stopped by SIGTERM during start-up" in rest
    assert "Traceback" not in rest
    assert elapsed < 10  # at most the busy timeout still in progress, never a hang


@pytest.fixture
def run_settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        discord_token="not.a.real-token",
        database_path=tmp_path / "data" / "bot.sqlite3",
        worker_processes=0,
        reccobeats_enabled=False,
    )


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_corrupt_database_is_one_line(run_settings: Settings, capsys) -> None:
    run_settings.database_path.parent.mkdir()
    run_settings.database_path.write_bytes(b"this is not an SQLite database\n" * 40)
    assert startup.run(run_settings, setup_logging=False) == 1
    line = _one_error_line(capsys)
    assert "is corrupted or not an SQLite file" in line and "backup" in line
    # No fresh key file next to it: a restored backup's key must still be the one that fits.
    assert not run_settings.database_path.with_name("bot.sqlite3.key").exists()


def test_unwritable_data_dir_is_one_line(run_settings: Settings, tmp_path: Path, capsys) -> None:
    (tmp_path / "data").write_text("a file where the data folder should be")
    assert startup.run(run_settings, setup_logging=False) == 1
    line = _one_error_line(capsys)
    assert f"cannot write the data directory {tmp_path / 'data'}" in line
    assert "DATABASE_PATH" in line


def test_database_path_naming_a_folder_is_one_line(run_settings: Settings, capsys) -> None:
    """DATABASE_PATH=/data (the volume) was "Database error on /data: unable to open database
    file"."""
    folder = run_settings.database_path.parent
    folder.mkdir()
    settings = run_settings.model_copy(update={"database_path": folder})
    assert startup.run(settings, setup_logging=False) == 1
    assert _one_error_line(capsys) == (
        f"error: DATABASE_PATH {folder} is a folder; it names the database file: set it to "
        f"{folder / 'playlist_clusters.sqlite3'}."
    )
    assert not folder.with_name("data.key").exists()


@pytest.mark.parametrize(
    ("token", "said"),
    [
        ('"MTIz.secret.token"', "DISCORD_TOKEN is wrapped in quotes (docker run --env-file"),
        ("Bot MTIz.secret.token", "DISCORD_TOKEN starts with “Bot ”: leave that out"),
        ("MTIz.secret\n.token", "DISCORD_TOKEN has a space or line break in it"),
    ],
)
def test_a_token_copied_with_extras_says_which(
    run_settings: Settings, capsys, token: str, said: str
) -> None:
    """Said before Discord is asked (it answered only "rejected"); the token is not printed."""
    settings = run_settings.model_copy(update={"discord_token": SecretStr(token)})
    assert startup.run(settings, setup_logging=False) == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {said}") and "secret" not in line


def test_invalid_encryption_key_stops_start_up_with_the_cause(
    run_settings: Settings, capsys
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        discord_token="not.a.real-token",
        database_path=run_settings.database_path,
        token_encryption_key="hunter2-not-a-key",
    )
    assert startup.run(settings, setup_logging=False) == 1
    line = _one_error_line(capsys)
    assert "TOKEN_ENCRYPTION_KEY is not a valid Fernet key" in line
    assert "hunter2" not in line


def _response(status: int) -> object:
    class Response:  # what discord.HTTPException reads from an aiohttp response
        reason = "Service Unavailable"

    Response.status = status  # type: ignore[attr-defined]
    return Response()


async def test_rejected_token_is_one_line(fake_discord, tmp_path: Path, capsys) -> None:
    fake_discord.token = "the-real-token"
    settings = discord_test_settings(tmp_path, discord_token="a-wrong-token")
    assert await startup.serve(settings) == 1
    line = _one_error_line(capsys)
    assert line.startswith("error: Discord rejected DISCORD_TOKEN.") and "Reset Token" in line
    assert "a-wrong-token" not in line


async def test_refused_message_content_intent_is_one_line(
    fake_discord, tmp_path: Path, capsys
) -> None:
    fake_discord.message_content_allowed = False
    assert await startup.serve(discord_test_settings(tmp_path)) == 1
    line = _one_error_line(capsys)
    assert "Message Content" in line and "Privileged Gateway Intents" in line


def test_damaged_key_file_is_one_line(run_settings: Settings, capsys) -> None:
    key_file = run_settings.database_path.with_name("bot.sqlite3.key")
    key_file.parent.mkdir()
    key_file.write_text("truncated")
    assert startup.run(run_settings, setup_logging=False) == 1
    line = _one_error_line(capsys)
    assert f"the token encryption key file {key_file} is damaged" in line
    assert "truncated" not in line


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (SystemExit("Discord rejected DISCORD_TOKEN. Copy it again."), "Copy it again"),
        (discord.DiscordServerError(_response(503), "upstream"), "Discord is having trouble"),
        (StorageError("The database x is locked by another process."), "locked by another"),
        (socket.gaierror(-2, "Name or service not known"), "(Name or service not known)"),
        (TimeoutError(), "could not reach Discord (timed out)"),
    ],
)
def test_known_failures_have_a_sentence(exc: BaseException, expected: str) -> None:
    line = startup.explain(exc)
    assert line is not None and expected in line


def test_dns_failure_names_the_host() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("discord.com", 443, True, True, None, None, None)
    exc = aiohttp.ClientConnectorDNSError(key, socket.gaierror(-3, "Temporary failure"))
    line = startup.explain(exc)
    assert line == (
        "could not reach Discord at discord.com:443 (Temporary failure). Check this machine's "
        "internet connection, DNS and firewall (the bot needs outbound HTTPS to discord.com and "
        "gateway.discord.gg), then start it again."
    )


def test_unexpected_error_keeps_its_traceback(caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.startup")
    assert startup.report_failure(KeyError("boom")) == 1
    assert "KeyError: 'boom'" in capsys.readouterr().err
    assert caplog.records[-1].levelno == logging.ERROR and caplog.records[-1].exc_info


def test_voice_warnings_are_dropped_and_nothing_else() -> None:
    flt = startup.VoiceWarningFilter()

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("discord.client", logging.WARNING, "", 0, msg, None, None)

    assert not flt.filter(record("PyNaCl is not installed, voice will NOT be supported"))
    assert not flt.filter(record("davey is not installed, voice will NOT be supported"))
    assert flt.filter(record("Shard ID None heartbeat blocked for more than 10 seconds."))


def test_invalid_setting_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_DEV_GUILD_ID", "my server")
    monkeypatch.setenv("DISCORD_TOKEN", "secret.token.value")
    get_settings.cache_clear()
    try:
        assert main([]) == 1
        assert main(["demo"]) == 2  # the CLI's exit code for errors the user can fix
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0] == err[1]
    assert err[0].startswith("error: invalid setting in the environment: DISCORD_DEV_GUILD_ID")
    assert "my server" not in err[0] and "secret" not in err[0]


def test_a_utf16_env_file_is_read(tmp_path, monkeypatch) -> None:
    """What Windows PowerShell 5's ``echo WORKER_PROCESSES=3 > .env`` writes (UTF-16, BOM):
    start-up stopped with a UnicodeDecodeError traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKER_PROCESSES", raising=False)
    (tmp_path / ".env").write_bytes("WORKER_PROCESSES=3\r\n".encode("utf-16"))
    get_settings.cache_clear()
    try:
        assert startup.load_settings().worker_processes == 3
    finally:
        get_settings.cache_clear()


def test_an_env_file_in_another_encoding_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_bytes("# Réglages\nDISCORD_TOKEN=secret.token\n".encode("cp1252"))
    get_settings.cache_clear()
    try:
        assert main(["demo"]) == 2
        assert main(["healthcheck"]) == 1
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (
        f"error: .env in {tmp_path} is not UTF-8 text (byte 4 is not): save it as UTF-8 (in "
        "Notepad: Save as → Encoding: UTF-8), or move it aside to start with the defaults."
    )
    assert len(err) == 2 and "Traceback" not in err[1] and "secret" not in err[1]


def test_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"playlist-clusters {__version__}\n"


# ------------------------------------------------------------------------------ heartbeat
async def test_heartbeat_then_healthcheck(run_settings: Settings) -> None:
    import asyncio

    path = startup.heartbeat_path(run_settings)
    assert path == run_settings.database_path.with_name("bot.sqlite3.heartbeat")
    ok, line = startup.check_health(run_settings)
    assert not ok and "the bot is not running" in line

    path.parent.mkdir(parents=True)
    now = [1_000_000.0]
    task = asyncio.create_task(startup.heartbeat_loop(path, interval_s=0.01, clock=lambda: now[0]))
    await asyncio.sleep(0.05)
    task.cancel()
    ok, line = startup.check_health(run_settings, clock=lambda: now[0] + 30)
    assert ok, line
    assert line == f"healthy: last heartbeat 30 s ago (pid {os.getpid()})"
    ok, line = startup.check_health(run_settings, clock=lambda: now[0] + 91)
    assert not ok and "91 s ago" in line
    path.write_text("garbage")
    assert not startup.check_health(run_settings)[0]


def test_healthcheck_command(tmp_path: Path, monkeypatch, capsys) -> None:
    db = tmp_path / "bot.sqlite3"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_PATH", str(db))
    get_settings.cache_clear()
    try:
        assert main(["healthcheck"]) == 1
        assert "unhealthy: no heartbeat file" in capsys.readouterr().err
        startup.write_heartbeat(db.with_name("bot.sqlite3.heartbeat"), time.time())
        assert main(["healthcheck"]) == 0
        assert capsys.readouterr().out.startswith("healthy: last heartbeat")
    finally:
        get_settings.cache_clear()
