"""Every setting is documented in .env.example and README.md."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        env = name.upper()
        assert f"\n{env}=" in example, f"{env} missing from .env.example"
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
