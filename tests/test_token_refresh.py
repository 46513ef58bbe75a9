"""A 401 on a linked member's token triggers one refresh before the request gives up.

The access token is revoked on Spotify's side before its expiry time (the fake answers 401 to
it); the stored expiry still says it is valid, so only the 401 can tell. The real account
service and gateway run against the fake Spotify.
"""

from __future__ import annotations

from pathlib import Path

from bot.accounts import AccountService
from bot.models import AnalysisRequest
from bot.pipeline import PipelineContext, fetch_step
from bot.sources.spotify import SpotifyGateway
from storage.db import Database
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings
from tests.test_accounts import link

USER = 4242


async def _nothing(*_args) -> None:
    return None


async def test_a_rejected_user_token_is_refreshed_once(fake_spotify: FakeSpotify, tmp_path: Path):
    settings = spotify_settings(
        fake_spotify, database_path=tmp_path / "bot.sqlite3", spotify_public_pages=False
    )
    async with Database(settings.database_path) as db:
        accounts = AccountService(db, settings)
        try:
            await link(fake_spotify, accounts, USER)
            revoked = await accounts.access_token(USER)
            fake_spotify.expire_token(revoked)  # Spotify now answers 401 to it
            ctx = PipelineContext(
                settings=settings,
                spotify=SpotifyGateway(settings),
                user_tokens=accounts.access_token,
                refresh_user_token=accounts.refreshed_token,
            )
            url = f"https://open.spotify.com/playlist/{fake_spotify.alice_playlist}"
            fetched = await fetch_step(AnalysisRequest(link=url, user_id=USER), ctx, _nothing)
            assert len(fetched.tracks) == 60  # read as alice, through the API
            assert accounts.refresh_count == 1
            fresh = await accounts.access_token(USER)
            assert fresh != revoked and fake_spotify.tokens[fresh].user_id == "alice"
        finally:
            await accounts.close()
