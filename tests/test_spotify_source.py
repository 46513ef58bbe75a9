"""SpotifyGateway against the loopback fake, with the real spotipy underneath."""

from __future__ import annotations

import asyncio
import json
import logging
import math

import pytest

from bot.errors import (
    AuthError,
    EditorialPlaylist,
    EmptyPlaylist,
    NotFound,
    NotOwner,
    QuotaExceeded,
    RateLimited,
    SpotifyUnavailable,
    TooLarge,
)
from bot.models import Progress
from bot.retry_after import parse_retry_after, wait_in_words
from bot.sources.links import SpotifyRef, parse_spotify_link
from bot.sources.spotify import FeaturesUnavailable, SpotifyGateway
from tests.fakes.spotify_api import RECORDED_JSON, FakeSpotify, fake_id
from tests.fakes.spotify_fixtures import spotify_settings


class RecordingSleep:
    """Injected instead of asyncio.sleep: records requested waits, never actually waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


class ProgressLog:
    def __init__(self) -> None:
        self.events: list[Progress] = []

    async def __call__(self, p: Progress) -> None:
        self.events.append(p)


def gateway(fake: FakeSpotify, sleep: RecordingSleep | None = None, **overrides) -> SpotifyGateway:
    return SpotifyGateway(spotify_settings(fake, **overrides), sleep=sleep or RecordingSleep())


def tidy_playlist(fake: FakeSpotify) -> str:
    return next(p for p, pl in fake.playlists.items() if pl.owner_id == "tidytuesday")


# -- playlists ------------------------------------------------------------------------------


async def test_owner_reads_own_playlist_in_dev_mode(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify).with_user_token(fake_spotify.alice_token)
    ref = parse_spotify_link(f"https://open.spotify.com/playlist/{fake_spotify.alice_playlist}")
    progress = ProgressLog()
    result = await gw.fetch(ref, progress)
    expected = fake_spotify.playlists[fake_spotify.alice_playlist].entries
    assert [t.id for t in result.tracks] == expected
    assert result.meta.name == "Alice's mix"
    assert result.meta.owner_id == "alice"
    assert result.meta.total == 60
    assert result.meta.snapshot_id == fake_spotify.playlists[ref.id].snapshot_id
    assert result.skipped == {}
    first = result.tracks[0]
    row = fake_spotify.tracks[first.id]
    assert first.name == row["name"]
    assert first.album_id == row["album_id"]
    assert first.artists and first.artist_ids
    assert first.popularity is None and first.label is None  # dev mode: no such fields
    # 1 meta request + ceil(60/50) pages, all with fields= filters, limit 50
    assert fake_spotify.count(f"playlists/{ref.id}") == 3
    assert gw.request_count == 3
    pages = [q for m, p, q in fake_spotify.requests if p.endswith("/items")]
    assert all(q["limit"] == "50" and "fields" in q for q in pages)
    meta_q = next(q for m, p, q in fake_spotify.requests if p == f"/v1/playlists/{ref.id}")
    assert "items(" not in meta_q["fields"]  # the meta request excludes the entries
    assert progress.events[-1] == Progress(stage="fetching", done=60, total=60)


@pytest.mark.parametrize("n", [120, 1001])
async def test_pagination_page_count_and_concurrency(
    fake_spotify_extended: FakeSpotify, n: int
) -> None:
    fake = fake_spotify_extended
    pl = fake.add_playlist(fake.track_ids()[:n], name=f"big {n}", owner_id="bob")
    fake.latency = 0.02  # gives concurrent requests a chance to overlap
    gw = gateway(fake, spotify_concurrency=4)
    progress = ProgressLog()
    result = await gw.fetch(SpotifyRef("playlist", pl.id), progress)
    assert len(result.tracks) == n
    assert [t.id for t in result.tracks] == pl.entries  # playlist order kept
    assert fake.count(f"playlists/{pl.id}") == math.ceil(n / 50) + 1
    offsets = sorted(int(q["offset"]) for m, p, q in fake.requests if p.endswith("/items"))
    assert offsets == list(range(0, n, 50))
    assert 2 <= fake.max_in_flight <= 4
    assert progress.events[-1].done == n
    assert [e.done for e in progress.events] == sorted(e.done for e in progress.events)


async def test_a_big_playlist_does_not_hold_back_another_read(
    fake_spotify_extended: FakeSpotify,
) -> None:
    """Each read waits for the gateway's slots with at most its share of pages, so a small
    playlist read meanwhile is not served after all of a big one's pages (issue #16)."""
    fake = fake_spotify_extended
    big = fake.add_playlist(fake.track_ids()[:1000], name="big", owner_id="bob")
    small = fake.add_playlist(fake.track_ids()[1000:1100], name="small", owner_id="bob")
    fake.latency = 0.02
    gw = gateway(fake, spotify_concurrency=2)

    reading = asyncio.Event()

    async def big_progress(event: Progress) -> None:
        reading.set()  # its first page is in: the other 19 are being asked for

    async def small_later() -> None:
        await reading.wait()
        await gw.fetch(SpotifyRef("playlist", small.id), ProgressLog())

    await asyncio.gather(gw.fetch(SpotifyRef("playlist", big.id), big_progress), small_later())
    paths = [p for _, p, _ in fake.requests]
    last_small = max(i for i, p in enumerate(paths) if small.id in p)
    big_pages_after = [p for p in paths[last_small:] if p.endswith(f"{big.id}/items")]
    assert len(big_pages_after) >= 10  # of its 20 pages: the small read went in between


async def test_token_refresh_is_shared_between_threads(fake_spotify_extended: FakeSpotify) -> None:
    fake = fake_spotify_extended
    gw = gateway(fake)
    ids = [p for p, pl in fake.playlists.items() if pl.owner_id == "tidytuesday"][:8]
    metas = await asyncio.gather(*(gw.get_meta(SpotifyRef("playlist", i)) for i in ids))
    assert [m.id for m in metas] == ids
    assert fake.count("/api/token") == 1


@pytest.mark.parametrize(
    ("keys", "later_key"),
    [(("item", "track"), "item"), (("track",), "track"), (("item",), "item")],
)
async def test_item_or_track_key(fake_spotify: FakeSpotify, keys, later_key: str) -> None:
    fake_spotify.entry_keys = keys
    pl = fake_spotify.add_playlist(fake_spotify.track_ids()[:160], owner_id="alice")
    gw = gateway(fake_spotify).with_user_token(fake_spotify.alice_token)
    result = await gw.fetch(SpotifyRef("playlist", pl.id))
    assert [t.id for t in result.tracks] == pl.entries
    fields = {
        int(q["offset"]): q["fields"] for m, p, q in fake_spotify.requests if p.endswith("/items")
    }
    assert "item(" in fields[0] and "track(" in fields[0]  # first page asks for both
    other = "track" if later_key == "item" else "item"
    for offset in (50, 100, 150):  # later pages only for the key actually used
        assert f"{later_key}(" in fields[offset] and f"{other}(" not in fields[offset]


def test_parse_real_recorded_items_page() -> None:
    page = json.loads((RECORDED_JSON / "get_playlist_tracks_page__zmb3.json").read_text())
    tracks, skipped = SpotifyGateway._parse_entries(page["items"])
    assert len(tracks) + sum(skipped.values()) == len(page["items"])
    assert tracks[0].id == "6hgoYQDUcPyCz7LcTUHKxa"
    assert tracks[0].name == "Calm Down"
    assert tracks[0].popularity == 84
    assert tracks[0].added_by == "nederlandse_top_40"


async def test_skipped_entries_are_counted(fake_spotify: FakeSpotify) -> None:
    ids = fake_spotify.track_ids()
    entries = [
        ids[0],
        {"local": "My demo tape"},
        ids[1],
        {"episode": "Episode 12"},
        None,
        {"unavailable": ids[2]},
        ids[0],  # duplicate
        {"local": "Another local"},
        ids[3],
    ]
    pl = fake_spotify.add_playlist(entries, name="Messy", owner_id="alice")
    gw = gateway(fake_spotify).with_user_token(fake_spotify.alice_token)
    result = await gw.fetch(SpotifyRef("playlist", pl.id))
    assert [t.id for t in result.tracks] == [ids[0], ids[1], ids[3]]
    assert result.skipped == {
        "local": 2,
        "episode": 1,
        "null": 1,
        "unavailable": 1,
        "duplicate": 1,
    }


async def test_playlist_of_only_local_files_is_empty(fake_spotify: FakeSpotify) -> None:
    pl = fake_spotify.add_playlist([{"local": "a"}, {"local": "b"}], owner_id="alice")
    gw = gateway(fake_spotify).with_user_token(fake_spotify.alice_token)
    with pytest.raises(EmptyPlaylist) as exc:
        await gw.fetch(SpotifyRef("playlist", pl.id))
    assert "2 local files" in exc.value.user_message


async def test_dev_mode_app_token_gets_not_owner(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify)
    with pytest.raises(NotOwner) as exc:
        await gw.fetch(SpotifyRef("playlist", tidy_playlist(fake_spotify)))
    msg = exc.value.user_message
    assert "/spotify link" in msg
    assert "https://exportify.net" in msg
    assert "CSV" in msg


async def test_dev_mode_other_users_token_gets_not_owner(fake_spotify: FakeSpotify) -> None:
    token = fake_spotify.user_token("mallory")
    gw = gateway(fake_spotify).with_user_token(token)
    with pytest.raises(NotOwner):
        await gw.fetch(SpotifyRef("playlist", fake_spotify.alice_playlist))


async def test_collaborator_can_read_in_dev_mode(fake_spotify: FakeSpotify) -> None:
    pl = fake_spotify.playlists[fake_spotify.alice_playlist]
    pl.collaborators.add("carol")
    gw = gateway(fake_spotify).with_user_token(fake_spotify.user_token("carol"))
    result = await gw.fetch(SpotifyRef("playlist", pl.id))
    assert len(result.tracks) == 60


async def test_extended_mode_reads_any_playlist_with_metadata(
    fake_spotify_extended: FakeSpotify,
) -> None:
    fake = fake_spotify_extended
    pid = tidy_playlist(fake)
    gw = gateway(fake)
    result = await gw.fetch(SpotifyRef("playlist", pid))
    assert len(result.tracks) == len(set(fake.playlists[pid].entries))
    t = result.tracks[0]
    row = fake.tracks[t.id]
    assert t.popularity == row["popularity"]
    assert t.label == fake.albums[row["album_id"]]["label"]
    assert t.genres and set(t.genres) <= set(fake.artists[t.artist_ids[0]]["genres"])
    n_albums = len({fake.tracks[i]["album_id"] for i in fake.playlists[pid].entries})
    assert fake.count("albums", "GET") == math.ceil(n_albums / 20)
    assert all(len(q["ids"].split(",")) <= 20 for m, p, q in fake.requests if p == "/v1/albums")


async def test_enrichment_403_is_remembered(fake_spotify_extended: FakeSpotify) -> None:
    fake = fake_spotify_extended
    fake.fail_next("/v1/albums", 403, times=100)
    gw = gateway(fake)
    pid = tidy_playlist(fake)
    result = await gw.fetch(SpotifyRef("playlist", pid))
    assert all(t.label is None for t in result.tracks)
    before = fake.count("albums") + fake.count("artists")
    await gw.fetch(SpotifyRef("playlist", pid))
    assert fake.count("albums") + fake.count("artists") == before


async def test_not_found(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify)
    with pytest.raises(NotFound) as exc:
        await gw.get_meta(SpotifyRef("playlist", fake_id("nope")))
    assert "couldn't find" in exc.value.user_message


async def test_editorial_by_id_fails_without_a_request(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify)
    with pytest.raises(EditorialPlaylist) as exc:
        await gw.fetch(
            parse_spotify_link("https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M")
        )
    assert "made by Spotify" in exc.value.user_message
    assert fake_spotify.requests == []


async def test_editorial_by_owner(fake_spotify_extended: FakeSpotify) -> None:
    fake = fake_spotify_extended
    pl = fake.add_playlist(fake.track_ids()[:10], name="Spotify-made", owner_id="spotify")
    with pytest.raises(EditorialPlaylist):
        await gateway(fake).fetch(SpotifyRef("playlist", pl.id))


async def test_too_large(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify).with_user_token(fake_spotify.alice_token)
    with pytest.raises(TooLarge) as exc:
        await gw.fetch(SpotifyRef("playlist", fake_spotify.alice_playlist), max_tracks=10)
    assert "60" in exc.value.user_message and "10" in exc.value.user_message
    assert fake_spotify.count("playlists") == 1  # only the meta request


# -- albums --------------------------------------------------------------------------------------


async def test_album_with_pagination(fake_spotify: FakeSpotify) -> None:
    ids = fake_spotify.track_ids()[:120]
    aid = fake_spotify.add_album(ids, name="Long album")
    gw = gateway(fake_spotify)
    result = await gw.fetch(parse_spotify_link(f"spotify:album:{aid}"))
    assert [t.id for t in result.tracks] == ids
    assert result.meta.kind == "album" and result.meta.name == "Long album"
    assert result.meta.total == 120
    assert all(t.album == "Long album" and t.album_id == aid for t in result.tracks)
    # album object (first 50 embedded) + 2 more track pages
    assert fake_spotify.count(f"albums/{aid}") == 3


async def test_album_not_found(fake_spotify: FakeSpotify) -> None:
    with pytest.raises(NotFound):
        await gateway(fake_spotify).fetch(SpotifyRef("album", fake_id("no album")))


# -- errors: 429, quota, 5xx, timeouts, credentials ------------------------------------------------


async def test_short_retry_after_is_awaited_then_retried(fake_spotify: FakeSpotify) -> None:
    sleep = RecordingSleep()
    fake_spotify.rate_limit_next(f"playlists/{fake_spotify.alice_playlist}/items", 2)
    gw = gateway(fake_spotify, sleep).with_user_token(fake_spotify.alice_token)
    result = await gw.fetch(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert len(result.tracks) == 60
    assert sleep.calls == [2.0]


async def test_long_retry_after_fails_fast(fake_spotify: FakeSpotify) -> None:
    sleep = RecordingSleep()
    fake_spotify.rate_limit_next("playlists", 7200)
    gw = gateway(fake_spotify, sleep).with_user_token(fake_spotify.alice_token)
    with pytest.raises(RateLimited) as exc:
        await gw.fetch(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert not isinstance(exc.value, QuotaExceeded)
    assert exc.value.retry_after == 7200
    assert "about 2 hours" in exc.value.user_message
    assert sleep.calls == []
    assert fake_spotify.count("playlists") == 1


async def test_quota_exceeded_fails_fast_even_with_short_wait(fake_spotify: FakeSpotify) -> None:
    sleep = RecordingSleep()
    fake_spotify.rate_limit_next("playlists", 5, quota=True)
    gw = gateway(fake_spotify, sleep).with_user_token(fake_spotify.alice_token)
    with pytest.raises(QuotaExceeded) as exc:
        await gw.fetch(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert "exportify.net" in exc.value.user_message
    assert sleep.calls == []
    assert fake_spotify.count("playlists") == 1


async def test_repeated_429_gives_up(fake_spotify: FakeSpotify) -> None:
    sleep = RecordingSleep()
    fake_spotify.rate_limit_next("playlists", 1, times=10)
    gw = gateway(fake_spotify, sleep).with_user_token(fake_spotify.alice_token)
    with pytest.raises(RateLimited):
        await gw.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert sleep.calls == [1.0, 1.0, 1.0]


async def test_5xx_is_retried_then_succeeds(fake_spotify: FakeSpotify) -> None:
    sleep = RecordingSleep()
    fake_spotify.fail_next("playlists", 502, times=2)
    gw = gateway(fake_spotify, sleep).with_user_token(fake_spotify.alice_token)
    meta = await gw.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert meta.total == 60
    assert len(sleep.calls) == 2


async def test_persistent_5xx_is_spotify_unavailable(fake_spotify: FakeSpotify) -> None:
    sleep = RecordingSleep()
    fake_spotify.fail_next("playlists", 503, times=10, body="<html>oops</html>")
    gw = gateway(fake_spotify, sleep).with_user_token(fake_spotify.alice_token)
    with pytest.raises(SpotifyUnavailable) as exc:
        await gw.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert "503" in exc.value.user_message
    assert fake_spotify.count("playlists") == 3


async def test_timeout_is_spotify_unavailable(fake_spotify: FakeSpotify) -> None:
    fake_spotify.fail_next("playlists", 200, delay=0.6, times=3)
    gw = gateway(fake_spotify, spotify_timeout_s=0.1).with_user_token(fake_spotify.alice_token)
    with pytest.raises(SpotifyUnavailable) as exc:
        await gw.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert "timed out" in exc.value.user_message


async def test_connection_refused_is_spotify_unavailable(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify, spotify_api_base="http://127.0.0.1:9/v1/")
    with pytest.raises(SpotifyUnavailable):
        await gw.with_user_token("whatever").get_meta(SpotifyRef("playlist", fake_id("x")))


async def test_bad_client_secret_is_auth_error(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify, spotify_client_secret="wrong")
    with pytest.raises(AuthError) as exc:
        await gw.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert "SPOTIFY_CLIENT_SECRET" in exc.value.user_message


async def test_rejected_user_token_is_auth_error(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify).with_user_token("not-a-token")
    with pytest.raises(AuthError) as exc:
        await gw.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert "/spotify link" in exc.value.user_message


async def test_expired_app_token_is_renewed(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify)
    await gw.get_meta(SpotifyRef("playlist", tidy_playlist(fake_spotify)))
    fake_spotify.expire_all_tokens()
    await gw.get_meta(SpotifyRef("playlist", tidy_playlist(fake_spotify)))
    assert fake_spotify.count("/api/token") == 2


async def test_no_credentials(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify, spotify_client_id=None, spotify_client_secret=None)
    with pytest.raises(AuthError):
        await gw.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert await gw.detect_mode() == "unknown"
    assert fake_spotify.requests == []


async def test_tokens_never_logged(fake_spotify: FakeSpotify, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    gw = gateway(fake_spotify).with_user_token(fake_spotify.alice_token)
    fake_spotify.fail_next("playlists", 404)
    with pytest.raises(NotFound):
        await gw.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
    await gw.fetch(SpotifyRef("playlist", fake_spotify.alice_playlist))
    assert fake_spotify.alice_token not in caplog.text
    for token in fake_spotify.tokens:
        assert token not in caplog.text


# -- audio features, user endpoints, mode ------------------------------------------------------


async def test_audio_features_dev_mode_403_once(fake_spotify: FakeSpotify) -> None:
    gw = gateway(fake_spotify)
    assert gw.audio_features_available is None
    with pytest.raises(FeaturesUnavailable):
        await gw.audio_features(fake_spotify.track_ids()[:10])
    assert gw.audio_features_available is False
    calls = fake_spotify.count("audio-features")
    with pytest.raises(FeaturesUnavailable):
        await gw.audio_features(fake_spotify.track_ids()[:10])
    # user gateways share the app's knowledge
    with pytest.raises(FeaturesUnavailable):
        await gw.with_user_token(fake_spotify.alice_token).audio_features(["x"])
    assert fake_spotify.count("audio-features") == calls == 1


async def test_audio_features_extended_batches_of_100(fake_spotify_extended: FakeSpotify) -> None:
    fake = fake_spotify_extended
    ids = fake.track_ids()[:250]
    fake.spotify_features_missing.add(ids[7])
    gw = gateway(fake)
    feats = await gw.audio_features([*ids, fake_id("unknown track")])
    assert gw.audio_features_available is True
    assert len(feats) == 249 and ids[7] not in feats
    row = fake.tracks[ids[0]]["features"]
    assert feats[ids[0]]["danceability"] == row["danceability"]
    assert feats[ids[0]]["tempo"] == row["tempo"]
    assert feats[ids[0]]["time_signature"] == 4
    assert fake.count("audio-features") == 3


async def test_detect_mode(fake_spotify: FakeSpotify, fake_spotify_extended: FakeSpotify) -> None:
    assert await gateway(fake_spotify).detect_mode() == "development"
    assert await gateway(fake_spotify_extended).detect_mode() == "extended"


async def test_user_endpoints(fake_spotify: FakeSpotify) -> None:
    fake = fake_spotify
    gw = gateway(fake).with_user_token(fake.alice_token)
    me = await gw.current_user()
    assert me["id"] == "alice"

    liked = await gw.fetch_liked()
    assert [t.id for t in liked.tracks] == fake.users["alice"].saved_tracks
    assert liked.meta.kind == "liked"

    mine = await gw.my_playlists()
    assert fake.alice_playlist in [p.id for p in mine]
    assert next(p for p in mine if p.id == fake.alice_playlist).total == 60

    ids = fake.track_ids()[:45]
    saved = await gw.library_contains(ids)
    assert saved == set(fake.users["alice"].saved_tracks)
    assert fake.count("me/library/contains") == 2
    assert all(len(q["uris"].split(",")) <= 40 for m, p, q in fake.requests if "contains" in p)

    to_save = fake.track_ids()[:230]
    created = await gw.create_playlist("Cluster 1", "made by a test", to_save)
    assert fake.playlists[created.id].entries == to_save
    assert fake.playlists[created.id].owner_id == "alice"
    assert fake.count(f"playlists/{created.id}/items", "POST") == 3
    assert created.snapshot_id == fake.playlists[created.id].snapshot_id


async def test_liked_songs_capped(fake_spotify: FakeSpotify) -> None:
    fake_spotify.set_saved("alice", fake_spotify.track_ids()[:130])
    gw = gateway(fake_spotify).with_user_token(fake_spotify.alice_token)
    liked = await gw.fetch_liked(max_tracks=60)
    assert len(liked.tracks) == 60
    assert liked.skipped["over_limit"] == 70
    assert fake_spotify.count("me/tracks") == 2


async def test_user_endpoints_need_user_token(fake_spotify: FakeSpotify) -> None:
    with pytest.raises(AuthError) as exc:
        await gateway(fake_spotify).fetch_liked()
    assert "/spotify link" in exc.value.user_message


def test_wait_in_words_and_retry_after() -> None:
    assert wait_in_words(1) == "1 second"
    assert wait_in_words(12.2) == "13 seconds"
    assert wait_in_words(90) == "about 2 minutes"
    assert wait_in_words(7200) == "about 2 hours"
    assert wait_in_words(86400 * 3) == "about 3 days"
    assert parse_retry_after({"Retry-After": "42"}) == 42
    assert parse_retry_after({}) == 1.0
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


async def test_tokens_redacted_even_if_spotipy_debug_enabled(
    fake_spotify: FakeSpotify, caplog
) -> None:
    lg = logging.getLogger("spotipy.client")
    old = lg.level
    lg.setLevel(logging.DEBUG)
    try:
        caplog.set_level(logging.DEBUG)
        gw = gateway(fake_spotify).with_user_token(fake_spotify.alice_token)
        await gw.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
        app = gateway(fake_spotify)
        await app.get_meta(SpotifyRef("playlist", fake_spotify.alice_playlist))
    finally:
        lg.setLevel(old)
    assert "Bearer [redacted]" in caplog.text  # the debug lines were emitted, redacted
    for token in fake_spotify.tokens:
        assert token not in caplog.text
    assert fake_spotify.client_secret not in caplog.text


async def test_recorded_real_page_through_the_fake(fake_spotify: FakeSpotify) -> None:
    pl = fake_spotify.add_recorded_playlist("alice")
    gw = gateway(fake_spotify).with_user_token(fake_spotify.alice_token)
    result = await gw.fetch(SpotifyRef("playlist", pl.id))
    page = json.loads((RECORDED_JSON / "get_playlist_tracks_page__zmb3.json").read_text())
    assert [t.id for t in result.tracks] == [e["track"]["id"] for e in page["items"]]
    assert result.tracks[0].name == "Calm Down"
    assert result.tracks[0].album == page["items"][0]["track"]["album"]["name"]


# -- the fake itself: accounts service and fields filter -------------------------------------------


def test_fake_fields_filter() -> None:
    from tests.fakes.spotify_api import apply_fields, parse_fields

    obj = {
        "id": "x",
        "name": "n",
        "owner": {"id": "o", "display_name": "O", "href": "h"},
        "items": {"total": 3, "items": [{"a": 1, "b": 2}]},
    }
    tree = parse_fields("id,owner(id),items.total")
    assert apply_fields(obj, tree) == {"id": "x", "owner": {"id": "o"}, "items": {"total": 3}}
    assert apply_fields(obj, parse_fields("items(items(!b))")) == {"items": {"items": [{"a": 1}]}}


async def test_fake_accounts_pkce_and_refresh(fake_spotify: FakeSpotify) -> None:
    import base64
    import hashlib

    import requests

    fake = fake_spotify
    verifier = "v" * 64
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    fake.authorize_as = "alice"
    redirect = "http://127.0.0.1:1/callback"
    r = await asyncio.to_thread(
        requests.get,
        fake.accounts_base + "/authorize",
        params={
            "client_id": fake.client_id,
            "response_type": "code",
            "redirect_uri": redirect,
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        allow_redirects=False,
        timeout=5,
    )
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith(redirect) and "state=s1" in location
    code = location.split("code=")[1].split("&")[0]

    def token(**data):
        data.setdefault("client_id", fake.client_id)
        return requests.post(fake.accounts_base + "/api/token", data=data, timeout=5)

    bad = await asyncio.to_thread(
        token, grant_type="authorization_code", code=code, redirect_uri=redirect,
        code_verifier="wrong",
    )  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    good = await asyncio.to_thread(
        token, grant_type="authorization_code", code=code, redirect_uri=redirect,
        code_verifier=verifier,
    )  # fmt: skip
    body = good.json()
    assert good.status_code == 200 and body["refresh_token"]
    me = (
        await SpotifyGateway(spotify_settings(fake))
        .with_user_token(body["access_token"])
        .current_user()
    )
    assert me["id"] == "alice"
    replay = await asyncio.to_thread(
        token, grant_type="authorization_code", code=code, redirect_uri=redirect,
        code_verifier=verifier,
    )  # fmt: skip
    assert replay.status_code == 400  # codes are single-use

    refreshed = await asyncio.to_thread(
        token, grant_type="refresh_token", refresh_token=body["refresh_token"]
    )
    assert refreshed.status_code == 200 and refreshed.json()["access_token"]
    fake.revoke_refresh_token(body["refresh_token"])
    expired = await asyncio.to_thread(
        token, grant_type="refresh_token", refresh_token=body["refresh_token"]
    )
    assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"


async def test_failed_post_is_not_retried(fake_spotify: FakeSpotify) -> None:
    sleep = RecordingSleep()
    fake_spotify.fail_next("me/playlists", 502, method="POST")
    gw = gateway(fake_spotify, sleep).with_user_token(fake_spotify.alice_token)
    with pytest.raises(SpotifyUnavailable):
        await gw.create_playlist("Cluster 1", "", fake_spotify.track_ids()[:3])
    assert fake_spotify.count("me/playlists", "POST") == 1
    assert sleep.calls == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 429, 500, 503])
def test_every_status_and_request_kind_maps_to_a_typed_error_with_a_message(status: int) -> None:
    """The one mapper covers every (status, what was asked) pair, Web API and accounts alike."""
    from bot.errors import PipelineError
    from bot.sources.spotify.errors import Asked, HttpFailure, Request, status_error

    failure = HttpFailure(status, None, "server-text-7f3", {"Retry-After": "5"})
    ref = SpotifyRef("playlist", "0" * 22)
    for asked in Asked:
        err = status_error(failure, Request(asked, path="x", ref=ref))
        assert isinstance(err, PipelineError), (asked, status)
        assert err.user_message and "server-text" not in err.user_message, (asked, status)
    accounts = status_error(failure, Request(Asked.TOKEN_REFRESH))
    api = status_error(failure, Request(Asked.USER))
    if status >= 500:
        assert "accounts service" in accounts.user_message
        assert "accounts service" not in api.user_message
