"""How a result looks in a channel: its stored messages, their count and Discord's limits.

``RESULT_DUMP_DIR=/tmp/shots python -m pytest -q tests/test_result_layout.py`` writes the demo
mix's result as the fake Discord stored it (``result.json`` + ``result-files/``; also
``result-k2/k12/k20`` and ``long-k2…20`` with the worst names), ready for
``python ../shared/tools/render_messages.py --json /tmp/shots/result.json --files-dir
/tmp/shots/result-files --out shot.png --width 420,900``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

import pytest

from bot.demo import demo_text
from bot.models import Analysis
from bot.sources.normalise import SKIPPED_WORDS
from cogs.cluster import RESUMED
from cogs.utils.delivery import result_messages
from cogs.utils.embeds import profile_inline, text_em
from tests.fakes.discord_fake import FakeDiscord
from tests.test_discord_cluster import cluster_fields


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
    # The sound profile sits under the cluster list while it reads on a phone, else the
    # Profile button sends it (any k).
    k_shown = len(cluster_fields(msgs))
    profile = [a for m in dumped for a in m["attachments"] if a["filename"] == "profile.png"]
    ids = fake_discord.custom_ids(msgs[-1])
    assert len(profile) == (1 if profile_inline(k_shown) else 0)
    assert any(i.endswith(":profile") for i in ids) == (not profile)
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
            fields = cluster_fields(msgs)
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


# ----------------------------------------------------------------------------- height on a phone
# How tall ../shared/tools/render_messages.py draws a result at 420 px, estimated from its CSS:
# every line of text is counted (an em-width estimate per character, cogs.utils.embeds.text_em)
# and multiplied by its line height. Calibrated against real renders of this file's dumps
# (RESULT_DUMP_DIR, then render_messages.py --width 420; PNG heights), rendered / estimated:
# demo (k = 5, profile shown) 1,488 / 1,488 (at k = 4, 1,443 / 1,442), k = 2 1,154 / 1,153,
# k = 12 1,619 / 1,619, k = 20 2,195 / 2,195, longest names k = 6 1,623 / 1,623, k = 7
# 1,403 / 1,403, k = 20 2,213 / 2,213;
# and k = 20 longest names with longer button labels that wrapped to two rows, 2,253 / 2,253.
PAGE_PX = 48 + 16 + 8 + 72  # channel bar, list padding, the message box as drawn (44 + margins)
FIRST_MESSAGE_PX = 17 + 2 + 25 + 22 + 2  # margin, padding, "X used /cluster", name line
NEXT_MESSAGE_PX = 4  # a further message of the same author: its padding only
CONTENT_PX = 420 - 68 - 12  # beside the avatar gutter
TEXT_PX = CONTENT_PX - 4 - 12 - 16  # in an embed: colour bar and padding (308)
EMBED_PX = 8 + 8 + 16  # margin above, padding above and below
IMAGE_BOX = (TEXT_PX, 300)  # an embed image fits in it
# (font px, line height px, bold) of each part of an embed
TITLE, AUTHOR = (16, 22, True), (14, 19, True)
DESCRIPTION, FOOTER = (14, 18, False), (12, 16.5, False)
BOLD_WIDER = 1.07  # Arial bold is ~7% wider than regular
_LINK = re.compile(r"\[((?:\\.|[^\]\\])*)\]\([^)]*\)")


def shown_text(markdown: str) -> str:
    """What a line of Discord markdown shows: link texts, no bold marks or escapes."""
    text = _LINK.sub(r"\1", markdown).replace("**", "")
    return re.sub(r"\\(.)", r"\1", text)


def text_lines(markdown: str, font: tuple[int, float, bool], column_px: int = TEXT_PX) -> int:
    """Lines ``markdown`` takes in an embed at 420 px: each of its lines wraps where it is
    wider than the text column (words wrap whole: a wrapped line is counted 1.5 em short)."""
    px, _, bold = font
    width = column_px / px
    count = 0
    for line in markdown.splitlines() or [""]:
        em = text_em(shown_text(line)) * (BOLD_WIDER if bold or line.startswith("**") else 1)
        count += 1 if em <= width else math.ceil(em / (width - 1.5))
    return count


def image_px(png: bytes) -> float:
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return min(IMAGE_BOX[0] * height / width, IMAGE_BOX[1])


def button_px(button: dict) -> float:
    """.btn: 16 px padding each side, emoji + 6 px gap, 14-px label (weight 500)."""
    emoji = 22 + 6 if button.get("emoji") else 0
    return max(60, 32 + emoji + text_em(button.get("label") or "") * 14 * 1.03)


def components_px(rows: list[dict]) -> float:
    height = 0.0
    for row in rows:
        items = row.get("components", [])
        if any(c["type"] != 2 for c in items):  # a select: a 40-px box
            height += 8 + 40
            continue
        lines, used = 1, 0.0
        for b in items:
            w = button_px(b)
            if used and used + 8 + w > CONTENT_PX:
                lines, used = lines + 1, 0.0
            used += (8 if used else 0) + w
        height += 8 + 32 * lines + 8 * (lines - 1)
    return height


def embed_px(embed: dict, images: dict[str, bytes]) -> float:
    height = float(EMBED_PX)
    for key, font in (("author", AUTHOR), ("title", TITLE), ("description", DESCRIPTION)):
        text = embed.get(key)
        text = text.get("name") if isinstance(text, dict) else text
        if text:
            height += 8 + text_lines(text, font) * font[1]
    image = (embed.get("image") or {}).get("url")
    if image:
        height += 16 + image_px(next(png for name, png in images.items() if image.endswith(name)))
    footer = (embed.get("footer") or {}).get("text")
    if footer:
        height += 8 + round(text_lines(footer, FOOTER) * FOOTER[1])
    return height


def phone_height(messages: list[dict], images: dict[str, bytes]) -> float:
    """Estimated height in px of a result drawn at 420 px by render_messages.py."""
    height = float(PAGE_PX + FIRST_MESSAGE_PX + NEXT_MESSAGE_PX * (len(messages) - 1))
    for m in messages:
        if m.get("content"):  # 16-px text beside the avatar
            height += text_lines(m["content"], (16, 22, False), CONTENT_PX) * 22
        height += sum(embed_px(e, images) for e in m["embeds"])
        height += components_px(m.get("components") or [])
    return height


BUDGET_PX = 2_400  # issue #18: a whole result, any k, any names, about three phone screens
MARGIN_PX = 100  # what the worst names must leave: real Discord clients differ from the renderer


def everything(analysis: Analysis) -> Analysis:
    """:func:`lengthen`, and an overview that says all it can at once: a partial public page,
    two sources of sound, every kind of skipped item, the longest split, k other than asked."""
    lengthen(analysis)
    n = len(analysis.tracks)
    analysis.source.snapshot_id = "page:0123456789abcdef"  # read from Spotify's public page
    analysis.source.total = 12_345
    analysis.coverage = {"reccobeats": n - 7, "spotify": 5}
    analysis.unanswered = 1  # ReccoBeats did not answer for 1 of the 2 without sound
    analysis.feature_mode = "audio+metadata"
    analysis.skipped = {key: 1_000 + i for i, key in enumerate(SKIPPED_WORDS)}
    analysis.silhouette = 0.05
    analysis.split_by = "split mostly by acoustic vs electronic sound and vocals vs instrumentals"
    analysis.k_requested = analysis.k + 5
    return analysis


def as_posted(msgs) -> list[dict]:
    return [
        {
            "content": m.content,
            "embeds": [e.to_dict() for e in m.embeds],
            "components": m.view.to_components() if m.view else [],
        }
        for m in msgs
    ]


def result_height(
    analysis: Analysis, rendered, *, label: str | None, everything: bool = False
) -> float:
    """The estimated height at 420 px of ``analysis`` posted as a result (💚 on every track
    shown); with ``everything``, a re-used result posted in the channel: its header, and the
    requester's mention above it, as post_ready writes it."""
    analysis.analysis_id = 123_456
    analysis.source.owner_name = "🎧 An owner with a really quite long display name " * 3
    msgs = result_messages(
        analysis,
        rendered.png,
        liked=set(analysis.assignments),
        # the longest header a result can carry (a reused result can't lack sound)
        header=RESUMED if everything else None,
        label=label,
        profile=rendered.profile_png,
    )
    if everything:
        msgs[0].content = "<@123456789012345678> your analysis is ready:"
    images = {f.filename: f.fp.getvalue() for m in msgs for f in m.files}
    return phone_height(as_posted(msgs), images)


@pytest.mark.parametrize("label", [None, "Stored analysis #123456"])
def test_any_k_with_the_worst_names_fits_three_phone_screens(label: str | None) -> None:
    """k = 2…20 with the longest names (:func:`lengthen`, and the owner's): ≤ 2,300 px (2,400
    with 100 to spare); with everything the message can say at once as well, ≤ 2,400 px."""
    from tests.fakes.discord_fixtures import demo_outcome

    names, overview = {}, {}
    for k in range(2, 21):
        analysis, rendered = demo_outcome(k, limit=None)
        names[k] = result_height(lengthen(analysis), rendered, label=label)
        analysis, rendered = demo_outcome(k, limit=None)
        overview[k] = result_height(everything(analysis), rendered, label=label, everything=True)
    assert max(names.values()) <= BUDGET_PX - MARGIN_PX, names
    assert max(overview.values()) <= BUDGET_PX, overview


@pytest.mark.parametrize("stored", [True, False], ids=["stored", "drawn-now"])
async def test_the_profile_button_sends_the_sound_profile_for_any_k(
    fake_discord: FakeDiscord, make_services, start_bot, stored: bool
) -> None:
    """Past k = 6 the profile is not under the clusters (it would show under 11-px text):
    the Profile button sends it privately, as stored or drawn now for older analyses."""
    from bot.models import AnalysisRequest
    from tests.fakes.discord_fixtures import demo_outcome

    services = await make_services()
    analysis, rendered = demo_outcome(12, limit=None)
    if not stored:  # an analysis stored before profiles existed
        rendered = dataclasses.replace(rendered, profile_png=b"")
    request = AnalysisRequest(demo=True, user_id=1, guild_id=fake_discord.guild_id)
    aid = await services.store.analyses.save(analysis, rendered, request)
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": aid})
        [last] = await fake_discord.wait_for(result_after(fake_discord, it, aid), within=30)
        assert not any(a.filename == "profile.png" for a in last.files)
        assert "Profile: files" in last.embeds[-1]["footer"]["text"]  # the hint names it
        click = await fake_discord.click(last, f"pc:dl:{aid}:profile")
        [doc] = await fake_discord.wait_response(click)
    assert doc.ephemeral and doc.files[0].filename == f"analysis-{aid}-profile.png"
    assert doc.files[0].data[:4] == b"\x89PNG"
    assert fake_discord.errors == []
