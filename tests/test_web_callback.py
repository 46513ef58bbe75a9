"""The OAuth callback web server (PUBLIC_BASE_URL mode), end to end on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.accounts import AccountService
from bot.web import CallbackServer, build_app
from storage.db import Database
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings

USER = 987_654_321


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "bot.sqlite3")
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def server(
    db: Database, fake_spotify: FakeSpotify, tmp_path: Path
) -> AsyncIterator[CallbackServer]:
    """A real CallbackServer on a free loopback port, PUBLIC_BASE_URL pointing at it."""
    settings = spotify_settings(
        fake_spotify,
        database_path=tmp_path / "bot.sqlite3",
        spotify_redirect_uri=None,
        web_host="127.0.0.1",
        web_port=0,
    )
    accounts = AccountService(db, settings)
    srv = CallbackServer(accounts, settings)
    await srv.start()
    settings.public_base_url = f"http://127.0.0.1:{srv.port}"
    try:
        yield srv
    finally:
        await srv.close()
        await accounts.close()


async def browse(url: str) -> tuple[int, str, Mapping[str, str], str]:
    """Follow redirects like a browser; returns (status, final url, headers, body)."""
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, str(resp.url), resp.headers, await resp.text()


async def test_browser_round_trip_lands_on_the_linked_page(
    server: CallbackServer, fake_spotify: FakeSpotify
) -> None:
    accounts = server.accounts
    notified: list[tuple[int, dict]] = []

    async def listener(user_id: int, info: dict) -> None:
        notified.append((user_id, info))

    accounts.add_link_listener(listener)
    assert accounts.web_callback
    assert accounts.redirect_uri == f"http://127.0.0.1:{server.port}/spotify/callback"
    fake_spotify.authorize_as = "alice"
    status, final_url, headers, body = await browse(await accounts.start_link(USER))
    assert final_url.startswith(accounts.redirect_uri + "?code=")
    assert status == 200
    assert "Linked as Alice" in body and "close this tab" in body
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert (await accounts.status(USER))["display_name"] == "Alice"
    assert [u for u, _ in notified] == [USER]

    # the same redirect replayed (e.g. browser history) is refused, clearly
    status, _, _, body = await browse(final_url)
    assert status == 400
    assert "already used" in body and "/spotify link" in body


async def test_declined_consent_shows_an_error_page(
    server: CallbackServer, fake_spotify: FakeSpotify
) -> None:
    fake_spotify.authorize_as = None  # the user clicks "Cancel"
    status, final_url, _, body = await browse(await server.accounts.start_link(USER))
    assert "error=access_denied" in final_url
    assert status == 400 and "declined" in body
    assert await server.accounts.status(USER) is None


async def test_display_names_are_html_escaped(
    server: CallbackServer, fake_spotify: FakeSpotify
) -> None:
    fake_spotify.add_user("mallory", "<script>alert(1)</script>")
    fake_spotify.authorize_as = "mallory"
    status, _, _, body = await browse(await server.accounts.start_link(USER))
    assert status == 200
    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


@pytest.fixture
async def client(db: Database, fake_spotify: FakeSpotify, tmp_path: Path):
    settings = spotify_settings(fake_spotify, database_path=tmp_path / "bot.sqlite3")
    accounts = AccountService(db, settings)
    async with TestClient(TestServer(build_app(accounts))) as test_client:
        yield test_client, accounts
    await accounts.close()


async def test_bad_requests_get_clear_error_pages(client) -> None:
    test_client, _ = client
    resp = await test_client.get("/spotify/callback")
    assert resp.status == 400 and "missing the authorization code" in await resp.text()
    resp = await test_client.get("/spotify/callback", params={"state": "forged", "code": "c"})
    text = await resp.text()
    assert resp.status == 400 and "unknown or too old" in text
    resp = await test_client.get("/healthz")
    assert resp.status == 200 and await resp.text() == "ok"


async def test_unexpected_failure_is_a_generic_500_page(client, monkeypatch) -> None:
    test_client, accounts = client

    async def boom(state: str, code: str) -> dict:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(accounts, "complete_link", boom)
    resp = await test_client.get("/spotify/callback", params={"state": "s", "code": "c"})
    text = await resp.text()
    assert resp.status == 500
    assert "secret internals" not in text and "/spotify link" in text
