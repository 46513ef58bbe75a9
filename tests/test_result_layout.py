"""How a result looks in a channel: its stored messages, their count and Discord's limits.

``RESULT_DUMP_DIR=/tmp/shots python -m pytest -q tests/test_result_layout.py`` writes the demo
mix's result as the fake Discord stored it (``result.json`` + ``result-files/``; also
``result-k2/k12/k20`` and ``long-k2…20`` with the worst names), ready for
``python ../shared/tools/render_messages.py --json /tmp/shots/result.json --files-dir
/tmp/shots/result-files --out shot.png --width 420,900``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.demo import demo_text
from tests.fakes.discord_fake import FakeDiscord


async def run_cluster(fake: FakeDiscord, data: bytes, name: str, k: int | None = None):
    options = {"k": k} if k else {}
    att = fake.add_attachment(name, data)
    it = await fake.slash("cluster", options, attachments={"csv": att})

    def done():  # the download buttons come on the result's last message
        msgs = fake.responses(it)
        ids = [i for m in msgs[-1:] for i in fake.custom_ids(m)]
        return msgs if any(i.startswith("pc:dl:") for i in ids) else None

    return it, await fake.wait_for(done, within=60)


@pytest.mark.parametrize("k", [None, 2, 12, 20])
async def test_dump_the_demo_result_for_rendering(
    fake_discord: FakeDiscord, make_services, start_bot, tmp_path: Path, k: int | None
) -> None:
    out = Path(os.environ.get("RESULT_DUMP_DIR") or tmp_path)
    name = "result" if k is None else f"result-k{k}"
    services = await make_services()
    async with start_bot(services):
        _, msgs = await run_cluster(fake_discord, demo_text().encode(), "demo_mix.csv", k)
    dumped = fake_discord.dump(out / f"{name}.json", out / f"{name}-files", msgs)
    assert json.loads((out / f"{name}.json").read_text()) == dumped
    assert dumped[0]["interaction_metadata"]["name"] == "cluster"
    scatter = dumped[0]["attachments"][0]
    assert dumped[0]["embeds"][0]["image"]["url"] == scatter["url"]  # as Discord serves it
    assert (out / f"{name}-files" / f"{scatter['id']}-0-clusters.png").read_bytes()[
        :4
    ] == b"\x89PNG"
    # The sound profile sits under the cluster list while k is small enough to afford it.
    k_shown = len([f for e in dumped[-1]["embeds"] for f in e.get("fields", [])])
    profile = [a for m in dumped for a in m["attachments"] if a["filename"] == "profile.png"]
    assert len(profile) == (1 if k_shown <= 8 else 0)
    if profile:
        assert dumped[-1]["embeds"][-1]["image"]["url"] == profile[0]["url"]


def lengthen(analysis):
    """The worst names a playlist can have: long, markdown-heavy, wide characters, emoji."""
    for c in analysis.clusters:
        c.name = f"Cluster {c.index + 1} · " + "*very* long [cluster] name " * 12
        c.description = "described · at · length · 🎸 " * 30
    for i, t in enumerate(analysis.tracks):
        t.name = ("漢字 " if i % 3 == 0 else "") + t.name + " (Extended **Deluxe** Edition) " * 5
        t.artists = [a + " & The ||Very|| Long Band Name_" for a in t.artists] * 3
        t.album = t.album + " — Collector's Box " * 6
    analysis.source.name = "🎧 " + "A playlist with a _very_ long name " * 10
    analysis.skipped = {"duplicate": 90, "local": 2}
    return analysis


def result_after(fake: FakeDiscord, it, aid: int):
    """The messages a /clusters show posted (response + its continuation in the channel),
    once the last one (with the download buttons) is there."""

    def done():
        msgs = [m for m in fake.sent(channel_id=it.channel_id) if m.id > it.id and m.embeds]
        if msgs and f"pc:dl:{aid}:md" in fake.custom_ids(msgs[-1]):
            return msgs
        return None

    return done


async def test_every_k_from_2_to_20_with_long_names_is_at_most_two_messages_within_limits(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    from bot.models import AnalysisRequest
    from tests.fakes.discord_fixtures import demo_outcome

    services = await make_services()
    stored, sizes = {}, {}
    for k in range(2, 21):
        analysis, rendered = demo_outcome(k, limit=None)
        request = AnalysisRequest(demo=True, user_id=1, guild_id=fake_discord.guild_id)
        stored[k] = await services.store.analyses.save(lengthen(analysis), rendered, request)
        sizes[k] = [c.size for c in analysis.clusters]
    counts = {}
    async with start_bot(services):
        for k, aid in stored.items():
            it = await fake_discord.slash("clusters show", {"id": aid})
            msgs = await fake_discord.wait_for(result_after(fake_discord, it, aid), within=30)
            counts[k] = len(msgs)
            fields = [f for m in msgs for e in m.embeds for f in e.get("fields", [])]
            assert [f["name"].split(" · ")[0] for f in fields] == [str(i + 1) for i in range(k)]
            for f, size in zip(fields, sizes[k], strict=True):  # heading, 3-5 tracks
                assert min(3, size) <= len(f["value"].splitlines()) <= 5
            assert msgs[-1].components and not any(m.components for m in msgs[:-1])
            assert all(m.interaction_id in (None, it.id) for m in msgs)
            assert sum(m.interaction_id == it.id for m in msgs) == 1  # no "used /clusters"
            if os.environ.get("RESULT_DUMP_DIR"):
                out = Path(os.environ["RESULT_DUMP_DIR"])
                fake_discord.dump(out / f"long-k{k}.json", out / f"long-k{k}-files", msgs)
    assert fake_discord.errors == []  # the fake enforces every Discord limit
    assert max(counts.values()) <= 2, counts
