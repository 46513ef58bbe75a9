"""SpotifyGateway against the loopback fake (real spotipy underneath)."""

from __future__ import annotations

import asyncio

import requests

from tests.fakes.spotify_api import FakeSpotify


async def test_fake_serves_token_and_dev_mode_403(fake_spotify: FakeSpotify) -> None:
    r = await asyncio.to_thread(
        requests.post,
        fake_spotify.accounts_base + "/api/token",
        data={"grant_type": "client_credentials"},
        auth=(fake_spotify.client_id, fake_spotify.client_secret),
        timeout=5,
    )
    token = r.json()["access_token"]
    pid = next(p for p, pl in fake_spotify.playlists.items() if pl.owner_id == "tidytuesday")
    r = await asyncio.to_thread(
        requests.get,
        f"{fake_spotify.api_base}playlists/{pid}/items",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert r.status_code == 403
