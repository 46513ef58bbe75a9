"""cogs/utils/embeds.py: every payload fits Discord's limits, whatever the playlist is like."""

from __future__ import annotations

import asyncio

import discord
import pytest

from bot.errors import NotOwner
from bot.models import Analysis, Cluster, PlaylistMeta, Track
from bot.sources.normalise import SKIPPED_WORDS
from cogs.utils import embeds as E
from cogs.utils.delivery import result_messages
from cogs.utils.errors import error_message
from cogs.utils.progress import Throttle
from tests.fakes.discord_fake import FakeDiscord, FakeFile, validate_message
from tests.fakes.discord_fixtures import demo_outcome
from tests.test_discord_cluster import cluster_fields


def synthetic(k: int, per_cluster: int = 30, *, long: int = 400) -> Analysis:
    """An analysis built to break limits: long names everywhere, markdown characters."""
    tracks, clusters, assignments = [], [], {}
    n = 0
    for c in range(k):
        ids = []
        for _ in range(per_cluster):
            tid = f"{n:022d}"
            n += 1
            tracks.append(
                Track(
                    id=tid,
                    name="*NSYNC [Live] " + "ñ" * long,
                    artists=["Artist " + "x" * long, "Feat. " + "y" * long],
                    album="Album " + "z" * long,
                    label="Label " + "l" * long,
                    popularity=77,
                    image_url=f"https://i.scdn.co/image/{tid}",
                )
            )
            ids.append(tid)
            assignments[tid] = c
        clusters.append(
            Cluster(
                index=c,
                name="Cluster name " + "N" * long,
                description="description " + "d" * 2 * long,
                size=per_cluster,
                centroid={},
                track_ids=ids,
                representative_ids=ids[:10],
            )
        )
    return Analysis(
        source=PlaylistMeta(id="p", name="Playlist " + "P" * long, owner_name="o" * long),
        tracks=tracks,
        clusters=clusters,
        assignments=assignments,
        coords={t.id: [0.0, 0.0] for t in tracks},
        k=k,
        k_requested=k,
        feature_mode="audio",
        feature_names=[],
        coverage={"reccobeats": len(tracks)},
        skipped={"local": 3, "episode": 1},
        analysis_id=42,
    )


def _payload(msg) -> dict:
    return {
        "content": msg.content or "",
        "embeds": [e.to_dict() for e in msg.embeds],
        "components": msg.view.to_components() if msg.view else [],
    }


@pytest.mark.parametrize("k", [1, 2, 12, 20, 30, 80])
def test_any_number_of_long_clusters_fits_discord_limits(k: int) -> None:
    analysis = synthetic(k)
    msgs = result_messages(analysis, b"\x89PNG" + b"0" * 100)
    names = [f["name"] for f in cluster_fields(msgs)]
    assert [n.split(" ")[0] for n in names] == [str(i + 1) for i in range(k)]  # none dropped
    if k <= 20:
        assert len(msgs) <= 2
    for m in msgs:
        assert len(m.embeds) <= 10
        assert sum(len(e) for e in m.embeds) <= 6000
        validate_message(
            _payload(m), [FakeFile(f.filename, b"") for f in m.files]
        )  # the fake's full rule set (raises on violation)
    assert msgs[0].embeds[0].image.url == "attachment://clusters.png"
    assert msgs[0].files[0].filename == "clusters.png"
    assert msgs[-1].view is not None and all(m.view is None for m in msgs[:-1])


def test_twelve_clusters_show_three_linked_tracks_each_in_one_message() -> None:
    analysis, _ = demo_outcome(12, limit=None)
    msgs = result_messages(analysis, b"png")
    assert len(msgs) == 1
    fields = cluster_fields(msgs)
    assert len(fields) == 12
    for c, f in zip(analysis.clusters, fields, strict=True):
        assert f["value"].count("open.spotify.com/track/") == min(3, c.size)
        assert f["name"].endswith(f"· {c.size} tracks")


def test_markdown_is_escaped_and_liked_marked() -> None:
    analysis = synthetic(1, long=5)
    first = analysis.clusters[0].representative_ids[0]
    by_id = analysis.track_by_id()
    block = E.cluster_block(analysis.clusters[0], by_id, {first}, tracks=5)
    heading, *lines = block.splitlines()
    assert heading.startswith("**1 · ") and heading.endswith("**")
    value = "\n".join(lines)
    line = lines[0]
    assert "\\*NSYNC \\[Live\\]" in line
    assert line.endswith("💚")
    assert value.count("💚") == 1
    assert len(value.splitlines()) == 5


def test_track_lines_fit_one_phone_line() -> None:
    t = Track(
        id="1" * 22,
        name="Runnin' with the Devil - 2015 Remaster",
        artists=["Van Halen"],
    )
    assert E.track_line(t, link=False) == "Runnin' with the Devil — Van Halen"
    t.name, t.artists = "漢字" * 40, ["Someone With A Very Long Artist Name Indeed"]
    line = E.track_line(t, link=False)
    assert E.text_em(line) <= E.LINE_EM and line.endswith("…")


def test_overview_says_it_in_plain_words() -> None:
    analysis = synthetic(3, long=5)
    analysis.skipped = {"local": 3, "episode": 1, "duplicate": 90}
    analysis.silhouette = 0.16
    e = E.overview_embed(analysis)
    assert "Sound from ReccoBeats for all 90 tracks" in e.description
    assert "90 duplicates, 3 local files, 1 other skipped" in e.description  # one line
    analysis.skipped = {"local": 3, "duplicate": 90}
    assert "90 duplicates, 3 local files skipped" in E.overview_embed(analysis).description
    analysis.skipped = dict.fromkeys(SKIPPED_WORDS, 123_456)
    line = E.skipped_sentence(analysis.skipped)
    assert line and E.text_em(line) <= E.LINE_EM and "skipped" in line
    assert "overlap somewhat" in e.description and "0.16" not in e.description
    analysis.coverage = {"reccobeats": 88}
    assert "for 88 of 90 tracks" in E.overview_embed(analysis).description
    msgs = result_messages(analysis, None)
    assert msgs[-1].embeds[-1].footer.text.startswith("Analysis #42")


def test_one_cluster_is_singular() -> None:
    """10–15 tracks always give one cluster (auto k ≤ tracks / 8): "10 tracks in 1 clusters"."""
    analysis = synthetic(1, 10, long=5)
    assert "**10 tracks** in **1 cluster**\n" in E.overview_embed(analysis).description + "\n"
    assert "in **3 clusters**" in E.overview_embed(synthetic(3, 10, long=5)).description


def test_truncate_and_errors() -> None:
    assert E.truncate("abcdef", 4) == "abc…"
    assert E.truncate("abc", 4) == "abc"
    assert error_message(NotOwner("link your account")) == "⚠️ link your account"
    text = error_message(KeyError("secret-token"), incident_id="abcd1234")
    assert "abcd1234" in text and "secret-token" not in text


def test_oversized_scatter_is_left_out_not_sent() -> None:
    analysis = synthetic(2, long=5)
    msgs = result_messages(analysis, b"x" * (E.MAX_FILE_BYTES + 1))
    assert msgs[0].files == []
    assert msgs[0].embeds[0].image.url is None


def test_browse_pages_cover_every_track() -> None:
    analysis = synthetic(1, per_cluster=40, long=5)
    c = analysis.clusters[0]
    assert E.page_count(c) == 3
    seen = []
    for page in range(3):
        e = E.browse_embed(analysis, c, page)
        seen += [ln for ln in e.description.splitlines() if ln.startswith("`")]
        assert f"Page {page + 1}/3" in e.footer.text
    assert len(seen) == 40


async def test_throttle_coalesces_updates_within_the_interval() -> None:
    now = [0.0]
    sent: list[str] = []
    sleeps: list[asyncio.Future] = []

    async def send(text: str) -> None:
        sent.append(text)

    async def sleep(_: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        sleeps.append(fut)
        await fut

    t = Throttle(send, interval=1.5, clock=lambda: now[0], sleep=sleep)
    await t.update("a")  # first goes out at once
    await t.update("b")
    await t.update("c")  # coalesced with b
    assert sent == ["a"]
    await asyncio.sleep(0)  # let the pending flush start waiting
    assert len(sleeps) == 1
    now[0] = 1.5
    sleeps[0].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sent == ["a", "c"]
    await t.update("d")  # within the interval again: pending
    await t.close()  # pending update dropped; nothing after close
    await t.update("e")
    assert sent == ["a", "c"]


async def test_twelve_long_clusters_pass_the_fake_discord(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    """End to end: a stored 12-cluster analysis with huge names is accepted by the fake."""
    services = await make_services()
    analysis, rendered = demo_outcome(12, limit=None)
    for c in analysis.clusters:
        c.name = f"Cluster {c.index + 1} · " + "very long cluster name " * 20
        c.description = "described at length " * 40
    for t in analysis.tracks:
        t.name = t.name + " (Extended Deluxe Remastered Anniversary Edition) " * 4
        t.album = t.album + " — Collector's Box " * 6
    from bot.models import AnalysisRequest

    aid = await services.store.analyses.save(
        analysis, rendered, AnalysisRequest(demo=True, user_id=1, guild_id=fake_discord.guild_id)
    )
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": aid})

        def done():
            return [m for m in fake_discord.responses(it) if m.embeds and m.components]

        await fake_discord.wait_for(done)
    assert fake_discord.errors == []
    msgs = [m for m in fake_discord.responses(it) if m.embeds]
    assert len(cluster_fields(msgs)) == 12 and len(msgs) == 1


def test_discord_file_helper() -> None:
    f = E.scatter_file(b"png")
    assert isinstance(f, discord.File) and f.filename == "clusters.png"
