"""Every failure becomes a clear message: typed errors, incidents, permissions, limits."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot import errors as err
from tests.fakes.discord_fake import FakeDiscord

LINK = "https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M"
LINK2 = "https://open.spotify.com/playlist/3cEYpjA9oz9GiPac4AsH4n"


class StubGateway:
    """Stands in for SpotifyGateway: get_meta raises ``error`` (after ``gate`` opens)."""

    request_count = 0
    audio_features_available = None

    def __init__(self, error: Exception, gate: asyncio.Event | None = None) -> None:
        self.error, self.gate, self.calls = error, gate, 0

    def with_user_token(self, token: str) -> StubGateway:
        return self

    async def get_meta(self, ref):
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        raise self.error

    async def detect_mode(self) -> str:
        return "development"


TYPED = [
    err.NotOwner("Not your playlist: link your Spotify account with /spotify link."),
    err.NotFound("That playlist doesn't exist or is private."),
    err.EditorialPlaylist("Spotify's own playlists can't be read by apps."),
    err.RateLimited("Spotify is busy; try again in a minute.", retry_after=60),
    err.QuotaExceeded("Spotify's daily quota is used up; try again tomorrow.", retry_after=9e4),
    err.SpotifyUnavailable("Spotify is not answering right now."),
    err.AuthError("The bot's Spotify credentials are wrong."),
    err.RelinkRequired("Your Spotify link expired: run /spotify link again."),
    err.EmptyPlaylist("That playlist has no playable tracks."),
    err.TooSmall("Need at least 6 tracks to cluster."),
    err.TooLarge("That playlist has 20,000 tracks; the limit is 10,000."),
    err.StorageError("The database is locked by another process."),
]


@pytest.mark.parametrize("error", TYPED, ids=lambda e: type(e).__name__)
async def test_typed_pipeline_errors_reach_the_user(
    error: err.PipelineError, fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    services.ctx.spotify = StubGateway(error)
    async with start_bot(services):
        it = await fake_discord.slash("cluster", {"playlist": LINK})
        # An operator's error (the database) reaches members as a plain sentence (issue #13).
        shown = error.member_text if error.for_operator else error.user_message
        msg = await fake_discord.wait_for(
            lambda: next((m for m in fake_discord.responses(it) if shown in m.text), None)
        )
    assert it.response_type == 5  # deferred first
    # Private, as the README promises for every typed error (quota and outages included): the
    # public "thinking" response is removed, never edited into the error.
    assert msg.ephemeral and msg.via == "followup"
    assert all(m.ephemeral for m in fake_discord.responses(it))
    assert not msg.embeds


async def test_invalid_link_and_missing_source(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    async with start_bot(services):
        it = await fake_discord.slash("cluster", {"playlist": "https://example.com/not-spotify"})
        [bad] = await fake_discord.wait_response(it)
        it2 = await fake_discord.slash("cluster", {})
        [none] = await fake_discord.wait_response(it2)
    assert bad.ephemeral and "⚠️" in bad.content
    assert none.ephemeral and "playlist:" in none.content


async def test_limit_reached_while_another_job_runs(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services(max_jobs_per_user=1)
    gate = asyncio.Event()
    services.ctx.spotify = StubGateway(err.NotFound("gone"), gate)
    async with start_bot(services):
        first = await fake_discord.slash("cluster", {"playlist": LINK})
        await fake_discord.wait_acked(first)
        await fake_discord.wait_for(lambda: services.ctx.spotify.calls == 1)
        second = await fake_discord.slash("cluster", {"playlist": LINK2})
        [msg] = await fake_discord.wait_response(second)
        gate.set()
        await fake_discord.wait_for(
            lambda: any("gone" in m.text for m in fake_discord.responses(first))
        )
    assert msg.ephemeral
    assert isinstance(msg.content, str) and len(msg.content) > 10


async def test_unexpected_error_shows_incident_id_and_logs_it(
    fake_discord: FakeDiscord, make_services, start_bot, caplog
) -> None:
    services = await make_services()

    async def boom(*a, **k):
        raise RuntimeError("database exploded")

    services.queue.submit = boom
    caplog.set_level(logging.ERROR)
    async with start_bot(services):
        it = await fake_discord.slash("cluster", {"playlist": LINK})
        [msg] = await fake_discord.wait_response(it)
    assert msg.ephemeral
    assert "incident `" in msg.content
    incident = msg.content.split("incident `")[1].split("`")[0]
    assert any(incident in r.getMessage() for r in caplog.records)
    assert "database exploded" not in msg.content


@pytest.mark.parametrize(
    ("deny", "shown"),
    [(("attach_files",), "Attach Files"), (("embed_links", "attach_files"), "Embed Links")],
)
async def test_missing_channel_permissions_are_named(
    deny, shown, fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    fake_discord.deny_bot(fake_discord.channel_id, *deny)
    async with start_bot(services):
        it = await fake_discord.slash("cluster", {"playlist": LINK})
        [msg] = await fake_discord.wait_response(it)
        mid = await fake_discord.send_message(f"check this {LINK}")
        reply = await fake_discord.wait_for(
            lambda: next(
                (m for m in fake_discord.sent(via="channel") if m.reference_id == mid), None
            )
        )
    assert it.response_type == 4 and msg.ephemeral  # answered at once, nothing queued
    assert shown in msg.content and "#" not in msg.content.split("in ")[0]
    assert shown in reply.content
    assert not reply.embeds


async def test_links_toggle_needs_manage_server(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    nobody = fake_discord.add_user("nobody")
    async with start_bot(services):
        it = await fake_discord.slash("clusters links disable", user_id=nobody)
        [msg] = await fake_discord.wait_response(it)
        settings = await services.store.guilds.settings(fake_discord.guild_id)
    assert msg.ephemeral and "Manage" in msg.content
    assert settings.links_enabled
