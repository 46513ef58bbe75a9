"""The note on a partial public-page read says what is true for whoever reads it (#11 leftover).

Real bot under the fake Discord, Development-Mode fake Spotify: Bob's 150-track public playlist
can only be read from its public page (first 100 tracks) by anyone but Bob. Alice is linked (so
linking again can't help her); Carol is not (linking helps only if it were hers); a stored result
shown again speaks to nobody in particular. The stored analysis holds none of it.
"""

from __future__ import annotations

from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.spotify_api import FakeSpotify
from tests.test_discord_public_page import _long_public_playlist
from tests.test_discord_spotify import SLOW
from tests.test_relink_notice import _linked_services

LINKED = "apps read all only of what you own or collaborate on"
UNLINKED = "if it's yours, `/spotify link` reads all of it"
ANYONE = "only its owner can link for all of them"


async def test_the_partial_read_note_speaks_to_its_reader(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot
) -> None:
    fake = fake_spotify
    pid = _long_public_playlist(fake)
    link = f"https://open.spotify.com/playlist/{pid}"
    alice = int(fake_discord.owner_user["id"])
    carol = fake_discord.add_user("carol")
    services = await _linked_services(make_services, fake, alice)

    def overview(it) -> str:
        got = [m for m in fake_discord.responses(it) if m.embeds]
        return got[0].embeds[0]["description"] if got else ""

    async with start_bot(services, progress_interval_s=0.0):
        notes = {}
        for who in (alice, carol):
            it = await fake_discord.slash("cluster", {"playlist": link, "k": 3}, user_id=who)
            notes[who] = await fake_discord.wait_for(lambda it=it: overview(it), SLOW)
        [aid] = {a.id for a in await services.store.analyses.recent(user_id=alice)}
        show = await fake_discord.slash("clusters show", {"id": aid}, user_id=carol)
        shown = await fake_discord.wait_for(lambda: overview(show), SLOW)
        stored = await services.db.fetchone("SELECT result_json FROM analyses WHERE id = ?", (aid,))
    for desc in (*notes.values(), shown):
        assert "First 100 of 150 tracks, from Spotify's public page" in desc
    assert LINKED in notes[alice] and "/spotify link" not in notes[alice]
    assert UNLINKED in notes[carol] and LINKED not in notes[carol]
    assert ANYONE in shown and LINKED not in shown and UNLINKED not in shown
    for text in (LINKED, UNLINKED, ANYONE, "Exportify"):
        assert text not in stored["result_json"]  # worked out when shown, never stored
