"""/digest end to end: the real bot against the fake Discord, time driven by a ManualClock.

The job queue is the scripted one from tests/test_digests.py (real TidyTuesday tracks,
real k-means), so these tests are about the Discord side: permissions, validation messages,
what lands in the channel (within Discord's limits, which the fake enforces), and pausing.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import matplotlib.pyplot as plt
import pytest

from bot.digests import DigestScheduler, Schedule
from bot.errors import NotOwner
from tests.fakes.discord_fake import EPHEMERAL, DiscordError, FakeDiscord, Sent
from tests.manual_clock import ManualClock
from tests.test_digests import ScriptedQueue, _by_playlist, _snapshot
from tests.test_discord_cluster import cluster_fields

LINK = "https://open.spotify.com/playlist/3S03NWbWkrR1e7DPH9rf9Z?si=abc"
PLAYLIST_ID = "3S03NWbWkrR1e7DPH9rf9Z"
MANAGE_GUILD = 1 << 5


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _png() -> bytes:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.scatter([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@pytest.fixture
async def env(fake_discord: FakeDiscord, make_services, start_bot) -> AsyncIterator[Any]:
    services = await make_services()
    clock = ManualClock(utc(2026, 11, 23, 7, 0))  # Monday, 08:00 in Paris
    queue = ScriptedQueue(services.db, png=_png())
    services.digests = DigestScheduler(services.db, queue, clock=clock)
    async with start_bot(services) as bot:
        yield SimpleNamespace(
            bot=bot, fake=fake_discord, clock=clock, queue=queue, sched=services.digests
        )


async def _reply(fake: FakeDiscord, command: str, options: dict | None = None, **kw) -> Sent:
    it = await fake.slash(command, options, **kw)
    [msg] = await fake.wait_response(it)
    return msg


async def _slash_with_channel(fake: FakeDiscord, options: dict[str, Any], channel_id: int) -> Sent:
    """``/digest add`` with a resolved channel option (as Discord sends it)."""
    synced = fake._command("digest")
    assert synced is not None
    schema = next(o for o in synced["options"] if o["name"] == "add")["options"]
    types = {o["name"]: o["type"] for o in schema}
    opts = [{"name": k, "type": types[k], "value": v} for k, v in options.items()]
    opts.append({"name": "channel", "type": 7, "value": str(channel_id)})
    owner = int(fake.owner_user["id"])
    channel = dict(fake.channel(channel_id), permissions=str(fake.permissions(channel_id, owner)))
    data = {
        "id": synced["id"],
        "name": "digest",
        "type": 1,
        "options": [{"name": "add", "type": 1, "options": opts}],
        "resolved": {"channels": {str(channel_id): channel}},
    }
    fi, payload = fake._interaction_base(2, data, None, None)
    await fake.dispatch("INTERACTION_CREATE", payload)
    [msg] = await fake.wait_response(fi)
    return msg


def _channel_posts(fake: FakeDiscord, channel_id: int) -> list[Sent]:
    return sorted(fake.sent(channel_id=channel_id, via="channel"), key=lambda m: m.id)


async def test_digest_commands_are_for_managers_in_servers(env: Any) -> None:
    fake: FakeDiscord = env.fake
    [cmd] = [c for c in fake.commands[str(fake.guild_id)] if c["name"] == "digest"]
    assert int(cmd["default_member_permissions"]) == MANAGE_GUILD
    assert cmd.get("contexts") == [0] or cmd.get("dm_permission") is False
    assert {o["name"] for o in cmd["options"]} == {"add", "list", "remove", "run", "resume"}

    # default_permissions can be overridden per server: the runtime check still holds.
    member = fake.add_user("member")
    for command, options in [
        ("digest list", None),
        ("digest add", {"playlist": LINK, "every": "daily", "at": "09:00"}),
        ("digest run", {"id": 1}),
    ]:
        msg = await _reply(fake, command, options, user_id=member)
        assert msg.ephemeral and "Manage Server" in msg.text
    assert await env.sched.subscriptions(fake.guild_id) == []

    manager = fake.add_user("mod", manage_guild=True)
    msg = await _reply(fake, "digest list", user_id=manager)
    assert msg.ephemeral and "No digests yet" in msg.text


async def test_add_validates_input_and_lists(env: Any) -> None:
    fake: FakeDiscord = env.fake
    bad = [
        ({"playlist": "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC"}, "track"),
        ({"at": "25:00"}, "HH:MM"),
        ({"timezone": "Mars/Olympus"}, "IANA"),
        ({"weekday": 4}, "only for weekly digests"),  # was silently ignored: every day
    ]
    for override, expected in bad:
        options = {"playlist": LINK, "every": "daily", "at": "09:00", **override}
        msg = await _reply(fake, "digest add", options)
        assert msg.ephemeral and expected in msg.text, msg.text

    it = await fake.autocomplete("digest add", "timezone", "paris")
    await fake.wait_acked(it)
    choices = it.callbacks[0]["data"]["choices"]
    assert choices[0] == {"name": "Europe/Paris", "value": "Europe/Paris"}

    options = {
        "playlist": LINK,
        "every": "weekly",
        "at": "18:30",
        "timezone": "europe/paris",
        "weekday": 4,
    }
    msg = await _slash_with_channel(fake, options, fake.other_channel_id)
    assert msg.ephemeral and "Digest `#1`" in msg.text
    assert "every Friday at 18:30 (Europe/Paris)" in msg.text
    [sub] = await env.sched.subscriptions(fake.guild_id)
    assert sub.channel_id == fake.other_channel_id and sub.playlist_id == PLAYLIST_ID
    assert sub.playlist_ref == f"https://open.spotify.com/playlist/{PLAYLIST_ID}"
    assert sub.next_run_at == "2026-11-27T17:30:00+00:00"  # Friday 18:30 CET

    msg = await _slash_with_channel(fake, options, fake.other_channel_id)
    assert "already gets a digest" in msg.text

    listing = await _reply(fake, "digest list")
    assert listing.ephemeral
    assert "#1" in listing.text and "every Friday at 18:30 (Europe/Paris)" in listing.text

    # A channel where the bot cannot attach the scatter image is refused up front.
    fake.deny_bot(fake.channel_id, "attach_files")
    msg = await _reply(fake, "digest add", {"playlist": LINK, "every": "daily", "at": "9:00"})
    assert "Attach Files" in msg.text
    assert len(await env.sched.subscriptions(fake.guild_id)) == 1

    msg = await _reply(fake, "digest remove", {"id": 1})
    assert "Removed digest `#1`" in msg.text
    assert await env.sched.subscriptions(fake.guild_id) == []
    msg = await _reply(fake, "digest remove", {"id": 1})
    assert "no digest #1" in msg.text


async def test_scheduled_digests_post_clusters_changes_and_no_change_line(env: Any) -> None:
    fake: FakeDiscord = env.fake
    playlists = _by_playlist()
    base = playlists["Neo-Soul"][:30] + playlists["Trap Nation"][:30]
    added = playlists["Vibra Tropical"][:40]  # more than one field can list: "… and N more"
    edited = base[7:] + added
    env.queue.script += [_snapshot(base, "s1"), _snapshot(edited, "s2"), "same"]

    msg = await _reply(
        fake,
        "digest add",
        {"playlist": LINK, "every": "daily", "at": "09:00", "timezone": "Europe/Paris", "k": 3},
        channel_id=fake.other_channel_id,
    )
    assert "Digest `#1`" in msg.text

    env.clock.set(utc(2026, 11, 23, 7, 59))
    await env.sched.settle()
    assert _channel_posts(fake, fake.other_channel_id) == []

    env.clock.set(utc(2026, 11, 23, 8, 0))  # 09:00 in Paris
    await env.sched.settle()
    first = _channel_posts(fake, fake.other_channel_id)
    assert first, "the digest was not posted"
    assert first[0].content.startswith("📬 **Daily digest**")
    assert "First digest" in first[0].text and "3 clusters" in first[0].text
    assert [f.filename for f in first[0].files][:1] == ["clusters.png"]
    assert len(first) == 1  # the whole digest in one message, controls under it
    assert len(first[0].embeds) == 2 and len(cluster_fields(first)) == 3  # overview + clusters
    assert any(cid.startswith("pc:browse:") for cid in fake.custom_ids(first[0]))
    assert env.queue.requests[0].k == 3 and env.queue.requests[0].user_id is not None

    env.clock.set(utc(2026, 11, 24, 8, 0))
    await env.sched.settle()
    second = _channel_posts(fake, fake.other_channel_id)[len(first) :]
    assert len(second) == 1  # changes lead the clusters in the same message
    changes = second[0]
    assert second[0].content.startswith("📬 **Daily digest**")
    assert changes.embeds[0]["title"] == "What changed"
    fields = {f["name"]: f["value"] for f in changes.embeds[0]["fields"]}
    assert "40** added · **7** removed" in changes.embeds[0]["description"]
    assert "… and 35 more" in fields["➕ Added (40)"]
    assert added[0].name.split(" ")[0] in fields["➕ Added (40)"]
    assert base[0].artists[0] in fields["➖ Removed (7)"]
    assert "Clusters" in fields
    assert not fake.errors  # every message passed the fake's Discord limits

    env.clock.set(utc(2026, 11, 25, 8, 0))
    await env.sched.settle()
    third = _channel_posts(fake, fake.other_channel_id)[len(first) + len(second) :]
    assert len(third) == 1 and "no changes since" in third[0].content
    assert third[0].embeds == [] and third[0].files == []


async def test_vanished_channel_pauses_and_is_reported_once(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake: FakeDiscord = env.fake
    env.queue.script += [_snapshot(_by_playlist()["Neo-Soul"][:30], "s1")]
    sub = await env.sched.subscribe(
        guild_id=fake.guild_id,
        channel_id=fake.other_channel_id,
        playlist_ref=LINK,
        playlist_id=PLAYLIST_ID,
        schedule=Schedule.build("daily", "07:30", "UTC"),
        k=None,
        created_by=int(fake.owner_user["id"]),
    )
    # The channel is deleted on Discord's side (the bot's cache does not know yet).
    gone = fake.other_channel_id
    real_channel = fake.channel

    def channel(cid: int) -> dict:
        if cid == gone:
            raise DiscordError(404, 10003, "Unknown Channel")
        return real_channel(cid)

    monkeypatch.setattr(fake, "channel", channel)

    env.clock.set(utc(2026, 11, 23, 7, 30))
    await env.sched.settle()
    paused = await env.sched.subs.get(sub.id)
    assert paused.paused and "deleted" in paused.pause_reason
    [report] = _channel_posts(fake, fake.channel_id)  # first channel the bot can write in
    assert "paused" in report.content and f"/digest resume {sub.id}" in report.content
    assert f"<@{fake.owner_user['id']}>" in report.content  # the subscriber is told

    for day in (24, 25):
        env.clock.set(utc(2026, 11, day, 7, 30))
        await env.sched.settle()
    assert len(_channel_posts(fake, fake.channel_id)) == 1  # reported once
    assert len(env.queue.requests) == 1  # and not retried

    listing = await _reply(fake, "digest list")
    assert "Paused" in listing.text and "deleted" in listing.text
    msg = await _reply(fake, "digest run", {"id": sub.id})
    assert "paused" in msg.text
    msg = await _reply(fake, "digest resume", {"id": sub.id})  # the channel is still gone
    assert "stays paused" in msg.text and "was deleted" in msg.text
    assert (await env.sched.subs.get(sub.id)).paused
    monkeypatch.setattr(fake, "channel", real_channel)  # (a channel with that id is back)
    msg = await _reply(fake, "digest resume", {"id": sub.id})
    assert "resumed" in msg.text
    assert not (await env.sched.subs.get(sub.id)).paused


async def test_lost_access_and_unreadable_playlist_pause(env: Any) -> None:
    fake: FakeDiscord = env.fake
    tracks = _by_playlist()["Neo-Soul"][:30]
    private_link = "https://open.spotify.com/playlist/37i9dQZF1DX68H8ZujdnN7"
    env.queue.script += [_snapshot(tracks, "s1")]
    env.queue.by_link[private_link] = [
        NotOwner("I can't read that playlist: it is private to its owner.")
    ]
    owner = int(fake.owner_user["id"])
    subs = []
    for channel, link in ((fake.other_channel_id, LINK), (fake.channel_id, private_link)):
        subs.append(
            await env.sched.subscribe(
                guild_id=fake.guild_id,
                channel_id=channel,
                playlist_ref=link,
                playlist_id=link.rsplit("/", 1)[1],
                schedule=Schedule.build("daily", "07:30", "UTC"),
                k=None,
                created_by=owner,
            )
        )
    fake.deny_bot(fake.other_channel_id, "view_channel")  # 403 on post
    env.clock.set(utc(2026, 11, 23, 7, 30))
    await env.sched.settle()
    lost, private = [await env.sched.subs.get(s.id) for s in subs]
    assert lost.paused and "permission" in lost.pause_reason
    assert private.paused and "private" in private.pause_reason
    reports = [m.content for m in _channel_posts(fake, fake.channel_id)]
    assert len(reports) == 2 and all("is paused" in r for r in reports)


async def test_run_now_posts_and_answers_ephemerally(env: Any) -> None:
    fake: FakeDiscord = env.fake
    env.queue.script += [_snapshot(_by_playlist()["Neo-Soul"][:30], "s1")]
    await _reply(
        fake,
        "digest add",
        {"playlist": LINK, "every": "weekly", "at": "09:00"},
        channel_id=fake.other_channel_id,
    )
    it = await fake.slash("digest run", {"id": 1})
    await fake.wait_for(lambda: any(m.content for m in fake.responses(it)))
    [answer] = [m for m in fake.responses(it) if m.content]
    assert answer.flags & EPHEMERAL and "Posted digest `#1`" in answer.content
    posts = _channel_posts(fake, fake.other_channel_id)
    assert posts and "run by hand" in posts[0].content
    [sub] = await env.sched.subscriptions(fake.guild_id)
    assert sub.next_run_at == "2026-11-23T09:00:00+00:00"  # schedule unchanged (Monday)


async def test_real_pipeline_digest_is_posted_once(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot
) -> None:
    """Real services (queue, pipeline, fake Spotify): the digest lands once in its channel —
    the /cluster cog's listener for unawaited jobs leaves digest jobs (origin) to their cog."""
    from tests.fakes.spotify_fixtures import spotify_settings

    spotify = fake_spotify_extended
    services = await make_services(spotify_settings(spotify))
    clock = ManualClock(utc(2026, 11, 23, 7, 0))
    services.digests = DigestScheduler(services.db, services.queue, clock=clock)
    jobs_ended = asyncio.Event()

    async def last_listener(*_args: Any) -> None:  # runs after every earlier listener
        jobs_ended.set()

    async with start_bot(services):
        services.queue.add_listener(last_listener)
        link = f"https://open.spotify.com/playlist/{spotify.alice_playlist}"
        msg = await _reply(
            fake_discord,
            "digest add",
            {"playlist": link, "every": "daily", "at": "08:00", "k": 4},
            channel_id=fake_discord.other_channel_id,
        )
        assert "Digest `#1`" in msg.text
        clock.set(utc(2026, 11, 23, 8, 0))
        await services.digests.settle()
        await asyncio.wait_for(jobs_ended.wait(), 30)

        posts = _channel_posts(fake_discord, fake_discord.other_channel_id)
        assert posts and posts[0].content.startswith("📬 **Daily digest** · Alice")
        assert len(posts) == 1 and len(cluster_fields(posts)) == 4
        everywhere = fake_discord.sent(via="channel")
        assert len(everywhere) == len(posts)  # nothing else, nowhere else
        assert not any("your analysis is ready" in m.content for m in everywhere)
        assert not fake_discord.errors


def test_change_and_list_embeds_stay_within_discord_limits() -> None:
    """Worst cases: hundreds of changes with very long names, 25 subscriptions."""
    import discord

    from bot.digests import ClusterChange, DigestChanges, TrackChange
    from cogs.utils.digest_embeds import changes_embed, list_embed
    from storage.digests import Subscription

    long = "Ü*_`~|>" + "x" * 300
    changes = DigestChanges(
        previous_analysis_id=1,
        previous_created_at="2026-11-20T10:00:00+00:00",
        added=[TrackChange(f"a{i}", long, [long, long], i % 12, long) for i in range(500)],
        removed=[TrackChange(f"r{i}", long, [long], None, long, i % 12) for i in range(300)],
        clusters=[ClusterChange(i, long, 40 + i, i, 30, 0.5, 15 + i, 5) for i in range(12)],
        vanished=[ClusterChange(i, long, 0, i, 20, 0.0, 0, 20) for i in range(12, 20)],
        moved=100,
    )
    embed = changes_embed(changes, since="2026-11-22T08:00:00+00:00")
    assert len(embed) <= 6000 and len(embed.fields) <= 25
    assert len(embed.description or "") <= 4096
    for field in embed.fields:
        assert len(field.name) <= 256 and len(field.value) <= 1024
    values = {f.name: f.value for f in embed.fields}
    *shown, tail = values["➕ Added (500)"].split("\n")
    assert 1 <= len(shown) <= 10 and tail == f"… and {500 - len(shown)} more"
    assert "regrouped" in (embed.description or "")
    assert discord.utils.escape_markdown("*") in values["➕ Added (500)"]

    subs = [
        Subscription(
            id=i,
            guild_id=1,
            channel_id=2,
            playlist_ref="https://open.spotify.com/playlist/" + "a" * 22,
            playlist_id="a" * 22,
            every="weekly",
            at_time="09:00",
            timezone="America/Argentina/Buenos_Aires",
            weekday=i % 7,
            k=None,
            created_by=3,
            next_run_at="2026-11-23T09:00:00+00:00",
            paused=i % 2 == 0,
            pause_reason=long,
            last_status="skipped: " + long,
            playlist_name=long,
        )
        for i in range(25)
    ]
    listing = list_embed(subs)
    assert len(listing) <= 6000 and len(listing.description or "") <= 4096
    assert "more" in (listing.description or "")


async def test_digest_leaves_out_a_scatter_over_the_file_limit(env: Any) -> None:
    """Like /cluster: a PNG Discord would refuse (> 10 MiB) is left out, the digest still posts."""
    fake: FakeDiscord = env.fake
    playlists = _by_playlist()
    env.queue.png = b"\x89PNG" + b"\0" * (10 * 1024 * 1024)
    env.queue.script.append(
        _snapshot(playlists["Neo-Soul"][:30] + playlists["Trap Nation"][:30], "s1")
    )
    msg = await _reply(
        fake,
        "digest add",
        {"playlist": LINK, "every": "daily", "at": "09:00", "timezone": "Europe/Paris", "k": 3},
        channel_id=fake.other_channel_id,
    )
    assert "Digest `#1`" in msg.text
    env.clock.set(utc(2026, 11, 23, 8, 0))  # 09:00 in Paris
    await env.sched.settle()
    posts = _channel_posts(fake, fake.other_channel_id)
    assert posts, "the digest was not posted"
    assert len(posts) == 1 and len(cluster_fields(posts)) == 3
    assert all(not m.files for m in posts)
    assert "image" not in posts[0].embeds[0]
    assert any(cid.startswith("pc:browse:") for cid in fake.custom_ids(posts[-1]))


async def test_add_checks_the_playlist_and_names_it(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot
) -> None:
    """/digest add accepted a playlist that doesn't exist; the name is shown when it does."""
    from tests.fakes.spotify_fixtures import spotify_settings

    spotify = fake_spotify_extended
    services = await make_services(spotify_settings(spotify))
    services.digests = DigestScheduler(
        services.db, services.queue, clock=ManualClock(utc(2026, 11, 23, 7, 0))
    )
    async with start_bot(services):
        missing = "https://open.spotify.com/playlist/0000000000000000000000"
        msg = await _reply(fake_discord, "digest add", {"playlist": missing, "every": "daily",
                                                        "at": "08:00"})  # fmt: skip
        assert "couldn't find that playlist" in msg.text
        assert await services.digests.subscriptions(fake_discord.guild_id) == []

        link = f"https://open.spotify.com/playlist/{spotify.alice_playlist}"
        msg = await _reply(
            fake_discord, "digest add", {"playlist": link, "every": "daily", "at": "08:00"}
        )
        assert msg.text.startswith("✅ Digest `#")
        assert f"**{spotify.playlists[spotify.alice_playlist].name}**" in msg.text


class _SlowShortLinks(dict):
    """The fake short-link host's table, answering each lookup 5 s later on the fake Discord's
    clock: past the 3 s Discord gives an interaction's first answer."""

    def __init__(self, fake: FakeDiscord, links: dict[str, str]) -> None:
        super().__init__(links)
        self.fake = fake

    def get(self, key: Any, default: Any = None) -> Any:
        self.fake.clock.advance(5.0)
        return super().get(key, default)


async def test_add_accepts_a_short_link_from_a_phone(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot
) -> None:
    """/digest add refused spotify.link/… links (a redirect lookup could miss Discord's 3 s);
    now it defers first, follows the link, checks the playlist and stores where it leads."""
    from tests.fakes.spotify_fixtures import spotify_settings

    spotify = fake_spotify_extended
    pid = spotify.alice_playlist
    spotify.pages.short_links = _SlowShortLinks(
        fake_discord,
        {
            "Ph0ne": f"https://open.spotify.com/playlist/{pid}?si=x",
            "NotMine": "https://open.spotify.com/playlist/0000000000000000000000",
        },
    )
    services = await make_services(spotify_settings(spotify))
    services.digests = DigestScheduler(
        services.db, services.queue, clock=ManualClock(utc(2026, 11, 23, 7, 0))
    )
    async with start_bot(services):
        options = {"playlist": "https://spotify.link/Ph0ne", "every": "daily", "at": "08:00"}
        msg = await _reply(fake_discord, "digest add", options)
        assert msg.ephemeral and msg.text.startswith("✅ Digest `#"), msg.text
        assert f"**{spotify.playlists[pid].name}**" in msg.text
        [sub] = await services.digests.subscriptions(fake_discord.guild_id)
        assert sub.playlist_id == pid
        assert sub.playlist_ref == f"https://open.spotify.com/playlist/{pid}"
        assert spotify.count("/spotify.link/Ph0ne") == 1

        # Where a short link leads is checked like any link; dead links are said plainly.
        for code, expected in (("NotMine", "couldn't find that playlist"), ("Gone", "anywhere")):
            options = {"playlist": f"spotify.link/{code}", "every": "daily", "at": "08:00"}
            msg = await _reply(fake_discord, "digest add", options)
            assert msg.ephemeral and expected in msg.text, msg.text
        assert len(await services.digests.subscriptions(fake_discord.guild_id)) == 1


async def _until(predicate: Any, within: float = 10.0) -> None:
    """Wait for the bot's side of a gateway event (the fake records nothing to wait on)."""
    for _ in range(int(within / 0.02)):
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def _daily(env: Any, guild_id: int, channel_id: int, created_by: int | None = None) -> Any:
    """A daily 07:30 UTC digest of LINK, set up by ``created_by`` (default: the guild owner)."""
    return await env.sched.subscribe(
        guild_id=guild_id,
        channel_id=channel_id,
        playlist_ref=LINK,
        playlist_id=PLAYLIST_ID,
        schedule=Schedule.build("daily", "07:30", "UTC"),
        k=None,
        created_by=created_by or int(env.fake.owner_user["id"]),
    )


async def _paused(env: Any, sub_id: int) -> bool:
    return bool((await env.sched.subs.get(sub_id)).paused)


async def test_removing_the_bot_from_a_server_pauses_its_digests_at_once(env: Any) -> None:
    """Kicked (or the server deleted): its digests pause with a reason right away, rather than
    reading Spotify at the next slot for a channel the bot can no longer post in. Another
    server's digest keeps running; /digest list says why once the bot is back."""
    fake: FakeDiscord = env.fake
    other_guild, other_channel = fake.add_guild("Other server")
    await fake.dispatch("GUILD_CREATE", fake.guild_create_payload(fake.guilds[other_guild]))
    await _until(lambda: env.bot.get_guild(other_guild) is not None)
    env.queue.script += [_snapshot(_by_playlist()["Neo-Soul"][:30], "s1")]
    subs = [
        await _daily(env, guild, channel)
        for guild, channel in ((fake.guild_id, fake.other_channel_id), (other_guild, other_channel))
    ]
    await fake.remove_guild(other_guild)
    await _until(lambda: _paused(env, subs[1].id), within=5)
    gone = await env.sched.subs.get(subs[1].id)
    assert "removed from this server" in gone.pause_reason

    env.clock.set(utc(2026, 11, 23, 7, 30))
    await env.sched.settle()
    assert [r.guild_id for r in env.queue.requests] == [fake.guild_id]  # no run for the other
    assert not (await env.sched.subs.get(subs[0].id)).paused
    assert not fake.sent(channel_id=other_channel)


async def test_deleting_a_digest_channel_pauses_its_digest_and_says_so_at_once(env: Any) -> None:
    """A digest's channel deleted (Discord tells the bot: CHANNEL_DELETE): the digest pauses
    and the server is told now, not after the next slot has read Spotify for nothing. The
    server's other digests carry on."""
    fake: FakeDiscord = env.fake
    env.queue.script += [_snapshot(_by_playlist()["Neo-Soul"][:30], "s1")]
    subs = [await _daily(env, fake.guild_id, c) for c in (fake.channel_id, fake.other_channel_id)]
    music = fake.channel(fake.other_channel_id)
    fake.guild["channels"].remove(music)
    await fake.dispatch("CHANNEL_DELETE", music)
    await _until(lambda: _paused(env, subs[1].id), within=5)
    assert "#music" in (await env.sched.subs.get(subs[1].id)).pause_reason
    [report] = await fake.wait_for(lambda: _channel_posts(fake, fake.channel_id))
    assert "paused" in report.content and f"/digest remove {subs[1].id}" in report.content

    env.clock.set(utc(2026, 11, 23, 7, 30))
    await env.sched.settle()
    assert [r.channel_id for r in env.queue.requests] == [fake.channel_id]


async def test_digest_add_in_a_thread_says_to_name_a_text_channel(env: Any) -> None:
    """Run from a thread (or a forum post, a voice channel's chat) without `channel:`, the
    refusal says where digests go and how to pick one."""
    fake: FakeDiscord = env.fake
    thread = fake.add_thread(fake.channel_id, "planning")
    options = {"playlist": LINK, "every": "daily", "at": "09:00"}
    msg = await _reply(fake, "digest add", options, channel_id=thread)
    assert msg.ephemeral and "`channel:`" in msg.text and "text channel" in msg.text, msg.text
    assert await env.sched.subscriptions(fake.guild_id) == []


async def test_a_digest_whose_creator_left_pauses_before_reading_with_their_account(
    env: Any,
) -> None:
    """Its creator's linked Spotify account reads the playlist; once they left the server
    (the bot hears nothing: no members intent), the next run asks Discord (REST, 404 Unknown
    Member), pauses the digest without reading anything, and says so in the digest's channel
    with how to re-create it. Resuming is refused for the same reason. Another digest, whose
    creator stayed, carries on."""
    fake: FakeDiscord = env.fake
    bob = fake.add_user("bob", manage_guild=True)
    env.queue.script += [_snapshot(_by_playlist()["Neo-Soul"][:30], "s1")]
    kept = await _daily(env, fake.guild_id, fake.channel_id)
    sub = await env.sched.subscribe(
        guild_id=fake.guild_id,
        channel_id=fake.other_channel_id,
        playlist_ref="https://open.spotify.com/playlist/" + "b" * 22,
        playlist_id="b" * 22,
        schedule=Schedule.build("daily", "07:30", "UTC"),
        k=None,
        created_by=bob,
    )
    fake.remove_member(bob)

    env.clock.set(utc(2026, 11, 23, 7, 30))
    await env.sched.settle()
    paused = await env.sched.subs.get(sub.id)
    assert paused.paused and "no longer a member" in paused.pause_reason
    assert [r.user_id for r in env.queue.requests] == [int(fake.owner_user["id"])]
    assert ("GET", f"/guilds/{fake.guild_id}/members/{bob}", {}) in fake.requests
    [told] = _channel_posts(fake, fake.other_channel_id)  # the digest's own channel
    assert f"Digest `#{sub.id}`" in told.content and "no longer a member" in told.content
    assert f"/digest remove {sub.id}" in told.content and "/digest add" in told.content
    assert "/digest resume" not in told.content  # resuming would not help
    assert not (await env.sched.subs.get(kept.id)).paused

    msg = await _reply(fake, "digest resume", {"id": sub.id})
    assert msg.ephemeral and "stays paused" in msg.text and "/digest add" in msg.text
    assert (await env.sched.subs.get(sub.id)).paused
    env.clock.set(utc(2026, 11, 24, 7, 30))
    await env.sched.settle()
    assert bob not in [r.user_id for r in env.queue.requests]
    assert len(_channel_posts(fake, fake.other_channel_id)) == 1  # said once


async def test_a_digest_of_a_server_this_process_lacks_checks_its_creator_by_rest(
    env: Any,
) -> None:
    """Several bot processes: a digest may run in a process that does not have its server
    (another shard's). The creator is still asked of Discord (GET guild, GET member), and the
    pause is said in the digest's channel (asked of Discord too), not dropped."""
    fake: FakeDiscord = env.fake
    other_guild, other_channel = fake.add_guild("Another shard's server")  # never dispatched
    assert env.bot.get_guild(other_guild) is None
    bob = fake.add_user("bob")
    sub = await _daily(env, other_guild, other_channel, created_by=bob)
    fake.remove_member(bob, other_guild)
    env.clock.set(utc(2026, 11, 23, 7, 30))
    await env.sched.settle()
    assert (await env.sched.subs.get(sub.id)).paused
    assert env.queue.requests == []
    [told] = _channel_posts(fake, other_channel)
    assert "no longer a member" in told.content and "/digest add" in told.content
