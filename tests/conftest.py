"""Shared test set-up. Fixtures live in plugin modules per area (see pytest_plugins)."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

pytest_plugins = [
    "tests.fakes.spotify_fixtures",
    "tests.fakes.discord_fixtures",
]
