"""The order of sources for a shared link: API → public page → help (bot.sources.link_reader)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import EditorialPlaylist, NotOwner, PipelineError, QuotaExceeded, TooLarge
from bot.models import PlaylistMeta, Progress
from bot.sources.link_reader import (
    FOR_ANYONE,
    FOR_LINKED,
    FOR_UNLINKED,
    NO_LINKING,
    is_public_page_read,
    public_page_note,
    read_link,
    reader_for,
)
from bot.sources.links import SpotifyRef
from bot.sources.public_page import PublicPageReader, PublicPageUnreadable
from bot.sources.spotify import NOT_OWNER_MESSAGE, SpotifyGateway
from bot.sources.status import SourceStatus
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings
from tests.test_spotify_source import RecordingSleep

EDITORIAL = "37i9dQZF1DXcZDD7cfEKhW"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def no_progress(p: Progress) -> None:
    return None


@pytest.fixture
async def env(fake_spotify: FakeSpotify):
    settings = spotify_settings(fake_spotify)
    app = SpotifyGateway(settings, sleep=RecordingSleep())
    pages = PublicPageReader.from_settings(settings, sleep=RecordingSleep())
    clock = Clock()
    status = SourceStatus(clock=clock)
    yield fake_spotify, app, pages, status, clock
    app.close()
    await pages.close()


def bobs_long_playlist(fake: FakeSpotify, n: int = 150) -> str:
    fake.add_user("bob", "Bob")
    return fake.add_playlist(fake.track_ids()[:n], name="Bob's long one", owner_id="bob").id


async def test_unlinked_member_gets_the_public_page_with_the_real_count(env) -> None:
    fake, app, pages, status, _ = env
    pid = bobs_long_playlist(fake)
    fake.clear_log()
    fetched = await read_link(
        SpotifyRef("playlist", pid), app=app, user=None, pages=pages,
        progress=no_progress, limit=10_000, status=status,
    )  # fmt: skip
    assert len(fetched.tracks) == 100
    assert is_public_page_read(fetched.meta)
    assert fetched.meta.total == 150  # from the API's metadata
    assert public_page_note(fetched.meta, 100) == (
        "first 100 of 150 tracks, from Spotify's public page; only its owner can link for all "
        "of them; anyone can attach an Exportify CSV"
    )
    assert public_page_note(fetched.meta, 100, reader=NO_LINKING).endswith(
        "; attach an Exportify CSV for all of them"
    )
    # metadata, the refused entries (403), the page
    assert fake.count(f"/v1/playlists/{pid}") == 2 and fake.count("/embed/") == 1
    assert status.last("app").not_owner and status.last("page").ok

    # The next link: the app's refusal is remembered, so only the metadata and the page.
    other = fake.add_playlist(fake.track_ids()[:20], owner_id="bob")
    fake.clear_log()
    fetched = await read_link(
        SpotifyRef("playlist", other.id), app=app, user=None, pages=pages,
        progress=no_progress, limit=10_000, status=status,
    )  # fmt: skip
    assert len(fetched.tracks) == 20 and public_page_note(fetched.meta, 20) is None
    assert [p for _, p, _ in fake.requests if "token" not in p] == [
        f"/v1/playlists/{other.id}",
        f"/embed/playlist/{other.id}",
    ]


async def test_a_page_short_of_its_cap_is_the_whole_playlist(env) -> None:
    """The API counts entries the page never shows (removed tracks: ``track: null``): a
    playlist of 30 tracks and 2 removed ones read "first 30 of 32 tracks … for all of them"."""
    fake, app, pages, status, _ = env
    fake.add_user("bob", "Bob")
    ids = fake.track_ids()[:30]
    pid = fake.add_playlist([*ids[:10], None, *ids[10:], None], owner_id="bob").id
    fetched = await read_link(
        SpotifyRef("playlist", pid), app=app, user=None, pages=pages,
        progress=no_progress, limit=10_000, status=status,
    )  # fmt: skip
    assert is_public_page_read(fetched.meta) and len(fetched.tracks) == 30
    assert fetched.meta.total == 30
    assert public_page_note(fetched.meta, 30) is None


async def test_the_app_refusal_memory_ages(env) -> None:
    fake, app, pages, status, clock = env
    pid = bobs_long_playlist(fake, 10)
    ref = SpotifyRef("playlist", pid)
    kw = dict(app=app, user=None, pages=pages, progress=no_progress, limit=100, status=status)
    await read_link(ref, **kw)
    clock.now += timedelta(minutes=59)
    fake.clear_log()
    await read_link(ref, **kw)
    assert fake.count(f"/v1/playlists/{pid}/items") == 0
    clock.now += timedelta(minutes=2)
    fake.clear_log()
    await read_link(ref, **kw)
    assert fake.count(f"/v1/playlists/{pid}/items") == 1


async def test_editorial_playlists_cost_no_api_request(env) -> None:
    fake, app, pages, status, _ = env
    fake.clear_log()
    fetched = await read_link(
        SpotifyRef("playlist", EDITORIAL), app=app, user=None, pages=pages,
        progress=no_progress, limit=10_000, status=status,
    )  # fmt: skip
    assert fetched.meta.name == "Pop Remix" and fetched.tracks
    assert fake.count("/v1/") == 0 and fake.count("/embed/") == 1
    assert status.describe("app").startswith("refused: Spotify-made playlists")


async def test_owners_read_through_the_api(env) -> None:
    fake, app, pages, status, _ = env
    user = app.with_user_token(fake.alice_token)
    fake.clear_log()
    fetched = await read_link(
        SpotifyRef("playlist", fake.alice_playlist), app=app, user=user, pages=pages,
        progress=no_progress, limit=10_000, status=status,
    )  # fmt: skip
    assert len(fetched.tracks) == 60 and not is_public_page_read(fetched.meta)
    assert fake.count("/embed/") == 0
    assert status.describe("linked").startswith("works")


async def test_linked_member_asking_for_someone_elses_playlist(env) -> None:
    fake, app, pages, status, _ = env
    pid = bobs_long_playlist(fake, 30)
    user = app.with_user_token(fake.alice_token)
    kw = dict(app=app, user=user, pages=pages, progress=no_progress, limit=10_000, status=status)
    fetched = await read_link(SpotifyRef("playlist", pid), **kw)
    assert len(fetched.tracks) == 30 and is_public_page_read(fetched.meta)
    assert status.last("linked").not_owner

    fake.playlists[pid].public = False  # now the page can't help either
    fake.playlists[pid].snapshot_n += 1
    pages._cache.clear()
    with pytest.raises(NotOwner) as err:
        await read_link(SpotifyRef("playlist", pid), **kw)
    msg = err.value.user_message
    assert msg.startswith("Spotify only lets apps read playlists you own or collaborate on")
    assert "isn't available either" in msg and "exportify.net" in msg
    assert "/spotify link" not in msg  # they are linked already


async def test_when_the_page_fails_the_api_help_is_given(env, caplog) -> None:
    fake, app, pages, status, _ = env
    pid = bobs_long_playlist(fake, 30)
    fake.pages.broken[pid] = "no_tracklist"
    caplog.set_level(logging.INFO)
    with pytest.raises(NotOwner) as err:
        await read_link(
            SpotifyRef("playlist", pid), app=app, user=None, pages=pages,
            progress=no_progress, limit=10_000, status=status,
        )  # fmt: skip
    msg = err.value.user_message
    assert msg.startswith(NOT_OWNER_MESSAGE) and "couldn't be read either" in msg
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and warned[0].name == "bot.sources.public_page"  # 403s aren't errors
    assert status.describe("page").startswith("failed: the page changed")

    with pytest.raises(EditorialPlaylist):  # pages off: today's help, untouched
        await read_link(
            SpotifyRef("playlist", EDITORIAL), app=app, user=None, pages=None,
            progress=no_progress, limit=10_000,
        )  # fmt: skip


async def test_no_credentials_or_no_quota_still_reads_public_pages(env) -> None:
    fake, app, pages, status, _ = env
    pid = bobs_long_playlist(fake, 12)
    fetched = await read_link(
        SpotifyRef("playlist", pid), app=None, user=None, pages=pages,
        progress=no_progress, limit=10_000,
    )  # fmt: skip
    assert len(fetched.tracks) == 12 and fetched.meta.total == 12

    other = fake.add_playlist(fake.track_ids()[:7], owner_id="bob")
    fake.rate_limit_next(f"playlists/{other.id}", 7200, quota=True)
    fetched = await read_link(
        SpotifyRef("playlist", other.id), app=app, user=None, pages=pages,
        progress=no_progress, limit=10_000, status=status,
    )  # fmt: skip
    assert len(fetched.tracks) == 7
    assert status.describe("app").startswith("rate-limited (quota_exceeded)")


async def test_a_used_up_quota_is_remembered_until_its_retry_after(env, caplog) -> None:
    """After a 429 QUOTA_EXCEEDED with hours of Retry-After, every link still made one refused
    API call before its public page, for the whole window. Now none until it has passed."""
    fake, app, pages, status, clock = env
    fake.add_user("bob", "Bob")
    pids = [fake.add_playlist(fake.track_ids()[i : i + 5], owner_id="bob").id for i in range(4)]
    fake.rate_limit_next(f"playlists/{pids[0]}", 7200, quota=True)
    kw = dict(app=app, user=None, pages=pages, progress=no_progress, limit=100, status=status)
    caplog.set_level(logging.INFO)
    assert len((await read_link(SpotifyRef("playlist", pids[0]), **kw)).tracks) == 5
    assert fake.count("/v1/") == 1
    for pid, later in ((pids[1], 1), (pids[2], 118)):
        clock.now += timedelta(minutes=later)
        fake.clear_log()
        assert len((await read_link(SpotifyRef("playlist", pid), **kw)).tracks) == 5
        assert fake.count("/v1/") == 0 and fake.count("/embed/") == 1
    clock.now += timedelta(minutes=2)
    fake.clear_log()
    await read_link(SpotifyRef("playlist", pids[3]), **kw)
    assert fake.count(f"/v1/playlists/{pids[3]}") >= 1  # the window has passed: asked again
    said = [r for r in caplog.records if "quota used up" in r.getMessage()]
    assert len(said) == 1 and "2 hours" in said[0].getMessage()


async def test_during_a_used_up_quota_without_pages_the_quota_is_said(env) -> None:
    fake, app, _, status, clock = env
    fake.add_user("bob", "Bob")
    first, second = (fake.add_playlist(fake.track_ids()[:5], owner_id="bob").id for _ in "ab")
    fake.rate_limit_next(f"playlists/{first}", 3600, quota=True)
    kw = dict(app=app, user=None, pages=None, progress=no_progress, limit=100, status=status)
    with pytest.raises(QuotaExceeded):
        await read_link(SpotifyRef("playlist", first), **kw)
    clock.now += timedelta(minutes=30)
    fake.clear_log()
    with pytest.raises(QuotaExceeded) as exc:
        await read_link(SpotifyRef("playlist", second), **kw)
    assert fake.count("/v1/") == 0 and exc.value.retry_after == 1800


async def test_too_large_is_answered_without_the_page(env) -> None:
    fake, app, pages, _, _ = env
    pid = bobs_long_playlist(fake, 150)
    with pytest.raises(TooLarge):
        await read_link(
            SpotifyRef("playlist", pid), app=app, user=None, pages=pages,
            progress=no_progress, limit=100,
        )  # fmt: skip
    assert fake.count("/embed/") == 0


async def test_unreadable_page_without_api(env) -> None:
    fake, _, pages, _, _ = env
    pid = bobs_long_playlist(fake, 12)
    fake.pages.broken[pid] = "bad_json"
    with pytest.raises(PublicPageUnreadable) as err:
        await read_link(
            SpotifyRef("playlist", pid), app=None, user=None, pages=pages,
            progress=no_progress, limit=10_000,
        )  # fmt: skip
    assert "/spotify link" in err.value.user_message


PREMIUM_LAPSED = {
    "error": {
        "status": 403,
        "message": "Active premium subscription required for the owner of the app.",
    }
}


async def test_premium_lapse_is_one_error_for_the_operator_and_pages_still_work(
    env, caplog, monkeypatch
) -> None:
    from bot.errors import AppSuspended
    from bot.sources.spotify import errors as spotify_errors

    monkeypatch.setattr(spotify_errors, "_premium_reported", False)
    fake, app, pages, status, _ = env
    fake.fail_next("/v1/", 403, body=PREMIUM_LAPSED, times=100)
    caplog.set_level(logging.INFO)
    for n in (5, 6):
        pid = fake.add_playlist(fake.track_ids()[:n], owner_id="tidytuesday").id
        fetched = await read_link(
            SpotifyRef("playlist", pid), app=app, user=None, pages=pages,
            progress=no_progress, limit=10_000, status=status,
        )  # fmt: skip
        assert len(fetched.tracks) == n
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "Premium" in errors[0].getMessage()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert status.describe("app").startswith("suspended: the app owner's Spotify Premium")

    user = app.with_user_token(fake.alice_token)
    with pytest.raises(AppSuspended) as err:
        await user.fetch_liked()
    assert "suspended" in err.value.user_message and "not your" not in err.value.user_message


async def test_the_start_up_probe_logs_no_error(env, caplog) -> None:
    _, app, _, _, _ = env
    caplog.set_level(logging.DEBUG)
    assert await app.detect_mode() == "development"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_overview_says_plainly_when_the_page_showed_part_of_the_playlist() -> None:
    from bot.models import Analysis, PlaylistMeta, Track
    from cogs.utils.embeds import overview_embed

    def analysis(snapshot: str, total: int | None, n: int, skipped: int = 0) -> Analysis:
        meta = PlaylistMeta(id="p" * 22, name="Big", snapshot_id=snapshot, total=total)
        tracks = [Track(id=f"{i:022d}", name=f"T{i}") for i in range(n)]
        return Analysis(
            source=meta, tracks=tracks, clusters=[], assignments={}, coords={}, k=2,
            k_requested=None, feature_mode="audio", feature_names=[], coverage={},
            skipped={"episode": skipped} if skipped else {},
        )  # fmt: skip

    desc = overview_embed(analysis("page:abc", 1240, 98, skipped=2)).description
    assert (
        "*First 100 of 1,240 tracks, from Spotify's public page; only its owner can link for "
        "all of them; anyone can attach an Exportify CSV.*"
    ) in desc
    assert "public page" not in overview_embed(analysis("page:abc", 60, 60)).description
    assert "public page" not in overview_embed(analysis("c25hcA==", 1240, 100)).description
    assert "it shows no more" in overview_embed(analysis("page:abc", None, 100)).description


@pytest.mark.parametrize(
    ("reader", "says", "never"),
    [
        # Linked but not theirs: linking again can't help (Development Mode).
        (FOR_LINKED, "apps read all only of what you own or collaborate on; use an Exportify "
         "CSV", "/spotify link"),
        (FOR_UNLINKED, "if it's yours, `/spotify link` reads all of it; else attach an "
         "Exportify CSV", "you own"),
        (FOR_ANYONE, "only its owner can link for all of them; anyone can attach an "
         "Exportify CSV", "your"),
        (NO_LINKING, "; attach an Exportify CSV for all of them", "link"),
    ],
)  # fmt: skip
def test_the_partial_read_note_says_what_works_for_its_reader(
    reader: str, says: str, never: str
) -> None:
    meta = PlaylistMeta(id="p" * 22, name="Big", snapshot_id="page:abc", total=1240)
    note = public_page_note(meta, 100, reader=reader)
    assert note is not None and note.startswith("first 100 of 1,240 tracks") and says in note
    assert never not in note.split(";", 1)[1]
    editorial = PlaylistMeta(id="37i9dQZF1DXcZDD7cfEKhW", name="Hits", snapshot_id="page:x")
    note = public_page_note(editorial, 100, reader=reader)
    assert note is not None and ("Spotify-made" in note) == (reader != NO_LINKING)


@pytest.mark.parametrize("reader", [FOR_ANYONE, FOR_UNLINKED, FOR_LINKED, NO_LINKING])
def test_a_partly_read_album_is_not_sent_to_linking_or_exportify(reader: str) -> None:
    """Any app reads a whole album and Exportify exports only playlists: a 150-track album read
    from its page (the API didn't answer, or the CLI has no credentials) said "if it's yours,
    `/spotify link` reads all of it; else attach an Exportify CSV"."""
    meta = PlaylistMeta(id="a" * 22, name="Box set", kind="album", snapshot_id="page:x", total=150)
    note = public_page_note(meta, 100, reader=reader)
    assert note is not None and note.startswith("first 100 of 150 tracks")
    assert "Exportify" not in note and "/spotify link" not in note
    assert ("SPOTIFY_CLIENT_ID" in note) == (reader == NO_LINKING)


def test_the_reader_of_a_note_is_the_member_who_asked_as_they_are() -> None:
    assert reader_for(linking=True, linked=True) == FOR_LINKED
    assert reader_for(linking=True, linked=False) == FOR_UNLINKED
    assert reader_for(linking=False, linked=False) == NO_LINKING  # no Spotify app: CSV only


async def test_offline_the_reason_is_said_once(fake_spotify: FakeSpotify) -> None:
    """With no network the API and the page fail alike, and the reply said so twice on two
    lines: "Spotify isn't responding … minutes.\\nIts public page couldn't be read right now
    either (Spotify isn't responding … minutes.)." (the CLI's one error line became two)."""
    closed = "http://127.0.0.1:9"
    settings = spotify_settings(
        fake_spotify,
        spotify_api_base=f"{closed}/v1/",
        spotify_accounts_base=closed,
        spotify_web_base=closed,
    )
    app = SpotifyGateway(settings, sleep=RecordingSleep())
    pages = PublicPageReader.from_settings(settings, sleep=RecordingSleep())
    try:
        with pytest.raises(PipelineError) as err:
            await read_link(
                SpotifyRef("playlist", "3cEYpjA9oz9GiPac4AsH4n"), app=app, user=None,
                pages=pages, progress=no_progress, limit=10_000,
            )  # fmt: skip
    finally:
        app.close()
        await pages.close()
    msg = err.value.user_message
    assert "\n" not in msg and "either" not in msg
    assert msg.count("isn't responding") == 1, msg
