"""Configuration, read from the environment and an optional ``.env`` file.

Every field here is documented in README.md ("Configuration") and in ``.env.example``.
The base URLs exist so tests (and people behind proxies) can point the bot at other hosts;
the test-suite points them at loopback fakes.

An empty value (``DISCORD_DEV_GUILD_ID=`` as shipped in ``.env.example``, or ``KEY=`` lines that
``docker run --env-file`` turns into empty variables) means "unset": the default applies.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_DIR_NAME = "playlist-clusters"
DATABASE_FILE_NAME = "playlist_clusters.sqlite3"


def default_database_path() -> Path:
    """The per-user data directory (``~/.local/share/playlist-clusters/`` on Linux).

    Not the current directory, so starting the bot from another folder finds the same database.
    A database that an older version left in the current directory (its old default) is still
    used, so upgrading never silently starts an empty one.
    """
    legacy = Path(DATABASE_FILE_NAME)
    if legacy.is_file():
        return legacy
    data_dir = platformdirs.user_data_dir(APP_DIR_NAME, appauthor=False)
    return Path(data_dir) / DATABASE_FILE_NAME


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # --- Discord -------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_dev_guild_id: int | None = Field(
        default=None, description="Guild whose commands are synced instantly at start-up."
    )
    discord_sync_global: bool = Field(
        default=False, description="Sync application commands globally at start-up."
    )
    # Gateway shards across processes: SHARD_COUNT in total, SHARD_IDS ("0,1") in this one.
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: str | None = None

    @field_validator("shard_ids")
    @classmethod
    def _check_shard_ids(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            ids = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError(
                "SHARD_IDS must be shard numbers separated by commas, e.g. 0,1"
            ) from None
        if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
            raise ValueError("SHARD_IDS must be distinct shard numbers from 0, e.g. 0,1")
        return ",".join(str(i) for i in ids)

    @model_validator(mode="after")
    def _check_shards(self) -> Settings:
        ids = self.shard_id_list
        if ids is not None and self.shard_count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT (the total number of shards)")
        if ids is not None and self.shard_count is not None and max(ids) >= self.shard_count:
            raise ValueError(f"SHARD_IDS must be below SHARD_COUNT ({self.shard_count})")
        return self

    @property
    def shard_id_list(self) -> list[int] | None:
        """This process's shards (None: all of SHARD_COUNT, or no sharding)."""
        return [int(i) for i in self.shard_ids.split(",")] if self.shard_ids else None

    # --- Spotify ------------------------------------------------------------------------
    spotify_client_id: str | None = None
    spotify_client_secret: SecretStr | None = None
    spotify_api_base: str = "https://api.spotify.com/v1/"
    spotify_accounts_base: str = "https://accounts.spotify.com"
    spotify_timeout_s: float = 10.0
    spotify_concurrency: int = 8
    spotify_max_retry_after_s: float = 30.0
    spotify_redirect_uri: str | None = None
    # Public embed pages (no token; ~first 100 tracks) and short-link resolution.
    spotify_public_pages: bool = True
    spotify_web_base: str = "https://open.spotify.com"

    # --- ReccoBeats -----------------------------------------------------------------------
    reccobeats_base: str = "https://api.reccobeats.com/v1"
    reccobeats_enabled: bool = True
    reccobeats_timeout_s: float = 10.0

    # --- Storage, worker, limits --------------------------------------------------------------
    database_path: Path = Field(default_factory=default_database_path)
    # postgresql://user:pass@host/db: PostgreSQL (asyncpg, the "postgres" extra) instead of the
    # SQLite file at database_path; for shards and workers on several machines.
    database_url: SecretStr | None = None
    token_encryption_key: SecretStr | None = None
    worker_processes: int = 2
    cpu_step_timeout_s: float = 180.0  # per clustering/chart step; 10,000 tracks take ~10 s
    max_jobs_per_user: int = 2
    max_jobs_per_guild: int = 4
    max_jobs_total: int = 8  # all servers and DMs; later jobs wait in line (0: no bound)
    max_playlist_tracks: int = 10_000
    feature_cache_days: int = 90

    # --- Web server (OAuth callback) ------------------------------------------------------------
    public_base_url: str | None = None
    web_host: str = "0.0.0.0"
    web_port: int = 8080

    log_level: str = "INFO"

    @property
    def database_url_value(self) -> str | None:
        """DATABASE_URL in clear (for the driver only; never log it)."""
        return self.database_url.get_secret_value() if self.database_url else None

    @property
    def spotify_configured(self) -> bool:
        return bool(self.spotify_client_id and self.spotify_client_secret)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
