"""/cluster and posted links end to end: real discord.py + fake Discord (+ fake Spotify)."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from bot import errors as err
from tests.fakes.discord_fake import FakeDiscord, P, validate_message
from tests.test_discord_errors import StubGateway

SAMPLE = Path(__file__).parent / "data" / "tidytuesday_sample.csv"
LINK = "https://open.spotify.com/playlist/3cEYpjA9oz9GiPac4AsH4n"
LINK2 = "https://open.spotify.com/album/1DFixLWuPkv3KT3TnV35m3"


def csv_bytes(rows: int = 90) -> bytes:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    return ("\n".join(lines[: rows + 1]) + "\n").encode()


def _within_limits(msgs) -> None:
    for m in msgs:
        payload = {"content": m.content, "embeds": m.embeds, "components": m.components}
        validate_message(payload, m.files)


CLUSTER_HEADING = re.compile(r"^\*\*(?P<name>\d+ · .*)\*\*$")


def cluster_fields(msgs) -> list[dict]:
    """Every cluster of a result, read back from its embeds (stored dicts or discord.Embed):
    {"name": its bold heading "<number> · …", "value": its track lines}."""
    out: list[dict] = []
    for m in msgs:
        for e in m.embeds:
            text = e.get("description") if isinstance(e, dict) else e.description
            lines = (text or "").splitlines()
            if not lines or not CLUSTER_HEADING.match(lines[0]):
                continue  # the overview, a digest's changes
            for line in lines:
                heading = CLUSTER_HEADING.match(line)
                if heading:
                    out.append({"name": heading["name"], "value": ""})
                else:
                    out[-1]["value"] = (out[-1]["value"] + "\n" + line).strip("\n")
    return out


async def wait_results(fake: FakeDiscord, source, k: int, *, via: str | None = None):
    """Wait until a whole result with ``k`` clusters was posted for an interaction (or in the
    channel): its last message carries the controls."""

    def done():
        msgs = fake.sent(via=via) if via else fake.responses(source)
        msgs = [m for m in msgs if m.embeds]
        complete = msgs and msgs[-1].components
        return msgs if complete and len(cluster_fields(msgs)) >= k else None

    return await fake.wait_for(done)


def _progress_edits(fake: FakeDiscord, it) -> list[str]:
    return [
        p.get("content") or ""
        for method, path, p in fake.requests
        if method == "PATCH" and it.token in path and not p.get("embeds")
    ]


async def test_cluster_csv_attachment_end_to_end(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    att = fake_discord.add_attachment("my playlist.csv", csv_bytes())
    async with start_bot(services, progress_interval_s=0.0):
        it = await fake_discord.slash("cluster", {"k": 4}, attachments={"csv": att})
        msgs = await wait_results(fake_discord, it, 4)
        history = await services.store.analyses.recent(user_id=it.user_id)
    assert it.response_type == 5 and it.callbacks[0]["type"] == 5  # deferred first
    first = msgs[0]
    assert first.via == "callback" and not first.ephemeral
    assert [f.filename for f in first.files][:1] == ["clusters.png"]
    assert first.files[0].data.startswith(b"\x89PNG")
    overview = first.embeds[0]
    assert overview["image"]["url"] == "attachment://clusters.png"
    assert "90 tracks" in overview["description"] and "4 clusters" in overview["description"]
    assert "Sound from the file for all 90 tracks" in first.text  # feature source, coverage
    assert len(msgs) == 1 and len(cluster_fields(msgs)) == 4
    ids = fake_discord.custom_ids(first)
    assert any(i.startswith("pc:browse:") for i in ids)
    _within_limits(msgs)
    edits = _progress_edits(fake_discord, it)
    assert any("Queued" in e for e in edits) or any("Clustering" in e for e in edits)
    assert any("Clustering" in e for e in edits)
    assert history[0].k == 4


async def test_csv_attachment_is_validated(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    pdf = fake_discord.add_attachment("cover.pdf", b"%PDF-1.4", "application/pdf")
    huge = fake_discord.add_attachment("huge.csv", b"a" * (11 * 1024 * 1024))
    broken = fake_discord.add_attachment("broken.csv", b"hello,world\n1,2\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # Exportify's "Export All"
        z.writestr("liked.csv", csv_bytes(20))
        z.writestr("mix.csv", csv_bytes(20))
    export_all = fake_discord.add_attachment(
        "spotify_playlists.zip", buf.getvalue(), "application/zip"
    )
    async with start_bot(services):
        it1 = await fake_discord.slash("cluster", {}, attachments={"csv": pdf})
        [m1] = await fake_discord.wait_response(it1)
        it2 = await fake_discord.slash("cluster", {}, attachments={"csv": huge})
        [m2] = await fake_discord.wait_response(it2)
        it3 = await fake_discord.slash("cluster", {}, attachments={"csv": broken})
        m3 = await fake_discord.wait_for(
            lambda: next((m for m in fake_discord.responses(it3) if m.ephemeral), None)
        )
        it4 = await fake_discord.slash("cluster", {}, attachments={"csv": export_all})
        [m4] = await fake_discord.wait_response(it4)
    assert m1.ephemeral and "doesn't look like a CSV" in m1.content
    assert m2.ephemeral and "limit is 10 MiB" in m2.content
    assert m4.ephemeral and "zip of 2 CSV files" in m4.content
    assert m3.ephemeral and m3.content.startswith("⚠️")


async def test_csv_saved_by_a_spreadsheet_in_cp1252_is_accepted(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    data = csv_bytes(60).decode("utf-8").encode("cp1252", errors="replace")
    assert any(b >= 0x80 for b in data)  # accented names: not valid UTF-8 any more
    services = await make_services()
    att = fake_discord.add_attachment("excel.csv", data)
    async with start_bot(services):
        it = await fake_discord.slash("cluster", {"k": 3}, attachments={"csv": att})
        msgs = await wait_results(fake_discord, it, 3)
    assert [f.filename for f in msgs[0].files][:1] == ["clusters.png"]


async def test_results_go_to_the_channel_when_the_token_is_too_old(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    att = fake_discord.add_attachment("p.csv", csv_bytes(60))
    async with start_bot(services, interaction_ttl_s=0.0):
        it = await fake_discord.slash("cluster", {"k": 3}, attachments={"csv": att})
        msgs = await wait_results(fake_discord, None, 3, via="channel")
    assert f"<@{it.user_id}>" in msgs[0].content
    assert [f.filename for f in msgs[0].files][:1] == ["clusters.png"]
    assert not [m for m in fake_discord.responses(it) if m.embeds]
    _within_limits(msgs)


async def test_posted_link_error_reply_reaction_and_one_reply_per_message(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    stub = StubGateway(err.NotFound("That playlist doesn't exist."))
    services.ctx.spotify = stub
    async with start_bot(services):
        mid = await fake_discord.send_message(f"two links {LINK} and {LINK2}")
        reply = await fake_discord.wait_for(
            lambda: next(
                (m for m in fake_discord.sent(via="channel") if "doesn't exist" in m.content),
                None,
            )
        )
        await fake_discord.wait_for(
            lambda: (fake_discord.channel_id, mid, "❌", "add") in fake_discord.reactions
        )
        # edits, bots and webhooks never get a reply
        await fake_discord.edit_user_message(mid, f"edited {LINK}")
        await fake_discord.send_message(f"bot says {LINK}", bot=True)
        await fake_discord.send_message(f"webhook says {LINK}", webhook=True)
        # a final message proves the events above were processed in order
        last = await fake_discord.send_message("no link here")
        marker = await fake_discord.send_message(f"later {LINK2}")
        await fake_discord.wait_for(
            lambda: any(
                m.reference_id == marker and "doesn't exist" in m.content
                for m in fake_discord.sent(via="channel")
            )
        )
    assert reply.reference_id == mid
    assert "first of 2 links" in reply.payload.get("content", "") or reply.edits >= 1
    replies = [m for m in fake_discord.sent(via="channel")]
    assert [m.reference_id for m in replies] == [mid, marker]
    assert stub.calls == 2
    assert last not in [m.reference_id for m in replies]
    reacted = [(m, e) for c, m, e, op in fake_discord.reactions if op == "add"]
    assert (mid, "⏳") in reacted  # ⏳ while queued


async def test_links_opt_out_and_back_in(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    stub = StubGateway(err.NotFound("nope"))
    services.ctx.spotify = stub
    manager = fake_discord.add_user("mod", manage_guild=True)
    async with start_bot(services):
        it = await fake_discord.slash("clusters links disable", user_id=manager)
        [ack] = await fake_discord.wait_response(it)
        ignored = await fake_discord.send_message(f"look {LINK}")
        it2 = await fake_discord.slash("clusters links enable", user_id=manager)
        [ack2] = await fake_discord.wait_response(it2)
        answered = await fake_discord.send_message(f"look again {LINK}")
        await fake_discord.wait_for(
            lambda: any(
                m.reference_id == answered and "nope" in m.content
                for m in fake_discord.sent(via="channel")
            )
        )
    assert ack.ephemeral and "ignore" in ack.content
    assert ack2.ephemeral
    assert not any(m.reference_id == ignored for m in fake_discord.sent(via="channel"))
    assert stub.calls == 1


async def test_cluster_spotify_link_then_show_without_refetch(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot
) -> None:
    from tests.fakes.spotify_fixtures import spotify_settings

    fake = fake_spotify_extended
    services = await make_services(spotify_settings(fake))
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    async with start_bot(services, progress_interval_s=0.0):
        it = await fake_discord.slash("cluster", {"playlist": link, "k": 3})
        msgs = await wait_results(fake_discord, it, 3)
        edits = _progress_edits(fake_discord, it)
        aid = (await services.store.analyses.recent(user_id=it.user_id))[0].id
        before = len(fake.requests)
        show = await fake_discord.slash("clusters show", {"id": aid})
        shown = await wait_results(fake_discord, show, 3)
        after = len(fake.requests)
    assert any(e.startswith("📥 Fetched") and "/60 tracks" in e for e in edits)
    assert "Alice's mix" in msgs[0].embeds[0]["title"]
    assert "Sound from Spotify for all 60 tracks" in msgs[0].text
    assert [f.filename for f in shown[0].files][:1] == ["clusters.png"]
    assert after == before  # re-shown from storage: no Spotify request at all
    _within_limits(msgs + shown)


async def test_posted_link_gets_the_results_in_one_reply(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot
) -> None:
    from tests.fakes.spotify_fixtures import spotify_settings

    fake = fake_spotify_extended
    services = await make_services(spotify_settings(fake))
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    async with start_bot(services):
        mid = await fake_discord.send_message(f"what do you think of {link} ?")
        await fake_discord.wait_for(
            lambda: (fake_discord.channel_id, mid, "✅", "add") in fake_discord.reactions
        )
    replies = [m for m in fake_discord.sent(via="channel") if m.embeds]
    assert replies[0].reference_id == mid
    assert [f.filename for f in replies[0].files][:1] == ["clusters.png"]
    assert any(i.startswith("pc:browse:") for i in fake_discord.custom_ids(replies[0]))
    assert len(cluster_fields(replies)) >= 2
    assert len([m for m in fake_discord.sent(via="channel") if m.reference_id == mid]) == 1
    _within_limits(replies)


async def test_posted_link_without_read_message_history_is_answered_in_the_channel(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot
) -> None:
    """Discord refuses a reply (a message_reference) without Read Message History (160002):
    an admin who denies it in a channel still gets results there, posted without the reply
    arrow (and no ⏳/✅, which need it too); the missing-permission notice likewise."""
    from tests.fakes.spotify_fixtures import spotify_settings

    fake = fake_spotify_extended
    services = await make_services(spotify_settings(fake))
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    fake_discord.deny_bot(fake_discord.channel_id, "read_message_history")
    fake_discord.deny_bot(fake_discord.other_channel_id, "read_message_history", "attach_files")
    async with start_bot(services):
        await fake_discord.send_message(f"what do you think of {link} ?")
        msgs = await wait_results(fake_discord, None, 2, via="channel")
        await fake_discord.send_message(
            f"and here {link}", channel_id=fake_discord.other_channel_id
        )
        notice = await fake_discord.wait_for(
            lambda: fake_discord.sent(channel_id=fake_discord.other_channel_id)
        )
    assert not fake_discord.errors, fake_discord.errors
    assert msgs[0].reference_id is None and msgs[0].channel_id == fake_discord.channel_id
    assert [f.filename for f in msgs[0].files][:1] == ["clusters.png"]
    assert "Attach Files" in notice[0].content and notice[0].reference_id is None
    assert not fake_discord.reactions


def _open_threads(fake: FakeDiscord) -> None:
    """@everyone may send in threads, as on a new Discord server (the fake's default roles
    leave it out)."""
    everyone = fake.guild["roles"][0]
    everyone["permissions"] = str(int(everyone["permissions"]) | P["send_messages_in_threads"])


async def test_a_link_posted_in_a_forum_post_gets_results_there(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot
) -> None:
    """A "share your mix" forum where members may not create posts themselves (@everyone is
    denied Send Messages, which a forum shows as Create Posts) but may write in its posts:
    Discord lets the bot answer there (Send Messages in Threads); it used to stay silent."""
    from tests.fakes.spotify_fixtures import spotify_settings

    fake = fake_spotify_extended
    services = await make_services(spotify_settings(fake))
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    _open_threads(fake_discord)
    forum = fake_discord.add_forum()
    fake_discord.channel(forum)["permission_overwrites"].append(
        {"id": str(fake_discord.guild_id), "type": 0, "allow": "0", "deny": str(P["send_messages"])}
    )
    post = fake_discord.add_thread(forum, "my summer mix")
    async with start_bot(services):
        mid = await fake_discord.send_message(f"what do you think of {link} ?", channel_id=post)
        msgs = await wait_results(fake_discord, None, 2, via="channel")
    assert not fake_discord.errors, fake_discord.errors
    assert msgs[0].channel_id == post and msgs[0].reference_id == mid
    assert [f.filename for f in msgs[0].files][:1] == ["clusters.png"]


async def test_a_link_posted_in_a_thread_the_bot_has_not_cached_is_answered(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot
) -> None:
    """A channel the bot knows only by id (discord.py gives a PartialMessageable, whose
    permissions always read as none): try, rather than ignore the link as unanswerable."""
    from tests.fakes.spotify_fixtures import spotify_settings

    fake = fake_spotify_extended
    services = await make_services(spotify_settings(fake))
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    _open_threads(fake_discord)
    thread = fake_discord.add_thread(fake_discord.channel_id, cached=False)
    async with start_bot(services) as bot:
        assert bot.get_channel(thread) is None
        mid = await fake_discord.send_message(f"listen {link}", channel_id=thread)
        msgs = await wait_results(fake_discord, None, 2, via="channel")
    assert not fake_discord.errors, fake_discord.errors
    assert msgs[0].channel_id == thread and msgs[0].reference_id == mid


async def test_a_link_sent_to_the_bot_in_a_dm_is_answered_there_privately(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot
) -> None:
    """A member who DMs the bot a link (as they would paste it in a server) got no answer at
    all; it is answered in the DM, and the analysis is a DM one (shown only to them): their
    💚 marks show there (in a channel they would not)."""
    from tests.fakes.spotify_fixtures import spotify_settings

    fake = fake_spotify_extended
    services = await make_services(spotify_settings(fake))
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    bob = fake_discord.add_user("bob")
    dm = fake_discord.open_dm(bob)
    saved = set(fake.playlists[fake.alice_playlist].entries)  # bob is linked, saved them all

    async def status(user_id: int) -> dict | None:
        return {"display_name": "Bob"} if user_id == bob else None

    async def liked_among(user_id: int, ids: list[str]) -> set[str]:
        return saved & set(ids) if user_id == bob else set()

    services.accounts.status, services.accounts.liked_among = status, liked_among
    async with start_bot(services):
        mid = await fake_discord.send_message(f"{link}", user_id=bob, channel_id=dm)
        msgs = await wait_results(fake_discord, None, 2, via="channel")
        await fake_discord.wait_for(lambda: (dm, mid, "✅", "add") in fake_discord.reactions)
        [row] = await services.store.analyses.recent(user_id=bob)
        owner = await services.store.analyses.owner(row.id)
    assert not fake_discord.errors, fake_discord.errors
    assert msgs[0].channel_id == dm and msgs[0].reference_id == mid
    assert "💚" in msgs[0].text
    assert all(m.channel_id == dm for m in fake_discord.messages.values())
    assert owner is not None and owner.guild_id is None


async def test_a_dm_job_left_by_a_crash_is_posted_in_the_dm(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    """After a restart the bot has no DM channel cached (READY lists none): a link sent in a
    DM whose job a crash interrupted was finished and never posted; it is posted there."""
    from bot.jobs import dedupe_key
    from bot.models import AnalysisRequest

    services = await make_services()
    owner = int(fake_discord.owner_user["id"])
    dm = fake_discord.open_dm(owner)
    request = AnalysisRequest(
        csv_text=csv_bytes(60).decode(),
        csv_name="left.csv",
        k=3,
        user_id=owner,
        guild_id=None,
        channel_id=dm,
        origin="message",
    )
    await services.store.jobs.create(dedupe_key(request), request)  # as if we crashed here
    async with start_bot(services):
        msgs = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.sent(via="channel") if m.embeds] or None
        )
    assert msgs[0].channel_id == dm and "restart" in msgs[0].text
    assert [f.filename for f in msgs[0].files][:1] == ["clusters.png"]


async def test_a_deleted_progress_reply_does_not_lose_the_result(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot, caplog
) -> None:
    """A moderator deletes the bot's "queued" reply while the job runs (or the member deletes
    their link message too): the result is posted anyway, as a new message, and the log has
    no incident (it was an ERROR traceback and the member got nothing)."""
    import logging

    from tests.fakes.spotify_fixtures import spotify_settings

    fake = fake_spotify_extended
    services = await make_services(spotify_settings(fake))
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    fake.latency = 0.05  # the job outlasts the deletions below

    def _results() -> list:
        return [m for m in fake_discord.sent(via="channel") if m.embeds and m.components]

    async with start_bot(services):
        for delete_link_too in (False, True):
            mid = await fake_discord.send_message(f"try {link}")
            progress = await fake_discord.wait_for(
                lambda mid=mid: next(
                    (m for m in fake_discord.sent(via="channel") if m.reference_id == mid), None
                )
            )
            del fake_discord.messages[progress.id]
            if delete_link_too:
                fake_discord.users_deleted.add(mid)
            await fake_discord.wait_for(lambda n=1 + delete_link_too: len(_results()) >= n)
    results = _results()
    assert len(results) == 2 and results[0].reference_id is not None
    assert results[1].reference_id is None  # the link message is gone: no reply arrow
    assert all([f.filename for f in m.files][:1] == ["clusters.png"] for m in results)
    assert all(m.files[0].size > 1000 for m in results)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_deleted_cluster_response_does_not_lose_the_result(
    fake_discord: FakeDiscord, fake_spotify_extended, make_services, start_bot, caplog
) -> None:
    """A moderator deletes the "thinking…" response of a /cluster while it runs: the result
    is posted in the channel, mentioning who asked (it was an ERROR incident and nothing)."""
    import logging

    from tests.fakes.spotify_fixtures import spotify_settings

    fake = fake_spotify_extended
    services = await make_services(spotify_settings(fake))
    link = f"https://open.spotify.com/playlist/{fake.alice_playlist}"
    fake.latency = 0.05
    async with start_bot(services):
        it = await fake_discord.slash("cluster", {"playlist": link})
        await fake_discord.wait_acked(it)
        del fake_discord.messages[it.original_id]
        msgs = await wait_results(fake_discord, None, 2, via="channel")
    assert f"<@{it.user_id}>" in msgs[0].content
    assert [f.filename for f in msgs[0].files][:1] == ["clusters.png"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
