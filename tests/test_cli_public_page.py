"""``python -m bot analyze <public link>`` reads the public page like the bot does (subprocess
against the loopback fake; no Spotify credentials at all)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.fakes.spotify_api import FakeSpotify

REPO = Path(__file__).resolve().parents[1]


async def _analyze(fake: FakeSpotify, link: str, out: Path, **extra: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SPOTIFY_"))}
    env.update(
        PYTHONPATH=str(REPO),
        MPLBACKEND="Agg",
        SPOTIFY_WEB_BASE=fake.web_base,
        SPOTIFY_API_BASE=fake.api_base,
        RECCOBEATS_BASE=fake.reccobeats_base,
        RECCOBEATS_ENABLED="true",
        **extra,
    )
    # The fake runs on this event loop: the CLI must run as a child process awaited here.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "analyze", link, "--k", "3", "--out", str(out),
        cwd=out.parent, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def test_cli_analyzes_a_public_playlist_without_credentials(
    fake_spotify: FakeSpotify, tmp_path: Path
) -> None:
    fake = fake_spotify
    pid = fake.add_playlist(fake.track_ids()[:140], name="Shared mix", owner_id="bob").id
    out = tmp_path / "res"
    rc, stdout, stderr = await _analyze(fake, f"https://open.spotify.com/playlist/{pid}", out)
    assert rc == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_tracks"] == 100 and summary["k"] == 3
    assert fake.count("/embed/playlist/") == 1 and fake.count("/v1/") == 0
    assert (
        "Note: first 100 tracks, from Spotify's public page (it shows no more); export it with "
        "Exportify and analyze the CSV for all of them."
    ) in stdout


async def test_cli_resolves_short_links(fake_spotify: FakeSpotify, tmp_path: Path) -> None:
    fake = fake_spotify
    editorial = "37i9dQZF1DXcZDD7cfEKhW"
    fake.pages.short_links["Zz9"] = f"https://open.spotify.com/playlist/{editorial}"
    out = tmp_path / "res"
    rc, _, stderr = await _analyze(fake, "https://spotify.link/Zz9", out)
    assert rc == 0, stderr
    assert (out / "report.md").read_text().startswith("# Clusters in Pop Remix")


async def test_rejected_app_credentials_are_said_when_the_page_answers(
    fake_spotify: FakeSpotify, tmp_path: Path
) -> None:
    """Wrong SPOTIFY_CLIENT_SECRET: the public page still reads the playlist, and the operator
    is told why the API didn't (it was silent: the misconfiguration went unnoticed)."""
    fake = fake_spotify
    pid = fake.add_playlist(fake.track_ids()[:40], name="Shared mix", owner_id="bob").id
    out = tmp_path / "res"
    rc, _, stderr = await _analyze(
        fake, f"https://open.spotify.com/playlist/{pid}", out,
        SPOTIFY_CLIENT_ID=fake.client_id, SPOTIFY_CLIENT_SECRET="not-the-secret",
        SPOTIFY_ACCOUNTS_BASE=fake.accounts_base,
    )  # fmt: skip
    assert rc == 0, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET" in warnings[0]
    assert "not-the-secret" not in stderr
