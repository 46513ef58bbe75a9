"""End-to-end: the real discord.py client against the fake Discord (start-up, sync, /about)."""

from __future__ import annotations

from tests.fakes.discord_fake import FakeDiscord


async def test_bot_starts_syncs_to_dev_guild_and_answers_about(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    async with start_bot(services) as bot:
        assert fake_discord.identifies == 1
        assert fake_discord.intents is not None and fake_discord.intents & (1 << 15)
        guild_cmds = {c["name"] for c in fake_discord.commands[str(fake_discord.guild_id)]}
        assert "about" in guild_cmds
        assert "global" not in fake_discord.commands  # no global sync unless asked
        it = await fake_discord.slash("about")
        [msg] = await fake_discord.wait_response(it)
        assert msg.ephemeral
        assert bot.version in msg.text
        assert "ReccoBeats: disabled" in msg.text
