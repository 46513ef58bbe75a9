"""A /cluster job resumed after the bot died finishes the reply it was asked from (issue #14).

The real bot runs under the fake Discord; its job is held once its tracks are read and committed,
and the bot then stops while Discord refuses every edit (so the reply stays on its progress line,
as after a kill -9). A second bot on the same database resumes the job: while the interaction
token is valid (15 minutes) it edits that reply to the result; once the token is too old
(by our record, or by Discord's answer) the result goes to the channel as before, without an
error.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import discord_fake
from tests.fakes.discord_fake import FakeDiscord
from tests.test_discord_cluster import csv_bytes

HEADER = "interrupted by a restart"


async def _crash_mid_job(
    fake_discord: FakeDiscord,
    make_services: Any,
    start_bot: Any,
    monkeypatch: Any,
    joiners: list[Any] | None = None,
) -> tuple[Any, int]:
    """/cluster, held once its tracks are read and committed; the bot then dies with Discord
    refusing its last edits. Returns (the interaction, the job id). ``joiners``: the member
    asks again (the same file) before the crash, and the second interaction joins the job."""
    services = await make_services()
    held = asyncio.Event()

    async def hold(job_id: int, state: str, checkpoint: dict) -> None:
        if state == "featurizing":  # the tracks are read and committed
            held.set()
            await asyncio.Event().wait()  # until the bot stops

    services.queue.runner.on_commit = hold
    att = fake_discord.add_attachment("mix.csv", csv_bytes(60))
    async with start_bot(services, progress_interval_s=0.0):
        it = await fake_discord.slash("cluster", {"k": 3}, attachments={"csv": att})
        await asyncio.wait_for(held.wait(), 60)
        [job_id] = services.queue.active_job_ids
        await fake_discord.wait_for(lambda: "Fetched" in _original(fake_discord, it).content)
        ref = await services.store.jobs.reply(job_id)
        assert ref is not None and ref.token == it.token
        assert ref.message_id == it.original_id
        assert it.token not in repr(ref)
        if joiners is not None:
            again = fake_discord.add_attachment("mix.csv", csv_bytes(60))
            joined = await fake_discord.slash("cluster", {"k": 3}, attachments={"csv": again})
            joiners.append(joined)
            await fake_discord.wait_for(
                lambda: joined.original_id and "Fetched" in _original(fake_discord, joined).content
            )
            assert services.queue.active_job_ids == [job_id]  # joined, not a second job

            async def both_kept() -> list[Any]:
                # Kept just after the join (no event marks it): poll, bounded by wait_for.
                while len(refs := await services.store.jobs.replies(job_id)) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                return refs

            refs = await asyncio.wait_for(both_kept(), 30)
            assert [r.message_id for r in refs] == [it.original_id, joined.original_id]
        webhook = fake_discord._webhook

        def dead(*args: Any) -> Any:  # the process is gone: nothing reaches Discord
            raise discord_fake.DiscordError(404, 10015, "Unknown Webhook")

        monkeypatch.setattr(fake_discord, "_webhook", dead)
    monkeypatch.setattr(fake_discord, "_webhook", webhook)
    assert "Fetched" in _original(fake_discord, it).content  # left on its progress line
    fake_discord.errors.clear()  # the dead bot's last tries
    return it, job_id


def _original(fake: FakeDiscord, it: Any) -> Any:
    return fake.messages[it.original_id]


def _raw_bytes(db_path: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in db_path.parent.glob(db_path.name + "*") if p.suffix != ".key"
    )


async def test_the_reply_left_by_a_crash_is_finished_by_the_resumed_job(
    fake_discord: FakeDiscord, make_services, start_bot, monkeypatch, tmp_path: Path
) -> None:
    it, job_id = await _crash_mid_job(fake_discord, make_services, start_bot, monkeypatch)
    assert it.token.encode() not in _raw_bytes(tmp_path / "bot.sqlite3")  # encrypted at rest
    services = await make_services()  # the same database: the job resumes
    async with start_bot(services, progress_interval_s=0.0):
        original = await fake_discord.wait_for(
            lambda: _original(fake_discord, it) if _original(fake_discord, it).embeds else None,
            120,
        )

        async def token_dropped() -> None:
            # Dropped just after the job's end is announced; no event marks that: poll
            # (bounded by wait_for below).
            query = "SELECT reply_blob FROM jobs WHERE id = ?"
            while (await services.db.fetchone(query, (job_id,)))["reply_blob"] is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        await asyncio.wait_for(token_dropped(), 30)
    assert HEADER in original.text and "Fetched" not in original.content
    assert [f.filename for f in original.files][:1] == ["clusters.png"]
    assert any(i.startswith("pc:browse:") for i in fake_discord.custom_ids(original))
    assert not [m for m in fake_discord.sent(via="channel") if m.embeds]  # not posted twice
    assert not fake_discord.errors


async def test_every_reply_that_joined_the_job_is_finished_after_a_crash(
    fake_discord: FakeDiscord, make_services, start_bot, monkeypatch
) -> None:
    """The member asked twice (the second /cluster joined the running job): after the crash
    both replies get the result, not only the first (the second stayed on "Fetched …")."""
    joiners: list[Any] = []
    it, _ = await _crash_mid_job(fake_discord, make_services, start_bot, monkeypatch, joiners)
    [joined] = joiners
    services = await make_services()
    async with start_bot(services, progress_interval_s=0.0):
        for asked in (it, joined):
            await fake_discord.wait_for(
                lambda a=asked: _original(fake_discord, a).embeds or None, 120
            )
    for asked in (it, joined):
        assert HEADER in _original(fake_discord, asked).text
    assert not [m for m in fake_discord.sent(via="channel") if m.embeds]  # not posted as well
    assert not fake_discord.errors


@pytest.mark.parametrize("who_knows", ["our record", "discord"])
async def test_an_expired_token_posts_to_the_channel_without_an_error(
    fake_discord: FakeDiscord, make_services, start_bot, monkeypatch, caplog, who_knows: str
) -> None:
    it, _ = await _crash_mid_job(fake_discord, make_services, start_bot, monkeypatch)
    fake_discord.clock.advance(16 * 60)  # Discord: the token is 16 minutes old
    services = await make_services()
    if who_knows == "our record":
        later = datetime.now(UTC) + timedelta(minutes=16)
        services.store.jobs._clock = lambda: later
    async with start_bot(services, progress_interval_s=0.0):
        [post] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.sent(via="channel") if m.embeds] or None, 120
        )
    assert f"<@{it.user_id}>" in post.content and HEADER in post.text
    assert "Fetched" in _original(fake_discord, it).content  # untouched: it can't be edited
    tried = [e for e in fake_discord.errors if e[2] == 50027]
    assert len(tried) == (1 if who_knows == "discord" else 0)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_a_resumed_job_that_fails_says_so_in_its_reply_privately(
    fake_discord: FakeDiscord, make_services, start_bot, monkeypatch
) -> None:
    """A member's own mistake found after the restart: the public reply goes, the member alone
    reads why (as in a live reply)."""
    from bot.errors import InvalidInput
    from bot.jobs import cpu

    it, _ = await _crash_mid_job(fake_discord, make_services, start_bot, monkeypatch)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise InvalidInput("These tracks can't be told apart by sound.")

    monkeypatch.setattr(cpu, "cluster_step", refuse)
    services = await make_services()
    async with start_bot(services, progress_interval_s=0.0):
        [told] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if "told apart" in m.text] or None,
            120,
        )
    assert told.ephemeral and told.via == "followup"
    assert it.original_id not in fake_discord.messages  # the progress line is gone
    assert not [m for m in fake_discord.sent(via="channel") if "told apart" in m.text]


async def test_a_reply_answered_live_keeps_no_token(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    """Kept while the job runs, dropped when it ends: a secret is not stored for nothing."""
    services = await make_services()
    kept: list[bool] = []

    async def seen(job_id: int, state: str, checkpoint: dict) -> None:
        kept.append(await services.store.jobs.reply(job_id) is not None)

    services.queue.runner.on_commit = seen
    att = fake_discord.add_attachment("mix.csv", csv_bytes(60))
    async with start_bot(services, progress_interval_s=0.0):
        it = await fake_discord.slash("cluster", {"k": 3}, attachments={"csv": att})
        await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds] or None, 120
        )

        async def no_token_left() -> None:
            # Dropped just after the job's end is announced; no event marks that: poll
            # (bounded by wait_for below).
            query = "SELECT count(*) FROM jobs WHERE reply_blob IS NOT NULL"
            while (await services.db.fetchone(query))[0]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        await asyncio.wait_for(no_token_left(), 30)
    assert any(kept[1:])  # there while it ran (the first commit may come before it is kept)
