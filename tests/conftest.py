"""Shared test set-up. Fixtures live in plugin modules per area (see pytest_plugins)."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# No test reaches the real open.spotify.com: public pages are off unless a test turns them on
# (tests.fakes.spotify_fixtures.spotify_settings does, pointed at the loopback fake).
os.environ.setdefault("SPOTIFY_PUBLIC_PAGES", "false")
os.environ.setdefault("SPOTIFY_WEB_BASE", "http://127.0.0.1:9")

pytest_plugins = [
    "tests.fakes.spotify_fixtures",
    "tests.fakes.discord_fixtures",
]
