"""A shared public link gets clusters for anyone: real bot, fake Discord, Development-Mode fake
Spotify whose app can't read the playlist's entries, so the public page is used."""

from __future__ import annotations

from tests.fakes.discord_fake import FakeDiscord, validate_message
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings
from tests.test_discord_cluster import cluster_fields


def _within_limits(msgs) -> None:
    for m in msgs:
        payload = {"content": m.content, "embeds": m.embeds, "components": m.components}
        validate_message(payload, m.files)


def _long_public_playlist(fake: FakeSpotify, n: int = 150) -> str:
    fake.add_user("bob", "Bob")
    return fake.add_playlist(fake.track_ids()[:n], name="Bob's big mix", owner_id="bob").id


async def _replies(fake_discord: FakeDiscord, mid: int):
    await fake_discord.wait_for(
        lambda: (
            (fake_discord.channel_id, mid, "✅", "add") in fake_discord.reactions
            or (fake_discord.channel_id, mid, "❌", "add") in fake_discord.reactions
        )
    )
    return [m for m in fake_discord.sent(via="channel") if m.reference_id == mid]


async def test_unlinked_member_posting_a_public_link_gets_clusters(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot
) -> None:
    fake = fake_spotify  # Development Mode: the app token is refused every playlist's entries
    pid = _long_public_playlist(fake)
    services = await make_services(spotify_settings(fake), reccobeats_enabled=True)
    async with start_bot(services):
        mid = await fake_discord.send_message(
            f"new mix! https://open.spotify.com/playlist/{pid}?si=abc"
        )
        replies = await _replies(fake_discord, mid)
    assert replies and replies[0].embeds, replies[0].content if replies else "no reply"
    overview = replies[0].embeds[0]
    assert "Bob's big mix" in overview["title"]
    assert (
        "First 100 of 150 tracks, from Spotify's public page; if it's yours, `/spotify link` "
        "reads all of it; else attach an Exportify CSV"
    ) in overview["description"]  # the member who posted it has no linked account
    assert "Sound from ReccoBeats for all 100 tracks" in replies[0].text
    assert len(cluster_fields(replies)) >= 2
    assert fake.count("/embed/playlist/") == 1
    _within_limits(replies)


async def test_editorial_and_short_links_from_phones_work_too(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot
) -> None:
    fake = fake_spotify
    editorial = "37i9dQZF1DXcZDD7cfEKhW"  # "Pop Remix": refused to apps, public on the web
    fake.pages.short_links["AbC123"] = f"https://open.spotify.com/playlist/{editorial}?si=x"
    services = await make_services(spotify_settings(fake), reccobeats_enabled=True)
    async with start_bot(services):
        mid = await fake_discord.send_message("listen https://spotify.link/AbC123")
        replies = await _replies(fake_discord, mid)
    assert replies and replies[0].embeds, replies[0].content if replies else "no reply"
    assert "Pop Remix" in replies[0].embeds[0]["title"]
    assert fake.count("/spotify.link/AbC123") == 1
    assert fake.count(f"/v1/playlists/{editorial}") == 0  # Spotify-made: straight to the page
    _within_limits(replies)
