"""Buttons across a bot restart and across bot processes, through the fake Discord.

``/privacy delete``'s confirmation and ``/spotify link``'s "Paste the URL" carry whose they
are and when they expire in their custom ids: clicked after a restart they are answered (not
Discord's "This interaction failed"), late clicks are refused plainly, and no member can
answer another's. A deletion answered by one bot process is effective in every other one.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.discord_fake import FakeDiscord, Sent
from tests.fakes.discord_fixtures import store_demo_analysis
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings
from tests.test_discord_spotify import approve, buttons, open_modal, submit_modal

T0 = 1_796_000_000.0  # 2026-11-30, Unix seconds: the wall clock of the first process


def at(seconds: float) -> Any:
    """A wall clock stopped ``seconds`` after T0."""
    return lambda: T0 + seconds


async def ask_delete(fake: FakeDiscord, *, user_id: int | None = None) -> tuple[Sent, str, str]:
    """Run /privacy delete: (the confirmation, its delete custom id, its cancel custom id)."""
    ask = await fake.slash("privacy delete", user_id=user_id)
    [question] = await fake.wait_response(ask)
    [delete_id] = [c for c in fake.custom_ids(question) if ":yes:" in c]
    [cancel_id] = [c for c in fake.custom_ids(question) if ":no:" in c]
    return question, delete_id, cancel_id


async def test_a_delete_confirmation_is_answered_after_a_restart(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    alice = int(fake_discord.owner_user["id"])
    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 2)
    async with start_bot(services, wall_clock=at(0)):
        question, delete_id, _ = await ask_delete(fake_discord)
    assert question.ephemeral and delete_id.startswith(f"pc:forget:yes:{alice}:")
    # A brand-new process (new services on the same database), 30 s later: same old message.
    services2 = await make_services()
    async with start_bot(services2, wall_clock=at(30)):
        click = await fake_discord.click(question, delete_id)
        await fake_discord.wait_for(lambda: "Deleted" in question.content, within=10)
        left = await services2.store.analyses.get(aid)
    assert click.response_type == 7 and "1 analyses" in question.content
    assert not fake_discord.custom_ids(question)  # the buttons are gone
    assert left is None


async def test_an_expired_confirmation_is_refused_after_a_restart(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 2)
    async with start_bot(services, wall_clock=at(0)):
        question, delete_id, _ = await ask_delete(fake_discord)
    services2 = await make_services()
    async with start_bot(services2, wall_clock=at(121)):  # past its two minutes
        click = await fake_discord.click(question, delete_id)
        await fake_discord.wait_for(lambda: "expired" in question.content, within=10)
        kept = await services2.store.analyses.get(aid)
    assert click.response_type == 7
    assert "Nothing was deleted" in question.content and "/privacy delete" in question.content
    assert not fake_discord.custom_ids(question)
    assert kept is not None


async def test_cancel_after_a_restart_deletes_nothing(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 2)
    async with start_bot(services, wall_clock=at(0)):
        question, _, cancel_id = await ask_delete(fake_discord)
    services2 = await make_services()
    async with start_bot(services2, wall_clock=at(5)):
        await fake_discord.click(question, cancel_id)
        await fake_discord.wait_for(lambda: question.content == "Nothing was deleted.")
        kept = await services2.store.analyses.get(aid)
    assert kept is not None


async def test_nobody_confirms_another_members_deletion(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    """The confirmation is ephemeral, but a click is checked anyway: bob's click on alice's
    button (a forged or replayed interaction) deletes nothing and is told so privately."""
    bob = fake_discord.add_user("bob")
    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 2)
    theirs = await store_demo_analysis(services, fake_discord, 2, user_id=bob)
    async with start_bot(services, wall_clock=at(0)):
        question, delete_id, _ = await ask_delete(fake_discord)
        click = await fake_discord.click(question, delete_id, user_id=bob)
        [refused] = await fake_discord.wait_response(click)
        mine = await services.store.analyses.get(aid)
        bobs = await services.store.analyses.get(theirs)
    assert refused.ephemeral and "belongs to someone else" in refused.text
    assert mine is not None and bobs is not None
    assert delete_id in fake_discord.custom_ids(question)  # alice's question still stands


async def test_paste_the_url_works_after_a_restart(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot
) -> None:
    settings = spotify_settings(fake_spotify, spotify_redirect_uri=None)
    services = await make_services(settings)
    async with start_bot(services, extensions=["cogs.spotify"], wall_clock=at(0)):
        it = await fake_discord.slash("spotify link")
        [msg] = await fake_discord.wait_response(it)
    [url] = [b["url"] for b in buttons(msg) if b.get("style") == 5]
    [paste_id] = [b["custom_id"] for b in buttons(msg) if b.get("custom_id")]
    _, redirected, _ = await approve(fake_spotify, url, follow=False)
    services2 = await make_services(settings)
    async with start_bot(services2, extensions=["cogs.spotify"], wall_clock=at(60)) as bot:
        modal = await open_modal(fake_discord, bot, msg, paste_id)
        done = await submit_modal(fake_discord, modal, redirected)
        [reply] = await fake_discord.wait_response(done)
    assert reply.ephemeral and "Linked as **Alice**" in reply.text


async def test_paste_the_url_is_refused_when_late_or_not_yours(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot
) -> None:
    from bot.accounts import STATE_TTL

    bob = fake_discord.add_user("bob")
    settings = spotify_settings(fake_spotify, spotify_redirect_uri=None)
    services = await make_services(settings)
    async with start_bot(services, extensions=["cogs.spotify"], wall_clock=at(0)):
        it = await fake_discord.slash("spotify link")
        [msg] = await fake_discord.wait_response(it)
        [paste_id] = [b["custom_id"] for b in buttons(msg) if b.get("custom_id")]
        theirs = await fake_discord.click(msg, paste_id, user_id=bob)
        [refused] = await fake_discord.wait_response(theirs)
    late = STATE_TTL.total_seconds() + 1
    services2 = await make_services(settings)
    async with start_bot(services2, extensions=["cogs.spotify"], wall_clock=at(late)):
        click = await fake_discord.click(msg, paste_id)
        await fake_discord.wait_for(lambda: "expired" in msg.content, within=10)
    assert theirs.response_type == 4 and refused.ephemeral
    assert "belongs to someone else" in refused.text
    assert click.response_type == 7 and "/spotify link" in msg.content
    assert not fake_discord.custom_ids(msg)


async def test_a_deletion_in_one_process_is_effective_in_another(
    fake_discord: FakeDiscord, make_services, start_bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two bot processes on one database, shards 0 and 1 of 2 (the "Running at scale" set-up).
    Process A has alice's analysis in its small cache (someone paged through it); alice runs
    ``/privacy delete`` in a server of shard 0, answered by process B. A's next click on the
    old result must not show her deleted analysis from its cache."""
    from bot import app
    from bot.models import AnalysisRequest
    from tests.fakes.discord_fixtures import demo_outcome

    g1, general1 = fake_discord.add_guild("Shard one", shard=1, shard_count=2)
    _, general0 = fake_discord.add_guild("Shard zero", shard=0, shard_count=2)
    services_a = await make_services(shard_count=2, shard_ids="1")
    services_b = await make_services(shard_count=2, shard_ids="0")
    analysis, rendered = demo_outcome(2)
    alice = int(fake_discord.owner_user["id"])
    request = AnalysisRequest(demo=True, k=2, user_id=alice, guild_id=g1, channel_id=general1)
    aid = await services_a.store.analyses.save(analysis, rendered, request)
    browse = f"pc:browse:{aid}:0"
    monkeypatch.setattr(app, "PlaylistClustersBot", app.ShardedPlaylistClustersBot)
    async with (
        start_bot(services_a, shard_count=2, shard_ids=[1], manage_services=False) as bot_a,
        start_bot(services_b, shard_count=2, shard_ids=[0], manage_services=False),
    ):
        it = await fake_discord.slash("clusters show", {"id": aid}, channel_id=general1)
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
        before = await fake_discord.click(first, browse, values=["0"])
        [page] = await fake_discord.wait_response(before)
        assert aid in bot_a.analysis_cache._items  # process A keeps it decoded

        ask = await fake_discord.slash("privacy delete", channel_id=general0)  # process B
        [question] = await fake_discord.wait_response(ask)
        [delete_id] = [c for c in fake_discord.custom_ids(question) if ":yes:" in c]
        await fake_discord.click(question, delete_id)
        await fake_discord.wait_for(lambda: "Deleted" in question.content)

        after = await fake_discord.click(first, browse, values=["0"])
        [refused] = await fake_discord.wait_response(after)
    assert "Page 1/" in page.text
    assert refused.ephemeral and f"#{aid} is no longer stored" in refused.text
    assert aid not in bot_a.analysis_cache._items
