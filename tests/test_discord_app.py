"""End-to-end: start-up, command sync, /about, owner sync, resumed jobs, graceful close."""

from __future__ import annotations

from pathlib import Path

from bot.models import AnalysisRequest, PlaylistMeta
from tests.fakes.discord_fake import FakeDiscord

CORE = ["cogs.cluster", "cogs.about", "cogs.admin"]
SAMPLE = Path(__file__).parent / "data" / "tidytuesday_sample.csv"


async def test_bot_starts_syncs_to_dev_guild_and_answers_about(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    async with start_bot(services) as bot:
        assert fake_discord.identifies == 1
        assert fake_discord.intents is not None and fake_discord.intents & (1 << 15)
        guild_cmds = {c["name"] for c in fake_discord.commands[str(fake_discord.guild_id)]}
        assert {"cluster", "clusters", "about", "admin"} <= guild_cmds
        assert "global" not in fake_discord.commands  # no global sync unless asked
        it = await fake_discord.slash("about")
        [msg] = await fake_discord.wait_response(it)
        assert msg.ephemeral
        assert bot.version in msg.text
        assert "ReccoBeats: disabled" in msg.text
        assert "not configured" in msg.text  # no Spotify credentials
        assert "0 job(s) running" in msg.text
    assert services.db._conn is None  # closed with the bot


async def test_about_reports_spotify_mode(
    fake_discord: FakeDiscord, fake_spotify, make_services, start_bot
) -> None:
    from tests.fakes.spotify_fixtures import spotify_settings

    def probes() -> int:
        return sum(1 for _m, path, _q in fake_spotify.requests if path.endswith("/audio-features"))

    services = await make_services(spotify_settings(fake_spotify), reccobeats_enabled=True)
    async with start_bot(services) as bot:
        # the app mode is probed once at start-up, in the background
        assert await bot._mode_probe == "development"
        assert probes() == 1
        it = await fake_discord.slash("about")
        [msg] = await fake_discord.wait_response(it)
        assert probes() == 1  # /about reuses what the probe learned
    assert "Development Mode" in msg.text
    assert "ReccoBeats: enabled" in msg.text


async def test_sync_global_only_by_the_owner(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    stranger = fake_discord.add_user("stranger")
    async with start_bot(services):
        await fake_discord.send_message("!sync global", user_id=stranger)
        it = await fake_discord.slash("admin sync", {"scope": "global"}, user_id=stranger)
        [denied] = await fake_discord.wait_response(it)
        assert "global" not in fake_discord.commands
        await fake_discord.send_message("!sync global")  # the owner (fake app owner)
        reply = await fake_discord.wait_for(
            lambda: next(
                (m for m in fake_discord.sent(via="channel") if "Synced" in m.content), None
            )
        )
    assert denied.ephemeral and "owner" in denied.content
    assert "global" in reply.content
    assert {c["name"] for c in fake_discord.commands["global"]} >= {"cluster", "about"}
    refusals = [m for m in fake_discord.sent(via="channel") if "Only the bot owner" in m.content]
    assert len(refusals) == 1


async def test_global_sync_at_start_when_configured(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services(discord_sync_global=True)
    async with start_bot(services) as bot:
        assert "global" in bot.synced
    assert "cluster" in {c["name"] for c in fake_discord.commands["global"]}


async def test_job_left_by_a_crash_is_posted_to_its_channel(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    from bot.jobs import dedupe_key

    services = await make_services()
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:61]
    request = AnalysisRequest(
        csv_text="\n".join(lines) + "\n",
        csv_name="left.csv",
        k=3,
        user_id=int(fake_discord.owner_user["id"]),
        guild_id=fake_discord.guild_id,
        channel_id=fake_discord.channel_id,
    )
    await services.store.jobs.create(dedupe_key(request), request)  # as if we crashed here
    async with start_bot(services):
        msgs = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.sent(via="channel") if m.embeds] or None
        )
    assert f"<@{request.user_id}>" in msgs[0].content
    assert "restart" in msgs[0].text
    assert [f.filename for f in msgs[0].files][:1] == ["clusters.png"]


class StubAccounts:
    """Just enough of H5's AccountService for autocomplete and 💚 marks."""

    def __init__(self, linked: set[int], liked: set[str] = frozenset()) -> None:
        self.linked, self.liked = linked, set(liked)

    async def status(self, user_id: int):
        return {"display_name": "Alice"} if user_id in self.linked else None

    async def my_playlists(self, user_id: int):
        return [
            PlaylistMeta(id=f"{i:022d}", name=f"Road trip {i}", total=10 + i) for i in range(30)
        ] + [PlaylistMeta(id="B" * 22, name="Study beats", total=5)]

    async def liked_among(self, user_id: int, ids):
        return self.liked & set(ids)

    async def access_token(self, user_id: int):
        return None


async def test_playlist_autocomplete_from_linked_account(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    owner = int(fake_discord.owner_user["id"])
    services.accounts = StubAccounts({owner})
    stranger = fake_discord.add_user("stranger")
    async with start_bot(services, extensions=CORE):
        it = await fake_discord.autocomplete("cluster", "playlist", "study")
        await fake_discord.wait_acked(it)
        it_all = await fake_discord.autocomplete("cluster", "playlist", "")
        await fake_discord.wait_acked(it_all)
        it2 = await fake_discord.autocomplete("cluster", "playlist", "", user_id=stranger)
        await fake_discord.wait_acked(it2)
    choices = it.callbacks[0]["data"]["choices"]
    assert choices == [
        {"name": "Study beats (5 tracks)", "value": "https://open.spotify.com/playlist/" + "B" * 22}
    ]
    assert len(it_all.callbacks[0]["data"]["choices"]) == 25  # Discord's maximum
    assert it2.callbacks[0]["data"]["choices"] == []  # not linked: nothing to suggest


async def test_run_bot_explains_a_rejected_token(
    fake_discord: FakeDiscord, tmp_path, caplog
) -> None:
    import pytest

    from bot.app import run_bot
    from tests.fakes.discord_fixtures import discord_test_settings

    fake_discord.token = "the-right-token"
    settings = discord_test_settings(tmp_path, discord_token="wrong-secret-token")
    with pytest.raises(SystemExit) as exc:
        await run_bot(settings, configure_logging=False)
    assert "rejected DISCORD_TOKEN" in str(exc.value)
    assert "wrong-secret-token" not in str(exc.value) + caplog.text


async def test_run_bot_explains_the_message_content_intent(
    fake_discord: FakeDiscord, tmp_path
) -> None:
    import pytest

    from bot.app import run_bot
    from tests.fakes.discord_fixtures import discord_test_settings

    fake_discord.message_content_allowed = False
    settings = discord_test_settings(tmp_path)
    with pytest.raises(SystemExit) as exc:
        await run_bot(settings, configure_logging=False)
    assert "Message Content" in str(exc.value)


async def test_build_services_wires_the_settings_into_the_store(make_services) -> None:
    services = await make_services(feature_cache_days=7)
    assert services.store.features.days == 7
    assert services.ctx.feature_cache is services.store.features  # features cached across playlists
    assert services.queue.store is services.store


async def test_sync_answers_where_the_bot_cannot_read_message_history(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    """`!sync` answered with a reply, which Discord refuses without Read Message History
    (160002): the sync happened, the owner heard nothing, the log had a traceback."""
    services = await make_services()
    fake_discord.deny_bot(fake_discord.channel_id, "read_message_history")
    async with start_bot(services):
        await fake_discord.send_message("!sync")
        reply = await fake_discord.wait_for(
            lambda: next(
                (m for m in fake_discord.sent(via="channel") if "Synced" in m.content), None
            )
        )
    assert reply.reference_id is None and not fake_discord.errors
