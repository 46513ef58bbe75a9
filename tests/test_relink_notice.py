"""A member whose Spotify link died is told once, privately (issue #14).

Real bot under the fake Discord, real account service against the fake Spotify, whose token
endpoint answers ``invalid_grant`` once the member's refresh token is revoked (Spotify's 6-month
consent expiry, or the member removing the app).
"""

from __future__ import annotations

from typing import Any

from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings
from tests.test_discord_spotify import SLOW, approve

NOTICE = "no longer linked"


async def _linked_services(make_services: Any, fake: FakeSpotify, user_id: int) -> Any:
    services = await make_services(spotify_settings(fake, spotify_redirect_uri=None))
    url = await services.accounts.start_link(user_id)
    _, redirected, _ = await approve(fake, url, follow=False)
    await services.accounts.complete_from_redirect(user_id, redirected)
    return services


def _kill_link(fake: FakeSpotify) -> None:
    """Alice's access token is refused (401) and her refresh token with it (invalid_grant)."""
    fake.expire_all_tokens()
    fake.revoke_user("alice")


def _notices(fake_discord: FakeDiscord) -> list[Any]:
    return [m for m in fake_discord.sent() if NOTICE in m.text]


async def test_a_dead_link_is_told_once_privately_after_the_next_cluster(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot
) -> None:
    fake = fake_spotify
    owner = int(fake_discord.owner_user["id"])
    bob = fake_discord.add_user("bob")
    services = await _linked_services(make_services, fake, owner)
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"  # public: page fallback
    _kill_link(fake)
    async with start_bot(services, progress_interval_s=0.0):
        it = await fake_discord.slash("cluster", {"playlist": link, "k": 3})
        [notice] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if NOTICE in m.text], SLOW
        )
        result = [m for m in fake_discord.responses(it) if m.embeds]
        assert result and not result[0].ephemeral  # the analysis still came, from the page
        assert notice.ephemeral and notice.via == "followup" and notice.id > result[0].id
        assert "/spotify link" in notice.text and "6 months" in notice.text
        assert NOTICE not in result[0].text
        assert await services.accounts.access_token(owner) is None

        # Told once: the next commands (theirs or anyone's) carry no notice.
        for user in (owner, bob):
            it = await fake_discord.slash("cluster", {"playlist": link, "k": 3}, user_id=user)
            await fake_discord.wait_for(
                lambda it=it: [m for m in fake_discord.responses(it) if m.embeds], SLOW
            )
        it = await fake_discord.slash("spotify status")
        [msg] = await fake_discord.wait_response(it)
        assert "haven't linked" in msg.text
    assert len(_notices(fake_discord)) == 1


async def test_a_posted_link_keeps_the_notice_for_a_private_answer(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot
) -> None:
    """A reply to a posted link is public: the notice waits, and /spotify status tells it
    (in its own answer, not again afterwards)."""
    fake = fake_spotify
    owner = int(fake_discord.owner_user["id"])
    bob = fake_discord.add_user("bob")
    services = await _linked_services(make_services, fake, owner)
    _kill_link(fake)
    async with start_bot(services, progress_interval_s=0.0):
        mid = await fake_discord.send_message(
            f"https://open.spotify.com/playlist/{fake.alice_playlist}"
        )
        await fake_discord.wait_for(
            lambda: (fake_discord.channel_id, mid, "✅", "add") in fake_discord.reactions, SLOW
        )
        assert _notices(fake_discord) == []  # nothing about Alice's link in the channel

        it = await fake_discord.slash("spotify status", user_id=bob)
        [msg] = await fake_discord.wait_response(it)
        assert NOTICE not in msg.text  # somebody else's notice is never shown

        it = await fake_discord.slash("spotify status")
        [msg] = await fake_discord.wait_response(it)
        assert msg.ephemeral and NOTICE in msg.text and "/spotify link" in msg.text
        assert len(fake_discord.responses(it)) == 1  # in the answer, not also as a followup

        it = await fake_discord.slash("spotify link")
        [msg] = await fake_discord.wait_response(it)
        assert "previous Spotify link ended" not in msg.text
    assert len(_notices(fake_discord)) == 1


async def test_a_notice_discord_refuses_waits_and_relinking_says_why(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot, monkeypatch
) -> None:
    from tests.fakes import discord_fake

    fake = fake_spotify
    owner = int(fake_discord.owner_user["id"])
    services = await _linked_services(make_services, fake, owner)
    _kill_link(fake)
    services.accounts.clock = lambda: 4_000_000_000.0  # the stored access token is stale
    assert await services.accounts.access_token(owner) is None  # invalid_grant: dropped
    async with start_bot(services, progress_interval_s=0.0):
        # Discord refuses the followup (the 15-minute token ran out): the notice is kept.
        webhook = fake_discord._webhook

        def refuse_followups(method: str, token: str, rest: list[str], *args: Any) -> Any:
            if method == "POST" and not rest:
                raise discord_fake.DiscordError(401, 50027, "Invalid Webhook Token")
            return webhook(method, token, rest, *args)

        monkeypatch.setattr(fake_discord, "_webhook", refuse_followups)
        it = await fake_discord.slash("privacy show")  # answered at once, no followup
        await fake_discord.wait_response(it)
        await fake_discord.wait_for(lambda: any(e[2] == 50027 for e in fake_discord.errors))
        monkeypatch.setattr(fake_discord, "_webhook", webhook)
        assert _notices(fake_discord) == []

        it = await fake_discord.slash("spotify link")
        [msg] = await fake_discord.wait_response(it)
        assert msg.ephemeral and msg.text.startswith("🔗 Your previous Spotify link ended")
        assert "Authorize on Spotify" in str(msg.components)
        assert len(fake_discord.responses(it)) == 1
    assert len([m for m in fake_discord.sent() if "link ended" in m.text]) == 1


async def test_a_link_that_dies_on_a_click_says_why_in_that_answer(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot
) -> None:
    """Alice's link dies between her result and her *Save as playlist* click: the click's
    private answer says why (told there, once), not "link it" with the reason saved for her
    next slash command."""
    fake = fake_spotify
    owner = int(fake_discord.owner_user["id"])
    services = await _linked_services(make_services, fake, owner)
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    async with start_bot(services, progress_interval_s=0.0):
        it = await fake_discord.slash("cluster", {"playlist": link, "k": 3})
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds], SLOW
        )
        [browse_id] = [i for i in fake_discord.custom_ids(first) if i.startswith("pc:browse:")]
        aid = int(browse_id.split(":")[2])
        click = await fake_discord.click(first, browse_id, values=["0"])
        [page] = await fake_discord.wait_response(click)

        _kill_link(fake)
        services.accounts.clock = lambda: 4_000_000_000.0  # the access token is stale
        save = await fake_discord.click(page, f"pc:save:{aid}:0")
        [msg] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(save) if NOTICE in m.text], SLOW
        )
        assert msg.ephemeral and "6 months" in msg.text and "/spotify link" in msg.text

        it = await fake_discord.slash("privacy show")  # told once: no followup here
        await fake_discord.wait_response(it)
        it = await fake_discord.slash("spotify status")
        [status] = await fake_discord.wait_response(it)
        assert "haven't linked" in status.text
    assert len(_notices(fake_discord)) == 1
