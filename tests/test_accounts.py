"""Spotify account linking against the loopback fake accounts service (PKCE round trip,
state checks, refresh, invalid_grant, encryption at rest)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from cryptography.fernet import Fernet

from bot.accounts import (
    SCOPES,
    AccountService,
    LinkError,
    NotLinked,
    redirect_uri_for,
    relink_notice_text,
    uses_web_callback,
)
from bot.errors import RateLimited, SpotifyUnavailable, StorageError
from storage.accounts import key_file_path
from storage.db import Database
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings

USER = 111_222_333
OTHER = 444_555_666


class Clock:
    """A controllable UNIX clock (no sleeping in tests)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def db(tmp_path: Path):
    database = Database(tmp_path / "bot.sqlite3")
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def accounts(db: Database, fake_spotify: FakeSpotify, tmp_path: Path, clock: Clock):
    settings = spotify_settings(fake_spotify, database_path=tmp_path / "bot.sqlite3")
    service = AccountService(db, settings, clock=clock)
    try:
        yield service
    finally:
        await service.close()


async def approve(fake: FakeSpotify, authorize_url: str, as_user: str | None = "alice") -> str:
    """Play the browser: open the authorize URL, return where Spotify redirects to."""
    fake.authorize_as = as_user
    async with (
        aiohttp.ClientSession() as http,
        http.get(authorize_url, allow_redirects=False) as resp,
    ):
        assert resp.status == 302
        return resp.headers["Location"]


async def link(fake: FakeSpotify, accounts: AccountService, user: int = USER) -> dict:
    url = await accounts.start_link(user)
    return await accounts.complete_from_redirect(user, await approve(fake, url))


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_posts(fake: FakeSpotify) -> int:
    return fake.count("/api/token", method="POST")


# --- authorize URL / round trip ------------------------------------------------------------


async def test_authorize_url_carries_pkce_s256_challenge_and_state(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    url = await accounts.start_link(USER)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == fake_spotify.accounts_base
    assert parts.path == "/authorize"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["client_id"] == fake_spotify.client_id
    assert q["response_type"] == "code"
    assert q["code_challenge_method"] == "S256"
    assert q["redirect_uri"] == accounts.redirect_uri
    assert set(q["scope"].split()) == set(SCOPES)
    pending = await accounts.store.get_state(q["state"])
    assert pending is not None and pending.discord_user_id == USER
    assert 43 <= len(pending.verifier) <= 128
    assert q["code_challenge"] == challenge_of(pending.verifier)
    # a second link request gets a different state and verifier
    q2 = parse_qs(urlsplit(await accounts.start_link(USER)).query)
    assert q2["state"][0] != q["state"] and q2["code_challenge"][0] != q["code_challenge"]


async def test_full_round_trip_links_the_account(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    info = await link(fake_spotify, accounts)
    assert info["display_name"] == "Alice"
    assert info["spotify_user_id"] == "alice"
    assert info["token_state"] == "valid"
    assert set(info["scopes"]) == set(SCOPES)
    token = await accounts.access_token(USER)
    assert token is not None and fake_spotify.tokens[token].user_id == "alice"
    # the exchange used the PKCE verifier, not the client secret
    assert token_posts(fake_spotify) == 1


async def test_exchange_with_the_wrong_verifier_is_rejected_by_the_fake(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    url = await accounts.start_link(USER)
    state = parse_qs(urlsplit(url).query)["state"][0]
    # a code bound to someone else's challenge: our stored verifier does not match it
    code = fake_spotify.issue_code("alice", challenge_of("not-our-verifier"), accounts.redirect_uri)
    with pytest.raises(LinkError, match="refused the authorization code"):
        await accounts.complete_link(state, code)
    assert await accounts.status(USER) is None


async def test_replayed_state_is_rejected_without_a_second_exchange(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    url = await accounts.start_link(USER)
    redirected = await approve(fake_spotify, url)
    await accounts.complete_from_redirect(USER, redirected)
    with pytest.raises(LinkError, match="already used"):
        await accounts.complete_from_redirect(USER, redirected)
    assert token_posts(fake_spotify) == 1


async def test_unknown_state_is_rejected(accounts: AccountService) -> None:
    with pytest.raises(LinkError, match="unknown or too old"):
        await accounts.complete_link("forged-state", "code-x")


async def test_state_started_by_another_user_is_refused_and_left_usable(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    url = await accounts.start_link(USER)
    redirected = await approve(fake_spotify, url)
    with pytest.raises(LinkError, match="another Discord user"):
        await accounts.complete_from_redirect(OTHER, redirected)
    assert await accounts.status(OTHER) is None
    info = await accounts.complete_from_redirect(USER, redirected)
    assert info["display_name"] == "Alice"


async def test_expired_state_is_rejected(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock
) -> None:
    url = await accounts.start_link(USER)
    redirected = await approve(fake_spotify, url)
    clock.offset = 11 * 60
    with pytest.raises(LinkError, match="expired"):
        await accounts.complete_from_redirect(USER, redirected)
    assert token_posts(fake_spotify) == 0


async def test_declined_consent_and_garbage_paste_give_clear_messages(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    url = await accounts.start_link(USER)
    denied = await approve(fake_spotify, url, as_user=None)
    with pytest.raises(LinkError, match="declined"):
        await accounts.complete_from_redirect(USER, denied)
    with pytest.raises(LinkError, match="address bar"):
        await accounts.complete_from_redirect(USER, "https://open.spotify.com/")


async def test_user_not_on_the_dev_mode_allow_list_is_told_what_to_do(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    fake_spotify.fail_next("/v1/me", 403, body={"error": {"status": 403, "message": "no"}})
    with pytest.raises(LinkError, match="User Management"):
        await link(fake_spotify, accounts)
    assert await accounts.status(USER) is None


async def test_profile_failure_after_linking_keeps_the_link_without_a_name(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    """GET /me is only for the display name (and the allow-list 403): another failure must
    not lose the tokens the user just granted."""
    fake_spotify.fail_next("/v1/me", 404, method="GET")
    info = await link(fake_spotify, accounts)
    assert info["display_name"] is None and info["token_state"] == "valid"
    assert await accounts.access_token(USER) is not None


# --- refresh ---------------------------------------------------------------------------------


async def test_expired_access_token_is_refreshed_once(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock
) -> None:
    await link(fake_spotify, accounts)
    first = await accounts.access_token(USER)
    assert await accounts.access_token(USER) == first  # still valid: no refresh
    assert accounts.refresh_count == 0
    clock.offset = 3600
    fresh = await accounts.access_token(USER)
    assert fresh != first and fake_spotify.tokens[fresh].user_id == "alice"
    assert accounts.refresh_count == 1
    assert await accounts.access_token(USER) == fresh  # stored: no second refresh
    assert token_posts(fake_spotify) == 2  # exchange + one refresh


async def test_concurrent_callers_share_one_refresh(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock
) -> None:
    await link(fake_spotify, accounts)
    clock.offset = 3600
    tokens = await asyncio.gather(*(accounts.access_token(USER) for _ in range(6)))
    assert len(set(tokens)) == 1
    assert accounts.refresh_count == 1
    assert token_posts(fake_spotify) == 2


async def test_invalid_grant_drops_the_link_and_leaves_one_notice(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock, db: Database
) -> None:
    """invalid_grant (6-month expiry, app removed): the member is no longer linked (reads go
    on as the app's) and one relink notice waits for them; a new link clears it."""
    await link(fake_spotify, accounts)
    fake_spotify.revoke_user("alice")
    clock.offset = 3600
    assert await accounts.access_token(USER) is None
    row = await db.fetchone("SELECT count(*) FROM linked_accounts")
    assert row[0] == 0
    assert await accounts.access_token(USER) is None
    assert await accounts.take_relink_notice(USER + 1) is None  # nobody else's
    notice = await accounts.take_relink_notice(USER)
    assert notice is not None and notice.reason == "expired"
    assert "/spotify link" in relink_notice_text(notice)
    assert await accounts.take_relink_notice(USER) is None  # told once
    await accounts.return_relink_notice(notice)  # delivery failed: pending again
    assert await accounts.take_relink_notice(USER) is not None
    await accounts.return_relink_notice(notice)
    clock.offset = 0
    await link(fake_spotify, accounts)  # linked again: nothing left to tell
    assert await accounts.take_relink_notice(USER) is None


async def test_refresh_outage_keeps_the_link(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock
) -> None:
    await link(fake_spotify, accounts)
    clock.offset = 3600
    fake_spotify.fail_next("/api/token", 503)
    with pytest.raises(SpotifyUnavailable):
        await accounts.access_token(USER)
    assert await accounts.access_token(USER) is not None  # next call refreshes fine


async def test_refresh_rate_limit_reads_retry_after_like_every_client(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock
) -> None:
    """The accounts service's 429 uses the shared Retry-After parser (seconds or HTTP-date,
    60 s when absent), not digits only."""
    await link(fake_spotify, accounts)
    clock.offset = 3600
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
    fake_spotify.fail_next("/api/token", 429, headers={"Retry-After": when})
    with pytest.raises(RateLimited) as exc:
        await accounts.access_token(USER)
    assert 590 < exc.value.retry_after <= 600
    fake_spotify.fail_next("/api/token", 429)
    with pytest.raises(RateLimited) as exc:
        await accounts.access_token(USER)
    assert exc.value.retry_after == 60.0
    assert await accounts.access_token(USER) is not None


# --- storage / encryption --------------------------------------------------------------------


def _raw_db_bytes(path: Path) -> bytes:
    """The SQLite file plus its WAL (recent writes live there until a checkpoint)."""
    out = b""
    for p in (path, Path(str(path) + "-wal")):
        if p.exists():
            out += p.read_bytes()
    return out


async def test_tokens_and_verifier_are_encrypted_at_rest(
    accounts: AccountService, fake_spotify: FakeSpotify, tmp_path: Path, clock: Clock
) -> None:
    url = await accounts.start_link(USER)
    state = parse_qs(urlsplit(url).query)["state"][0]
    verifier = (await accounts.store.get_state(state)).verifier
    await accounts.complete_from_redirect(USER, await approve(fake_spotify, url))
    clock.offset = 3600
    await accounts.access_token(USER)  # a refresh writes tokens again
    account = await accounts.store.get_account(USER)
    secrets_ = [account.tokens.access, account.tokens.refresh, verifier]
    # the fake issued these, so they are real values that could leak
    assert account.tokens.access in fake_spotify.tokens
    assert account.tokens.refresh in fake_spotify.refresh_tokens
    raw = _raw_db_bytes(tmp_path / "bot.sqlite3")
    assert b"linked_accounts" in raw and len(raw) > 4096
    for secret in secrets_:
        assert secret.encode() not in raw
    # the generated key file sits next to the database, readable by the owner only
    key_path = key_file_path(accounts.settings)
    assert key_path == tmp_path / "bot.sqlite3.key"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    Fernet(key_path.read_bytes().strip())  # a valid Fernet key


async def test_configured_key_is_used_and_a_changed_key_asks_to_relink(
    db: Database, fake_spotify: FakeSpotify, tmp_path: Path
) -> None:
    key = Fernet.generate_key().decode()
    settings = spotify_settings(
        fake_spotify, database_path=tmp_path / "bot.sqlite3", token_encryption_key=key
    )
    service = AccountService(db, settings)
    try:
        await link(fake_spotify, service)
        assert not (tmp_path / "bot.sqlite3.key").exists()
        row = await db.fetchone("SELECT token_blob FROM linked_accounts")
        assert b"access" in Fernet(key.encode()).decrypt(bytes(row[0]))
    finally:
        await service.close()
    other = spotify_settings(
        fake_spotify,
        database_path=tmp_path / "bot.sqlite3",
        token_encryption_key=Fernet.generate_key().decode(),
    )
    rotated = AccountService(db, other)
    try:
        assert await rotated.access_token(USER) is None  # dropped, with a notice
        assert await rotated.status(USER) is None
        notice = await rotated.take_relink_notice(USER)
        assert notice is not None and "encryption key" in relink_notice_text(notice)
    finally:
        await rotated.close()
    # key rotation: new key first, old key still decrypts
    both = spotify_settings(
        fake_spotify,
        database_path=tmp_path / "bot.sqlite3",
        token_encryption_key=f"{Fernet.generate_key().decode()},{key}",
    )
    service = AccountService(db, both)
    try:
        await link(fake_spotify, service)
        assert await service.access_token(USER) is not None
    finally:
        await service.close()


async def test_invalid_configured_key_is_a_clear_error_without_the_key(
    db: Database, fake_spotify: FakeSpotify
) -> None:
    settings = spotify_settings(fake_spotify, token_encryption_key="hunter2-not-a-key")
    with pytest.raises(StorageError, match="not a valid Fernet key") as info:
        AccountService(db, settings)
    assert "hunter2" not in info.value.user_message


async def test_no_secret_reaches_the_logs(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    await link(fake_spotify, accounts)
    clock.offset = 3600
    await accounts.access_token(USER)
    account = await accounts.store.get_account(USER)
    logged = caplog.text + repr(account.tokens)
    assert "linked a Spotify account" in caplog.text
    assert account.tokens.access not in logged
    assert account.tokens.refresh not in logged


# --- status / unlink / config ---------------------------------------------------------------


async def test_status_and_unlink(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock
) -> None:
    assert await accounts.status(USER) is None
    await link(fake_spotify, accounts)
    status = await accounts.status(USER)
    assert status["display_name"] == "Alice"
    assert status["missing_scopes"] == []
    assert status["token_state"] == "valid"
    assert status["consent_expires_at"] > status["linked_at"]
    clock.offset = 3600
    assert (await accounts.status(USER))["token_state"] == "expired"
    assert await accounts.unlink(USER) is True
    assert await accounts.unlink(USER) is False
    assert await accounts.access_token(USER) is None
    assert await accounts.my_playlists(USER) == []
    with pytest.raises(NotLinked, match="/spotify link"):
        await accounts.save_cluster(USER, "x", "y", ["a"])


def test_redirect_uri_modes(fake_spotify: FakeSpotify) -> None:
    loopback = spotify_settings(fake_spotify, spotify_redirect_uri=None, web_port=8080)
    assert redirect_uri_for(loopback) == "http://127.0.0.1:8080/spotify/callback"
    assert not uses_web_callback(loopback)
    public = spotify_settings(
        fake_spotify, spotify_redirect_uri=None, public_base_url="https://bot.example.org/"
    )
    assert redirect_uri_for(public) == "https://bot.example.org/spotify/callback"
    assert uses_web_callback(public)
    explicit = spotify_settings(
        fake_spotify,
        spotify_redirect_uri="https://x.example/cb",
        public_base_url="https://bot.example.org",
    )
    assert redirect_uri_for(explicit) == "https://x.example/cb"


# --- using the link (through the SpotifyGateway) ---------------------------------------------


async def test_linked_user_reads_own_playlists_liked_songs_and_marks(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    await link(fake_spotify, accounts)
    playlists = await accounts.my_playlists(USER)
    assert fake_spotify.alice_playlist in [p.id for p in playlists]
    liked = await accounts.fetch_liked(USER)
    assert liked.meta.name == "Alice's Liked Songs"
    saved = fake_spotify.users["alice"].saved_tracks
    assert [t.id for t in liked.tracks] == saved and liked.meta.kind == "liked"
    # 💚 marks: 45 ids (5 saved) → 2 calls of at most 40 URIs
    ids = fake_spotify.track_ids()[:45]
    fake_spotify.clear_log()
    assert await accounts.liked_among(USER, [*ids, ids[0]]) == set(saved)
    calls = [q for m, p, q in fake_spotify.requests if p == "/v1/me/library/contains"]
    assert [len(q["uris"].split(",")) for q in calls] in ([40, 5], [5, 40])
    assert await accounts.liked_among(OTHER, ids) == set()  # not linked: no marks


async def test_liked_among_failure_gives_no_marks_unless_strict(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    await link(fake_spotify, accounts)
    ids = fake_spotify.track_ids()[:3]
    fake_spotify.fail_next("/v1/me/library/contains", 403)
    assert await accounts.liked_among(USER, ids) == set()
    fake_spotify.fail_next("/v1/me/library/contains", 403)
    with pytest.raises(Exception, match="/spotify link"):
        await accounts.liked_among(USER, ids, strict=True)


async def test_expired_token_is_refreshed_before_a_spotify_call(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock
) -> None:
    await link(fake_spotify, accounts)
    fake_spotify.expire_all_tokens()  # Spotify's side: the old access token is dead
    clock.offset = 3600  # our side knows it expired
    playlists = await accounts.my_playlists(USER)
    assert fake_spotify.alice_playlist in [p.id for p in playlists]
    assert accounts.refresh_count == 1


async def test_save_cluster_creates_a_private_playlist_in_batches_of_100(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    await link(fake_spotify, accounts)
    ids = fake_spotify.track_ids()[:250]
    assert len(ids) == 250
    fake_spotify.clear_log()
    meta = await accounts.save_cluster(
        USER, "Alice's mix · Cluster 2 · fast", "From Playlist Clusters", [*ids, ids[0]]
    )
    assert fake_spotify.count("/v1/me/playlists", method="POST") == 1
    adds = [p for m, p, _ in fake_spotify.requests if m == "POST" and p.endswith("/items")]
    assert adds == [f"/v1/playlists/{meta.id}/items"] * 3
    created = fake_spotify.playlists[meta.id]
    assert created.owner_id == "alice" and created.public is False
    assert created.entries == ids  # every track once, in order
    assert meta.name == "Alice's mix · Cluster 2 · fast" and meta.total == 250


async def test_save_cluster_needs_a_link_and_tracks(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    with pytest.raises(NotLinked, match="/spotify link"):
        await accounts.save_cluster(USER, "x", "", ["4uLU6hMCjMI75M1A2tKUQC"])
    await link(fake_spotify, accounts)
    with pytest.raises(LinkError, match="no Spotify tracks"):
        await accounts.save_cluster(USER, "x", "", [])
    assert fake_spotify.count("/v1/me/playlists", method="POST") == 0


async def test_pipeline_reads_a_dev_mode_playlist_through_the_requesters_link(
    accounts: AccountService, fake_spotify: FakeSpotify
) -> None:
    """The point of linking: the app token gets 403 on a user's playlist in Development Mode
    (NotOwner, whose advice is /spotify link); the requester's linked token reads it."""
    from bot.errors import NotOwner, TooSmall
    from bot.models import AnalysisRequest, no_progress
    from bot.pipeline import PipelineContext, fetch_step
    from bot.sources.spotify import SpotifyGateway

    app = SpotifyGateway(accounts.settings)
    ctx = PipelineContext(
        settings=accounts.settings, spotify=app, user_tokens=accounts.access_token
    )
    request = AnalysisRequest(
        link=f"https://open.spotify.com/playlist/{fake_spotify.alice_playlist}", user_id=USER
    )
    try:
        with pytest.raises(NotOwner, match="/spotify link"):
            await fetch_step(request, ctx, no_progress)
        await link(fake_spotify, accounts)
        fetched = await fetch_step(request, ctx, no_progress)
        assert len(fetched.tracks) == 60
        # her Liked Songs are read too (the fake's 5 are refused by name: fewer than 10)
        saved = len(fake_spotify.users["alice"].saved_tracks)
        with pytest.raises(TooSmall, match=f"Liked Songs” has only {saved} playable tracks"):
            await fetch_step(AnalysisRequest(liked=True, user_id=USER), ctx, no_progress)
    finally:
        app.close()


async def test_my_playlists_is_cached_for_autocomplete_and_refreshed_after_a_save(
    accounts: AccountService, fake_spotify: FakeSpotify, clock: Clock
) -> None:
    await link(fake_spotify, accounts)
    first = await accounts.my_playlists(USER)
    for _ in range(5):  # keystrokes
        assert await accounts.my_playlists(USER) == first
    assert fake_spotify.count("/v1/me/playlists", method="GET") == 1
    meta = await accounts.save_cluster(USER, "New one", "", fake_spotify.track_ids()[:3])
    assert meta.id in [p.id for p in await accounts.my_playlists(USER)]
    assert fake_spotify.count("/v1/me/playlists", method="GET") == 2
    clock.offset = 121  # cache expired
    await accounts.my_playlists(USER)
    assert fake_spotify.count("/v1/me/playlists", method="GET") == 3
    await accounts.unlink(USER)
    assert await accounts.my_playlists(USER) == []


async def test_a_member_taken_off_the_apps_user_list_is_told_why_and_what_helps(
    accounts: AccountService, fake_spotify: FakeSpotify, caplog
) -> None:
    """Development Mode allows 5 users: the app's owner takes a linked member off *User
    Management* (to make room for a sixth) and Spotify answers every call with that member's
    token 403 "User not registered in the Developer Dashboard" (plain text). They were told
    their linked account can't read their own playlist, or to link again for a "missing
    permission" (relinking gets the same 403)."""
    from bot.models import AnalysisRequest, no_progress
    from bot.pipeline import PipelineContext, fetch_step
    from bot.sources.public_page import PublicPageReader
    from bot.sources.spotify import SpotifyGateway
    from bot.sources.spotify.errors import NotRegistered

    await link(fake_spotify, accounts)
    fake_spotify.unregistered.add("alice")
    app = SpotifyGateway(accounts.settings)
    pages = PublicPageReader.from_settings(accounts.settings)
    ctx = PipelineContext(
        settings=accounts.settings, spotify=app, user_tokens=accounts.access_token, pages=pages
    )
    own = fake_spotify.playlists[fake_spotify.alice_playlist]
    request = AnalysisRequest(link=f"https://open.spotify.com/playlist/{own.id}", user_id=USER)
    playlists = len(fake_spotify.playlists)
    try:
        own.public = False
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(NotRegistered) as private:
                await fetch_step(request, ctx, no_progress)
            for attempt in (
                fetch_step(AnalysisRequest(liked=True, user_id=USER), ctx, no_progress),
                accounts.save_cluster(USER, "x", "", fake_spotify.track_ids()[:3]),
                accounts.my_playlists(USER),
                accounts.liked_among(USER, fake_spotify.track_ids()[:3], strict=True),
            ):
                with pytest.raises(NotRegistered) as refused:
                    await attempt
                said = refused.value.user_message
                assert "User Management" in said and "owner to add it back" in said
                assert "missing permission" not in said and refused.value.ephemeral
        said = private.value.user_message
        assert "User Management" in said and "public page isn't available" in said
        assert "can't read this one" not in said  # it is hers: ownership was never the issue
        assert len(fake_spotify.playlists) == playlists  # nothing saved
        own.public = True  # a public playlist is still read, from its public page
        fetched = await fetch_step(request, ctx, no_progress)
        assert len(fetched.tracks) == 60
        assert await accounts.status(USER) is not None  # the link is kept: re-adding fixes it
        with pytest.raises(LinkError, match="User Management"):  # and relinking says why
            await link(fake_spotify, accounts)
        for token in fake_spotify.tokens:
            assert token not in caplog.text
    finally:
        app.close()
        await pages.close()
