"""Settings: every one documented, ``.env.example`` works as shipped (locally and with
``docker run --env-file``), empty values mean unset, the database has a fixed home."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import platformdirs
import pytest

from bot.config import Settings, default_database_path

ROOT = Path(__file__).resolve().parents[1]
ENV_PREFIXES = ("DISCORD_", "SPOTIFY_", "RECCOBEATS_", "DATABASE_", "TOKEN_", "WEB_", "PUBLIC_")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting inherited from the environment running the tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_every_setting_is_documented() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        env = name.upper()
        # DATABASE_PATH is shown commented out (see test_docker_env_file_keeps_the_volume_path).
        shown = f"\n{env}=" in example or f"\n# {env}=" in example
        assert shown, f"{env} missing from .env.example"
        assert f"`{env}`" in readme, f"{env} missing from README.md"


def test_env_file_values_are_read(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MAX_JOBS_PER_USER=7\nSPOTIFY_CLIENT_ID=abc\n")
    monkeypatch.delenv("MAX_JOBS_PER_USER", raising=False)
    monkeypatch.delenv("SPOTIFY_CLIENT_ID", raising=False)
    settings = Settings()
    assert settings.max_jobs_per_user == 7
    assert settings.spotify_client_id == "abc"
    assert not settings.spotify_configured  # the secret is still missing


def test_env_example_as_shipped_loads_with_the_defaults(tmp_path, clean_env) -> None:
    """``cp .env.example .env`` then any command: empty values are "unset", not errors."""
    clean_env.chdir(tmp_path)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    settings = Settings()
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.model_dump() == defaults.model_dump()
    assert settings.discord_dev_guild_id is None
    assert settings.discord_token is None
    # An empty key means "generate one into <DATABASE_PATH>.key", not "linking is broken".
    assert settings.token_encryption_key is None


def test_empty_environment_variables_mean_unset(clean_env) -> None:
    for name in ("DISCORD_DEV_GUILD_ID", "TOKEN_ENCRYPTION_KEY", "WEB_PORT", "DATABASE_PATH"):
        clean_env.setenv(name, "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.discord_dev_guild_id is None
    assert settings.token_encryption_key is None
    assert settings.web_port == 8080
    assert settings.database_path == default_database_path()


def _dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def _docker_env_file(path: Path) -> dict[str, str]:
    """What ``docker run --env-file`` sets: every KEY=VALUE line literally, comments skipped."""
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value
    return env


def test_docker_env_file_keeps_the_volume_path(tmp_path, clean_env) -> None:
    """README's ``docker run --env-file .env -v …:/data``: the database must be on the volume."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    run = next(ln for ln in readme.splitlines() if ln.startswith("docker run "))
    assert "--env-file .env" in run
    volume = re.search(r"-v (\S+):(/\S+)", run)
    assert volume, run
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f'VOLUME ["{volume.group(2)}"]' in dockerfile

    example = _docker_env_file(ROOT / ".env.example")
    # docker keeps quotes and " # comments" as part of the value (python-dotenv strips them).
    assert not [k for k, v in example.items() if any(c in v for c in "\"'#")]
    env = _dockerfile_env()
    env.update(example)  # run-time values win over the image's
    for key, value in env.items():
        clean_env.setenv(key, value)
    clean_env.chdir(tmp_path)  # the image has no .env file of its own
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_path.parent == Path(volume.group(2))


def test_default_database_is_in_the_user_data_dir(tmp_path, clean_env) -> None:
    clean_env.chdir(tmp_path)
    expected = Path(platformdirs.user_data_dir("playlist-clusters", appauthor=False))
    assert Settings(_env_file=None).database_path == expected / "playlist_clusters.sqlite3"  # type: ignore[call-arg]
    # A database an older version created in the current folder keeps being used.
    (tmp_path / "playlist_clusters.sqlite3").write_bytes(b"")
    assert Settings(_env_file=None).database_path == Path("playlist_clusters.sqlite3")  # type: ignore[call-arg]
