"""ReccoBeats client, the feature cache and the gathering order, against the fake."""

from __future__ import annotations

import math

import pytest

from bot.features.cache import FeatureCache, MemoryFeatureCache
from bot.features.gather import gather_features
from bot.features.reccobeats import ReccoBeatsClient, _parse
from bot.models import AUDIO_FEATURES, Progress, Track
from bot.sources.links import SpotifyRef
from bot.sources.spotify import SpotifyGateway
from tests.fakes.spotify_api import FakeSpotify, fake_id
from tests.fakes.spotify_fixtures import spotify_settings
from tests.test_spotify_source import RecordingSleep


def tracks_of(fake: FakeSpotify, n: int, offset: int = 0) -> list[Track]:
    return [Track(id=i, name=fake.tracks[i]["name"]) for i in fake.track_ids()[offset : offset + n]]


@pytest.fixture
async def recco(fake_spotify: FakeSpotify):
    client = ReccoBeatsClient(fake_spotify.reccobeats_base, timeout_s=2, sleep=RecordingSleep())
    yield client
    await client.close()


# -- ReccoBeats ---------------------------------------------------------------------------------


async def test_reccobeats_maps_back_through_href(
    fake_spotify: FakeSpotify, recco: ReccoBeatsClient
) -> None:
    ids = fake_spotify.track_ids()[:100]
    fake_spotify.reccobeats_missing.update(ids[10:13])
    unknown = fake_id("not a real track")
    result = await recco.lookup([*ids, unknown, "bad-id"])
    assert set(result.found) == set(ids) - set(ids[10:13])
    assert result.missing == {*ids[10:13], unknown}
    assert result.failed == set()
    row = fake_spotify.tracks[ids[0]]["features"]
    assert result.found[ids[0]]["valence"] == row["valence"]
    assert result.found[ids[0]]["key"] == row["key"]
    # 101 valid ids → ceil(101/40) requests, each ≤ 40 ids
    assert recco.request_count == math.ceil(101 / 40) == fake_spotify.count("/reccobeats/")
    sizes = [len(q["ids"].split(",")) for m, p, q in fake_spotify.requests if "recco" in p]
    assert max(sizes) == 40


def test_reccobeats_parse_ignores_uuid_ids_and_unasked_rows() -> None:
    asked = "6f807x0ima9a1j3VPbc7VN"
    feats = dict.fromkeys(AUDIO_FEATURES, 0.5)
    payload = {
        "content": [
            {"id": "9ae5750f-496d-5a16-9556-36f7d20b24fc",
             "href": f"https://open.spotify.com/track/{asked}", **feats},
            {"id": asked, "href": "https://open.spotify.com/track/0r7CVbZTWZgbTCYdfa2P31",
             **feats},
            {"id": "x", "href": None, **feats},
        ]
    }  # fmt: skip
    assert list(_parse(payload, [asked]).found) == [asked]
    assert _parse({"unexpected": True}, [asked]).found == {}


async def test_reccobeats_short_429_retried(
    fake_spotify: FakeSpotify, recco: ReccoBeatsClient
) -> None:
    fake_spotify.fail_next("/reccobeats/v1/audio-features", 429, headers={"Retry-After": "2"})
    found = await recco.audio_features(fake_spotify.track_ids()[:5])
    assert len(found) == 5
    assert recco._sleep.calls == [2.0]  # type: ignore[attr-defined]


async def test_reccobeats_long_429_and_5xx_give_missing_not_crash(
    fake_spotify: FakeSpotify, recco: ReccoBeatsClient
) -> None:
    ids = fake_spotify.track_ids()[:80]
    fake_spotify.fail_next("/reccobeats/", 429, headers={"Retry-After": "3600"})
    fake_spotify.fail_next("/reccobeats/", 503, times=5)
    result = await recco.lookup(ids)
    assert len(result.failed) == 80 and result.found == {}
    assert 3600 not in recco._sleep.calls  # type: ignore[attr-defined]


async def test_reccobeats_timeout_is_failed(fake_spotify: FakeSpotify) -> None:
    client = ReccoBeatsClient(
        fake_spotify.reccobeats_base, timeout_s=0.1, retries=0, sleep=RecordingSleep()
    )
    fake_spotify.fail_next("/reccobeats/", 200, delay=0.5)
    try:
        result = await client.lookup(fake_spotify.track_ids()[:3])
    finally:
        await client.close()
    assert result.failed == set(fake_spotify.track_ids()[:3])


async def test_reccobeats_unreachable(fake_spotify: FakeSpotify) -> None:
    client = ReccoBeatsClient("http://127.0.0.1:9/v1", timeout_s=1, sleep=RecordingSleep())
    try:
        assert await client.audio_features(fake_spotify.track_ids()[:3]) == {}
    finally:
        await client.close()


async def test_an_unreachable_reccobeats_is_left_alone_for_a_while(caplog) -> None:
    """No network: the first batches fail (each tried twice), the rest of the playlist and the
    next lookups within the pause send nothing (offline, 250 batches took 21 s); after it, ask
    again. Said once in the log."""
    now = [0.0]
    client = ReccoBeatsClient(
        "http://127.0.0.1:9/v1",
        timeout_s=1,
        concurrency=2,
        sleep=RecordingSleep(),
        clock=lambda: now[0],
    )
    ids = [fake_id("t", str(i)) for i in range(40 * 20)]
    try:
        result = await client.lookup(ids)
        assert result.failed == set(ids) and not result.missing
        assert client.request_count <= 2 * 2  # two batches at a time, two attempts each
        sent = client.request_count
        now[0] += 59
        assert (await client.lookup(ids[:40])).failed == set(ids[:40])
        assert client.request_count == sent
        now[0] += 2
        await client.lookup(ids[:40])
        assert client.request_count == sent + 2
    finally:
        await client.close()
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 2 and "ClientConnector" in unreachable[0].getMessage()


def _recco_row(fake: FakeSpotify, track_id: str, href: str | None = None, **values: float) -> dict:
    """One ReccoBeats answer row for ``track_id`` (its real features, ``values`` on top)."""
    feats = {**fake.tracks[track_id]["features"], **values}
    href = f"https://open.spotify.com/track/{track_id}" if href is None else href
    return {"id": fake.reccobeats_ids[track_id], "href": href, **feats}


@pytest.mark.parametrize(
    "shape",
    ["href names ReccoBeats' own track", "no href", "a bare list", "content is not a list"],
)
async def test_an_answer_that_cannot_be_matched_back_is_not_cached_as_missing(
    fake_spotify: FakeSpotify, shape: str, caplog
) -> None:
    """ReccoBeats changing its answer (an href without the Spotify id, another envelope) left
    every asked track "missing" and cached so for 90 days: no sound for anything, silently.
    Now they are not answered (asked again next time), said once in the log."""
    fake = fake_spotify
    tracks = tracks_of(fake, 30)
    rows = [_recco_row(fake, t.id, href="https://api.reccobeats.com/v1/track/x") for t in tracks]
    body: object = {
        "href names ReccoBeats' own track": {"content": rows},
        "no href": {"content": [{k: v for k, v in r.items() if k != "href"} for r in rows]},
        "a bare list": rows,
        "content is not a list": {"content": {"items": rows}},
    }[shape]
    fake.fail_next("/reccobeats/", 200, body=body, times=2)
    cache = MemoryFeatureCache()
    recco = ReccoBeatsClient(fake.reccobeats_base, sleep=RecordingSleep())
    try:
        first = await gather_features(tracks, spotify=None, reccobeats=recco, cache=cache)
        assert first.values == {} and first.unanswered == 30
        assert len(cache) == 0  # nothing remembered as "ReccoBeats has nothing for this track"
        second = await gather_features(tracks, spotify=None, reccobeats=recco, cache=cache)
        third = await gather_features(tracks, spotify=None, reccobeats=recco, cache=cache)
    finally:
        await recco.close()
    assert second.unanswered == 30 and len(third.values) == 30  # the fixed answer is used
    warnings = [r for r in caplog.records if "has its API changed" in r.getMessage()]
    assert len(warnings) == 1


def test_rows_partly_without_a_track_leave_the_rest_unanswered() -> None:
    a, b = "6f807x0ima9a1j3VPbc7VN", "0r7CVbZTWZgbTCYdfa2P31"
    feats = dict.fromkeys(AUDIO_FEATURES, 0.5) | {"loudness": -6.0, "tempo": 120.0}
    answer = _parse(
        {"content": [{"href": f"https://open.spotify.com/track/{a}", **feats}, feats]}, [a, b]
    )
    assert (
        list(answer.found) == [a]
        and answer.unmatched == "1 of 2 rows without the track they describe"
    )


@pytest.mark.parametrize(
    "bad", [{"tempo": math.nan}, {"tempo": 9999.0}, {"loudness": 50.0}, {"valence": 2.0}]
)
def test_impossible_values_are_no_features(bad: dict[str, float]) -> None:
    """NaN or out-of-range values (as in a CSV) are not a sound: the track counts as missing,
    not as "ReccoBeats audio features" clustered on an imputed or absurd value."""
    tid = "6f807x0ima9a1j3VPbc7VN"
    feats = dict.fromkeys(AUDIO_FEATURES, 0.5) | {"loudness": -6.0, "tempo": 120.0}
    row = {"href": f"https://open.spotify.com/track/{tid}", **feats}
    assert list(_parse({"content": [row]}, [tid]).found) == [tid]
    assert _parse({"content": [row | bad]}, [tid]).found == {}


async def test_numbers_sent_as_strings_are_read_and_garbage_is_not_cached(
    fake_spotify: FakeSpotify, caplog
) -> None:
    """Rows with ``"0.71"`` instead of 0.71 counted as missing and were cached so for 90 days.
    Now strings are read as numbers (range checks kept); an answer with no readable row at all
    is not remembered as "nothing for these tracks"."""
    fake = fake_spotify
    tracks = tracks_of(fake, 10)
    as_text = [
        {k: str(v) if isinstance(v, float) else v for k, v in _recco_row(fake, t.id).items()}
        for t in tracks
    ]
    as_text[0]["tempo"] = "9999"  # a string out of range is still no sound
    fake.fail_next("/reccobeats/", 200, body={"content": as_text})
    cache = MemoryFeatureCache()
    recco = ReccoBeatsClient(fake.reccobeats_base, sleep=RecordingSleep())
    try:
        first = await gather_features(tracks, spotify=None, reccobeats=recco, cache=cache)
        assert set(first.values) == {t.id for t in tracks[1:]}
        assert (
            first.values[tracks[1].id]["energy"] == fake.tracks[tracks[1].id]["features"]["energy"]
        )
        others = tracks_of(fake, 10, offset=10)
        garbage = [_recco_row(fake, t.id) | {"energy": "high"} for t in others]
        fake.fail_next("/reccobeats/", 200, body={"content": garbage})
        second = await gather_features(others, spotify=None, reccobeats=recco, cache=cache)
        assert second.values == {} and second.unanswered == 10
        third = await gather_features(others, spotify=None, reccobeats=recco, cache=cache)
    finally:
        await recco.close()
    assert len(third.values) == 10  # asked again, not "missing" from the cache
    assert any("without readable features" in r.getMessage() for r in caplog.records)


async def test_a_reccobeats_that_does_not_answer_is_left_alone_for_a_while(
    fake_spotify: FakeSpotify, caplog
) -> None:
    """Connected but silent (overloaded): every batch waited its timeout twice, 8 at a time,
    so a 2,000-track file waited 158 s (10,000: ~13 min) before clustering. Now the first
    batches' timeouts pause it like an unreachable host."""
    fake = fake_spotify
    ids = [fake_id("t", str(i)) for i in range(40 * 20)]
    fake.fail_next("/reccobeats/", 200, delay=1.0, times=100)
    client = ReccoBeatsClient(
        fake.reccobeats_base, timeout_s=0.05, concurrency=2, sleep=RecordingSleep()
    )
    try:
        result = await client.lookup(ids)
    finally:
        await client.close()
    assert result.failed == set(ids) and not result.missing
    assert client.request_count <= 2 * 2  # two batches at a time, two attempts each
    silent = [r for r in caplog.records if "not answering" in r.getMessage()]
    assert len(silent) == 1 and "not asked again for 60 s" in silent[0].getMessage()


# -- cache ----------------------------------------------------------------------------------------


async def test_memory_cache_roundtrip() -> None:
    cache = MemoryFeatureCache()
    assert isinstance(cache, FeatureCache)
    await cache.put_many("reccobeats", {"a": {"energy": 0.5}, "b": None})
    got = await cache.get_many("reccobeats", ["a", "b", "c"])
    assert got == {"a": {"energy": 0.5}, "b": None}
    assert await cache.get_many("spotify", ["a"]) == {}
    got["a"]["energy"] = 1.0  # callers can't mutate the cache
    assert (await cache.get_many("reccobeats", ["a"]))["a"] == {"energy": 0.5}


# -- gather ---------------------------------------------------------------------------------------


async def test_gather_dev_mode_uses_reccobeats_and_cache_reuse(fake_spotify: FakeSpotify) -> None:
    fake = fake_spotify
    gw = SpotifyGateway(spotify_settings(fake), sleep=RecordingSleep())
    recco = ReccoBeatsClient(fake.reccobeats_base, sleep=RecordingSleep())
    cache = MemoryFeatureCache()
    tracks = tracks_of(fake, 120)
    fake.reccobeats_missing.add(tracks[5].id)
    events: list[Progress] = []

    async def progress(p: Progress) -> None:
        events.append(p)

    try:
        table = await gather_features(
            tracks, spotify=gw, reccobeats=recco, cache=cache, progress=progress
        )
        assert len(table.values) == 119 and tracks[5].id not in table.values
        assert table.coverage() == {"reccobeats": 119}
        assert gw.audio_features_available is False
        assert fake.count("audio-features") == 1  # one 403, then never again
        assert events[-1] == Progress(stage="featurizing", done=119, total=120)
        assert all(e.stage == "featurizing" for e in events)

        fake.clear_log()
        again = await gather_features(
            tracks, spotify=gw, reccobeats=recco, cache=cache, progress=progress
        )
        assert again.values == table.values
        assert fake.requests == []  # everything from the cache, incl. the known-missing id
    finally:
        await recco.close()


async def test_gather_extended_prefers_spotify_then_reccobeats(
    fake_spotify_extended: FakeSpotify,
) -> None:
    fake = fake_spotify_extended
    gw = SpotifyGateway(spotify_settings(fake), sleep=RecordingSleep())
    recco = ReccoBeatsClient(fake.reccobeats_base, sleep=RecordingSleep())
    cache = MemoryFeatureCache()
    tracks = tracks_of(fake, 50)
    fake.spotify_features_missing.update(t.id for t in tracks[:4])
    try:
        table = await gather_features(tracks, spotify=gw, reccobeats=recco, cache=cache,
                                      progress=_noop)  # fmt: skip
    finally:
        await recco.close()
    assert table.coverage() == {"spotify": 46, "reccobeats": 4}
    assert {table.sources[t.id] for t in tracks[:4]} == {"reccobeats"}
    assert fake.count("/reccobeats/") == 1
    sent = fake.requests[-1][2]["ids"].split(",")
    assert sorted(sent) == sorted(t.id for t in tracks[:4])  # only what Spotify lacked
    assert (await cache.get_many("spotify", [tracks[0].id])) == {tracks[0].id: None}


async def test_gather_csv_values_first_and_no_requests(fake_spotify: FakeSpotify) -> None:
    fake = fake_spotify
    tracks = tracks_of(fake, 10)
    for t in tracks:
        t.features = {k: v for k, v in fake.tracks[t.id]["features"].items()}
    recco = ReccoBeatsClient(fake.reccobeats_base)
    try:
        table = await gather_features(tracks, spotify=None, reccobeats=recco,
                                      cache=MemoryFeatureCache(), progress=_noop)  # fmt: skip
    finally:
        await recco.close()
    assert table.coverage() == {"csv": 10}
    assert fake.requests == []


async def test_gather_partial_csv_features_are_completed(fake_spotify: FakeSpotify) -> None:
    tracks = tracks_of(fake_spotify, 3)
    tracks[0].features = {"energy": 0.3}  # incomplete: not usable on its own
    recco = ReccoBeatsClient(fake_spotify.reccobeats_base)
    try:
        table = await gather_features(tracks, spotify=None, reccobeats=recco, cache=None,
                                      progress=_noop)  # fmt: skip
    finally:
        await recco.close()
    assert table.sources[tracks[0].id] == "reccobeats"


async def test_gather_failed_lookups_not_cached(fake_spotify: FakeSpotify) -> None:
    fake = fake_spotify
    tracks = tracks_of(fake, 30)
    cache = MemoryFeatureCache()
    recco = ReccoBeatsClient(fake.reccobeats_base, retries=0, sleep=RecordingSleep())
    fake.fail_next("/reccobeats/", 500)
    try:
        first = await gather_features(tracks, spotify=None, reccobeats=recco, cache=cache,
                                      progress=_noop)  # fmt: skip
        assert first.values == {}
        assert len(cache) == 0
        second = await gather_features(tracks, spotify=None, reccobeats=recco, cache=cache,
                                       progress=_noop)  # fmt: skip
    finally:
        await recco.close()
    assert len(second.values) == 30


async def test_gather_spotify_rate_limit_falls_back(fake_spotify_extended: FakeSpotify) -> None:
    fake = fake_spotify_extended
    fake.rate_limit_next("audio-features", 9999)
    gw = SpotifyGateway(spotify_settings(fake), sleep=RecordingSleep())
    recco = ReccoBeatsClient(fake.reccobeats_base)
    try:
        table = await gather_features(tracks_of(fake, 20), spotify=gw, reccobeats=recco,
                                      cache=None, progress=_noop)  # fmt: skip
    finally:
        await recco.close()
    assert table.coverage() == {"reccobeats": 20}
    assert gw.audio_features_available is None  # a rate limit says nothing about access


async def test_fetch_then_gather_end_to_end(fake_spotify: FakeSpotify) -> None:
    """A linked user's playlist in a Development-Mode app: fetch + ReccoBeats features."""
    fake = fake_spotify
    gw = SpotifyGateway(spotify_settings(fake)).with_user_token(fake.alice_token)
    fetched = await gw.fetch(SpotifyRef("playlist", fake.alice_playlist))
    recco = ReccoBeatsClient(fake.reccobeats_base)
    try:
        table = await gather_features(fetched.tracks, spotify=gw, reccobeats=recco,
                                      cache=MemoryFeatureCache(), progress=_noop)  # fmt: skip
    finally:
        await recco.close()
    assert len(table.values) == len(fetched.tracks) == 60
    t = fetched.tracks[0]
    assert table.values[t.id]["danceability"] == fake.tracks[t.id]["features"]["danceability"]


async def _noop(_: Progress) -> None:
    return None
