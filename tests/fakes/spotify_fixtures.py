"""Fixtures for the fake Spotify/ReccoBeats/accounts server (owned by the sources work).

* ``fake_spotify``: a started :class:`FakeSpotify` in **development** mode, loaded with the
  real TidyTuesday sample (tests/data/tidytuesday_sample.csv: its playlists are rebuilt with
  their real ids, owned by user ``"tidytuesday"``; editorial ones by ``"spotify"``).
  A user ``"alice"`` exists, owns playlist ``fake.alice_playlist`` (60 real tracks) and has a
  token in ``fake.alice_token``.
* ``fake_spotify_extended``: the same in **extended** mode.
* ``spotify_settings(fake, **overrides)``: a Settings pointed at the fake (not a fixture; import
  it: ``from tests.fakes.spotify_fixtures import spotify_settings``).
* ``fake_spotify_factory``: ``await make(mode, rows=None)`` for custom set-ups (e.g. 10,000 rows
  from the full CSV: ``load_tidytuesday_rows(FULL_CSV, limit=10_000)``).

The fake runs on the test's event loop: call spotipy from a thread (the gateway does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from bot.config import Settings
from tests.fakes.spotify_api import FakeSpotify, load_tidytuesday_rows

_ROWS_CACHE: list[dict] | None = None


def sample_rows() -> list[dict]:
    """The repo's TidyTuesday sample rows (read once per test session)."""
    global _ROWS_CACHE
    if _ROWS_CACHE is None:
        _ROWS_CACHE = load_tidytuesday_rows()
    return _ROWS_CACHE


def spotify_settings(fake: FakeSpotify, **overrides: Any) -> Settings:
    """Settings pointed at ``fake`` (short timeouts; no .env file read)."""
    values: dict[str, Any] = {
        "spotify_client_id": fake.client_id,
        "spotify_client_secret": fake.client_secret,
        "spotify_api_base": fake.api_base,
        "spotify_accounts_base": fake.accounts_base,
        "reccobeats_base": fake.reccobeats_base,
        "spotify_web_base": fake.web_base,
        "spotify_public_pages": True,
        "spotify_timeout_s": 5.0,
        "reccobeats_timeout_s": 5.0,
        "spotify_redirect_uri": "http://127.0.0.1:1/callback",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def build_fake(mode: str = "development", rows: list[dict] | None = None) -> FakeSpotify:
    """A started fake with ``rows`` (default: the sample) and user alice (not stopped here)."""
    fake = FakeSpotify(mode)
    rows = sample_rows() if rows is None else rows
    fake.add_tidytuesday_playlists(rows)
    fake.add_user("alice", "Alice")
    ids = fake.track_ids()
    fake.alice_playlist = fake.add_playlist(  # type: ignore[attr-defined]
        ids[:60], name="Alice's mix", owner_id="alice"
    ).id
    fake.alice_token = fake.user_token("alice")  # type: ignore[attr-defined]
    fake.set_saved("alice", ids[:5])
    await fake.start()
    return fake


@pytest_asyncio.fixture
async def fake_spotify() -> AsyncIterator[FakeSpotify]:
    fake = await build_fake("development")
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def fake_spotify_extended() -> AsyncIterator[FakeSpotify]:
    fake = await build_fake("extended")
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def fake_spotify_factory() -> AsyncIterator[Callable[..., Awaitable[FakeSpotify]]]:
    started: list[FakeSpotify] = []

    async def make(mode: str = "development", rows: list[dict] | None = None) -> FakeSpotify:
        fake = await build_fake(mode, rows)
        started.append(fake)
        return fake

    try:
        yield make
    finally:
        for fake in started:
            await fake.stop()


@pytest.fixture
def spotify_settings_for() -> Callable[..., Settings]:
    """Fixture form of :func:`spotify_settings`."""
    return spotify_settings
