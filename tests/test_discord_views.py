"""Stored analyses: /clusters show|history, browse pages, downloads, buttons after a restart."""

from __future__ import annotations

from typing import Any

from tests.fakes.discord_fake import FakeDiscord, validate_message
from tests.fakes.discord_fixtures import store_demo_analysis
from tests.test_discord_cluster import cluster_fields


def _within_limits(msgs) -> None:
    for m in msgs:
        payload = {"content": m.content, "embeds": m.embeds, "components": m.components}
        validate_message(payload, m.files)


async def _stored_demo(make_services: Any, fake_discord: FakeDiscord) -> tuple[Any, int, Any]:
    """Services with the demo analysis (k = 2) stored: (services, its id, the analysis)."""
    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 2)
    return services, aid, await services.store.analyses.get(aid)


async def test_show_reposts_a_stored_analysis_with_scatter_and_components(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 4)
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": aid})
        msgs = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds and m.components]
        )
    first = msgs[0]
    assert [f.filename for f in first.files][:1] == ["clusters.png"]
    assert f"Stored analysis #{aid}" in first.text
    assert len(msgs) == 1
    fields = [f["name"] for f in cluster_fields(msgs)]
    assert [n.split(" · ")[0] for n in fields] == ["1", "2", "3", "4"]
    assert f"pc:browse:{aid}:0" in fake_discord.custom_ids(first)
    assert {f"pc:dl:{aid}:md", f"pc:dl:{aid}:csv"} <= set(fake_discord.custom_ids(first))
    _within_limits(msgs)


async def test_show_unknown_id_is_an_ephemeral_error(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": 999})
        [msg] = await fake_discord.wait_response(it)
    assert msg.ephemeral
    assert "no stored analysis #999" in msg.content


async def test_history_lists_mine_and_the_servers(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    other = fake_discord.add_user("bob")
    mine = await store_demo_analysis(services, fake_discord, 3)
    theirs = await store_demo_analysis(services, fake_discord, 2, user_id=other)
    async with start_bot(services):
        it = await fake_discord.slash("clusters history")
        [msg] = await fake_discord.wait_response(it)
        it2 = await fake_discord.slash("clusters history", {"server": True})
        [msg2] = await fake_discord.wait_response(it2)
    assert msg.ephemeral
    assert f"#{mine}" in msg.text and f"#{theirs}" not in msg.text
    assert f"#{mine}" in msg2.text and f"#{theirs}" in msg2.text


async def test_browse_select_pages_and_downloads(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services, aid, analysis = await _stored_demo(make_services, fake_discord)
    biggest = max(analysis.clusters, key=lambda c: c.size)
    assert biggest.size > 15  # needs at least two pages
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": aid})
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
        click = await fake_discord.click(first, f"pc:browse:{aid}:0", values=[str(biggest.index)])
        [page] = await fake_discord.wait_response(click)
        assert page.ephemeral
        assert "Page 1/" in page.text
        first_track = analysis.track_by_id()[biggest.track_ids[0]]
        assert first_track.name.split()[0] in page.text
        ids = fake_discord.custom_ids(page)
        assert f"pc:save:{aid}:{biggest.index}" in ids
        nxt = next(i for i in ids if i.endswith(":n"))
        click2 = await fake_discord.click(page, nxt)
        await fake_discord.wait_for(lambda: "Page 2/" in page.text)
        assert click2.response_type == 7  # edited in place
        dl = await fake_discord.click(first, f"pc:dl:{aid}:md")
        [doc] = await fake_discord.wait_response(dl)
    assert doc.ephemeral
    assert doc.files[0].filename.endswith("report.md")
    assert doc.files[0].data.decode().lstrip().startswith("#")


async def test_save_button_asks_to_link_when_not_linked(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 2)
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": aid})
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
        click = await fake_discord.click(first, f"pc:browse:{aid}:0", values=["0"])
        [page] = await fake_discord.wait_response(click)
        save = await fake_discord.click(page, f"pc:save:{aid}:0")
        [msg] = await fake_discord.wait_response(save)
    assert msg.ephemeral
    assert "/spotify link" in msg.text


async def test_buttons_work_after_a_restart(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 3)
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": aid})
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
    # A brand-new process: new services on the same database, new bot, same old message.
    services2 = await make_services()
    async with start_bot(services2):
        assert fake_discord.identifies == 2
        dl = await fake_discord.click(first, f"pc:dl:{aid}:csv")
        [doc] = await fake_discord.wait_response(dl)
        click = await fake_discord.click(first, f"pc:browse:{aid}:0", values=["1"])
        [page] = await fake_discord.wait_response(click)
    assert doc.files[0].filename.endswith("tracks.csv")
    assert "Page 1/" in page.text


async def test_liked_marks_and_save_with_a_linked_account(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    from bot.models import PlaylistMeta
    from tests.test_discord_app import CORE, StubAccounts

    services, aid, analysis = await _stored_demo(make_services, fake_discord)
    rep = analysis.clusters[0].representative_ids[0]
    owner = int(fake_discord.owner_user["id"])
    saved: list[tuple] = []

    class Accounts(StubAccounts):
        async def save_cluster(self, user_id, name, description, track_ids):
            saved.append((user_id, name, list(track_ids)))
            return PlaylistMeta(id="N" * 22, name=name, url="https://open.spotify.com/playlist/N")

    services.accounts = Accounts({owner}, liked={rep})
    async with start_bot(services, extensions=CORE):
        it = await fake_discord.slash("clusters show", {"id": aid})
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
        click = await fake_discord.click(first, f"pc:browse:{aid}:0", values=["0"])
        [page] = await fake_discord.wait_response(click)
        save = await fake_discord.click(page, f"pc:save:{aid}:0")
        msg = await fake_discord.wait_for(
            lambda: next((m for m in fake_discord.responses(save) if "Saved" in m.text), None)
        )
        liked_it = await fake_discord.slash(
            "cluster", {"liked": True}, user_id=fake_discord.add_user("x")
        )
        [refused] = await fake_discord.wait_response(liked_it)
    assert "💚" not in first.text  # shown to the channel: the viewer's library stays theirs
    assert page.ephemeral and page.text.count("💚") == 1
    assert msg.ephemeral and "open.spotify.com/playlist/N" in msg.text
    assert saved == [(owner, saved[0][1], analysis.clusters[0].track_ids)]
    assert analysis.source.name in saved[0][1]
    assert refused.ephemeral and "/spotify link" in refused.text


async def test_show_refuses_another_servers_analysis_without_loading_it(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    from bot.models import AnalysisRequest
    from tests.fakes.discord_fixtures import demo_outcome

    services = await make_services()
    other = fake_discord.add_user("bob")
    analysis, rendered = demo_outcome(3, limit=60)
    request = AnalysisRequest(demo=True, k=3, user_id=other, guild_id=fake_discord.guild_id + 1)
    aid = await services.store.analyses.save(analysis, rendered, request)
    loaded: list[int] = []
    get_analysis = services.store.analyses.get

    async def spy(analysis_id: int):
        loaded.append(analysis_id)
        return await get_analysis(analysis_id)

    services.store.analyses.get = spy  # type: ignore[method-assign]
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": aid})
        [msg] = await fake_discord.wait_response(it)
    assert msg.ephemeral
    assert f"Analysis #{aid} was made in another server" in msg.content
    assert loaded == []  # refused from the row alone


async def test_browse_select_is_acknowledged_before_the_liked_lookup(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    """The 💚 lookup asks Spotify; the 3-second acknowledgement must not wait for it."""
    import asyncio

    from tests.test_discord_app import CORE, StubAccounts

    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 2)
    release = asyncio.Event()
    asked = asyncio.Event()

    class SlowAccounts(StubAccounts):
        blocking = False

        async def liked_among(self, user_id, ids):
            if self.blocking:
                asked.set()
                await release.wait()
            return set()

    accounts = services.accounts = SlowAccounts({int(fake_discord.owner_user["id"])})
    async with start_bot(services, extensions=CORE):
        it = await fake_discord.slash("clusters show", {"id": aid})
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
        accounts.blocking = True
        click = await fake_discord.click(first, f"pc:browse:{aid}:0", values=["0"])
        await fake_discord.wait_acked(click)
        await asked.wait()
        assert not [m for m in fake_discord.responses(click) if m.embeds]  # page still pending
        release.set()
        [page] = await fake_discord.wait_response(click)
    assert page.ephemeral and "Page 1/" in page.text


async def test_page_buttons_answer_in_time_when_spotify_is_slow(
    fake_discord: FakeDiscord, make_services, start_bot, monkeypatch
) -> None:
    """A 💚 look-up that hangs must not keep a page button from editing its message."""
    import asyncio

    from cogs.utils import views

    class HangingAccounts:
        async def status(self, user_id: int) -> dict:
            return {"display_name": "slow"}

        async def liked_among(self, user_id: int, track_ids: list[str]) -> set[str]:
            await asyncio.Event().wait()  # Spotify never answers
            return set()

    monkeypatch.setattr(views, "LIKED_IN_CALLBACK_TIMEOUT_S", 0.05)
    services, aid, analysis = await _stored_demo(make_services, fake_discord)
    biggest = max(analysis.clusters, key=lambda c: c.size)
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": aid})
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
        services.accounts = HangingAccounts()  # from here on, Spotify hangs
        click = await fake_discord.click(first, f"pc:browse:{aid}:0", values=[str(biggest.index)])
        [page] = await fake_discord.wait_response(click)
        nxt = next(i for i in fake_discord.custom_ids(page) if i.endswith(":n"))
        click2 = await fake_discord.click(page, nxt)
        await fake_discord.wait_for(lambda: "Page 2/" in page.text)
    assert click2.response_type == 7  # still edited in place, just without 💚 marks
    assert "💚" not in page.text


async def test_downloaded_report_carries_the_clickers_own_liked_marks(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    """report.md is rendered per click: the 💚 column is the clicker's, never anyone else's."""
    from tests.test_discord_app import CORE, StubAccounts

    services, aid, analysis = await _stored_demo(make_services, fake_discord)
    rep = analysis.clusters[0].representative_ids[0]
    owner = int(fake_discord.owner_user["id"])
    other = fake_discord.add_user("bob")

    class Accounts(StubAccounts):
        async def liked_among(self, user_id, ids):
            return {rep} & set(ids) if user_id == owner else set()

    services.accounts = Accounts({owner, int(other)})
    async with start_bot(services, extensions=CORE):
        it = await fake_discord.slash("clusters show", {"id": aid})
        [first, *_] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
        docs = []
        for user in (owner, other):
            dl = await fake_discord.click(first, f"pc:dl:{aid}:md", user_id=user)
            docs.append(
                await fake_discord.wait_for(
                    lambda dl=dl: next((m for m in fake_discord.responses(dl) if m.files), None)
                )
            )
    mine, theirs = (d.files[0].data.decode() for d in docs)
    assert all(d.ephemeral and d.files[0].filename.endswith("report.md") for d in docs)
    [row] = [line for line in mine.splitlines() if "💚" in line and "track/" in line]
    assert rep in row
    assert "💚" not in theirs
