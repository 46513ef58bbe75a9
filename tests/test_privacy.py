"""Nothing leaks (issue #13), tested as members use the bot: two members, two servers, a DM.

Real discord.py against the fake Discord (tests/fakes/discord_fake.py), the fake Spotify where
a playlist is read, exports downloaded through the buttons and opened as text.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from typing import Any

import pytest

from tests.fakes.discord_fake import FakeDiscord, Sent
from tests.fakes.discord_fixtures import demo_outcome, store_demo_analysis
from tests.fakes.spotify_api import FakeSpotify
from tests.fakes.spotify_fixtures import spotify_settings
from tests.test_discord_cluster import SAMPLE, wait_results

EVIL_NAME = '=HYPERLINK("http://evil.example/x","click")'
EVIL_IMAGE = 'https://i.scdn.co/image/ab67" onerror="alert(1)'
OTHER_GUILD = 1_300_000_000_000_999_999
SLOW = 120.0


# ----------------------------------------------------------------------------- helpers
def exportify_csv(rows: int = 60, *, first_name: str | None = None, image: str = "") -> bytes:
    """An Exportify-style CSV of real sample tracks (first track renamed / given an image)."""
    src = list(csv.DictReader(SAMPLE.open(encoding="utf-8")))[:rows]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    feats = ["Danceability", "Energy", "Key", "Loudness", "Mode", "Speechiness",
             "Acousticness", "Instrumentalness", "Liveness", "Valence", "Tempo"]  # fmt: skip
    w.writerow(["Track URI", "Track Name", "Album Name", "Artist Name(s)", "Release Date",
                "Duration (ms)", "Popularity", "Album Image URL", *feats])  # fmt: skip
    for i, r in enumerate(src):
        name = first_name if (i == 0 and first_name is not None) else r["track_name"]
        w.writerow(
            [
                f"spotify:track:{r['track_id']}",
                name,
                r["track_album_name"],
                r["track_artist"],
                r["track_album_release_date"],
                r["duration_ms"],
                r["track_popularity"],
                image if i == 0 else "",
                *(r[f.lower()] for f in feats),
            ]
        )
    return buf.getvalue().encode()


async def results(fake: FakeDiscord, it: Any, k: int) -> list[Sent]:
    return await wait_results(fake, it, k)


async def first_reply(fake: FakeDiscord, it: Any) -> Sent:
    [msg, *_] = await fake.wait_response(it, within=SLOW)
    return msg


def all_text(msgs: list[Sent]) -> str:
    return "\n".join(m.text for m in msgs)


class AsDM:
    """``async with AsDM(fake, user_id):`` interactions dispatched inside come from a DM."""

    def __init__(self, fake: FakeDiscord, user_id: int) -> None:
        self.fake, self.user_id = fake, user_id
        self.channel_id = fake.snow()

    async def __aenter__(self) -> AsDM:
        fake, original = self.fake, self.fake.dispatch

        async def dispatch(name: str, data: dict) -> None:
            if name == "INTERACTION_CREATE":
                user = fake.users[self.user_id]
                for key in ("guild_id", "guild", "member"):
                    data.pop(key, None)
                data["user"] = user
                data["channel_id"] = str(self.channel_id)
                data["channel"] = {"id": str(self.channel_id), "type": 1, "recipients": [user],
                                   "last_message_id": None, "flags": 0}  # fmt: skip
                data["context"] = 1
                data["authorizing_integration_owners"] = {"1": str(self.user_id)}
                fake.interactions[int(data["id"])].channel_id = self.channel_id
            await original(name, data)

        self._original = original
        fake.dispatch = dispatch  # type: ignore[method-assign]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.fake.dispatch = self._original  # type: ignore[method-assign]


_MENTION = re.compile(r"<@!?(\d+)>")


def pinged(message: Sent) -> set[int]:
    """Users a message notifies, by Discord's rules for ``content`` + ``allowed_mentions``."""
    ids = {int(m) for m in _MENTION.findall(message.content or "")}
    am = message.payload.get("allowed_mentions")
    if am is None:
        return ids
    if "users" in (am.get("parse") or []):
        return ids
    return ids & {int(u) for u in am.get("users") or []}


def pings_everyone_or_roles(message: Sent) -> bool:
    content = message.content or ""
    am = message.payload.get("allowed_mentions")
    parse = (am or {}).get("parse", ["everyone", "roles"]) if am is not None else None
    every = ("@everyone" in content or "@here" in content) and (
        parse is None or "everyone" in parse
    )
    roles = "<@&" in content and (parse is None or "roles" in parse or am.get("roles"))
    return bool(every or roles)


async def download(fake: FakeDiscord, message: Sent, aid: int, kind: str, user_id: int) -> str:
    click = await fake.click(message, f"pc:dl:{aid}:{kind}", user_id=user_id)
    [doc] = await fake.wait_response(click)
    assert doc.ephemeral and doc.files, doc.text
    return doc.files[0].data.decode("utf-8")


# ----------------------------------------------------------------------------- 1. uploads
async def test_a_csv_upload_is_never_reused_for_someone_else(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    alice = int(fake_discord.owner_user["id"])
    bob = fake_discord.add_user("bob")
    data = exportify_csv(60)
    secret = fake_discord.add_attachment("Alice's breakup songs (secret).csv", data)
    again = fake_discord.add_attachment("Alice's breakup songs (secret).csv", data)
    party = fake_discord.add_attachment("bobs_party_mix.csv", data)
    services = await make_services()
    async with start_bot(services):
        it1 = await fake_discord.slash("cluster", {"k": 3}, attachments={"csv": secret})
        await results(fake_discord, it1, 3)
        it2 = await fake_discord.slash(
            "cluster",
            {"k": 3},
            attachments={"csv": party},
            user_id=bob,
            channel_id=fake_discord.other_channel_id,
        )
        bobs = await results(fake_discord, it2, 3)
        it3 = await fake_discord.slash("cluster", {"k": 3}, attachments={"csv": again})
        alices_again = await results(fake_discord, it3, 3)
        [bob_aid] = [r.id for r in await services.store.analyses.recent(user_id=bob)]
        report = await download(fake_discord, bobs[0], bob_aid, "md", bob)
        tracks = await download(fake_discord, bobs[0], bob_aid, "csv", bob)
        alice_aids = {r.id for r in await services.store.analyses.recent(user_id=alice)}
    text = all_text(bobs) + report + tracks
    assert "breakup" not in text and "Alice" not in text and "secret" not in text
    assert "bobs party mix" in all_text(bobs) and "bobs party mix" in report
    assert "Unchanged" not in all_text(bobs)
    assert bob_aid not in alice_aids
    # The uploader's own identical file is reused (nothing of anyone else's in it).
    assert "Unchanged" in all_text(alices_again) and "breakup" in all_text(alices_again)


def test_identical_uploads_of_two_members_never_share_a_running_job() -> None:
    from bot.jobs.queue import dedupe_key
    from bot.models import AnalysisRequest

    text = exportify_csv(20).decode()
    a = AnalysisRequest(csv_text=text, csv_name="a.csv", user_id=1)
    b = AnalysisRequest(csv_text=text, csv_name="b.csv", user_id=2)
    assert dedupe_key(a) != dedupe_key(b)
    assert dedupe_key(a) == dedupe_key(AnalysisRequest(csv_text=text, csv_name="c", user_id=1))


# ----------------------------------------------------------------------------- 2. readers
def _linked(services: Any, tokens: dict[int, str]) -> None:
    async def user_tokens(uid: int) -> str | None:
        return tokens.get(uid)

    services.ctx.user_tokens = user_tokens


async def test_a_stored_private_playlist_is_not_served_to_a_member_who_cannot_read_it(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot
) -> None:
    alice = int(fake_discord.owner_user["id"])
    bob = fake_discord.add_user("bob")
    services = await make_services(spotify_settings(fake_spotify))
    _linked(services, {alice: fake_spotify.alice_token})
    fake_spotify.playlists[fake_spotify.alice_playlist].public = False  # no public page either
    link = f"https://open.spotify.com/playlist/{fake_spotify.alice_playlist}"
    async with start_bot(services):
        it1 = await fake_discord.slash("cluster", {"playlist": link, "k": 3})
        await results(fake_discord, it1, 3)
        it2 = await fake_discord.slash("cluster", {"playlist": link, "k": 3}, user_id=bob)
        bobs = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it2) if m.content.startswith("⚠️")], SLOW
        )
        it3 = await fake_discord.slash("cluster", {"playlist": link, "k": 3})
        alices_again = await results(fake_discord, it3, 3)
    assert not any(m.embeds for m in fake_discord.responses(it2))
    assert "Alice's mix" not in all_text(fake_discord.responses(it2))
    assert "own or collaborate" in bobs[0].content and bobs[0].ephemeral
    assert "Unchanged" in all_text(alices_again)  # the same reader still reuses it


async def test_a_public_read_is_reused_for_everyone(
    fake_discord: FakeDiscord, fake_spotify_extended: FakeSpotify, make_services, start_bot
) -> None:
    fake = fake_spotify_extended
    bob = fake_discord.add_user("bob")
    services = await make_services(spotify_settings(fake))
    pid = next(p for p in fake.playlists if not p.startswith("37i9") and p != fake.alice_playlist)
    link = f"https://open.spotify.com/playlist/{pid}"
    async with start_bot(services):
        it1 = await fake_discord.slash("cluster", {"playlist": link, "k": 2})
        await results(fake_discord, it1, 2)
        before = len(fake.requests)
        it2 = await fake_discord.slash("cluster", {"playlist": link, "k": 2}, user_id=bob)
        bobs = await results(fake_discord, it2, 2)
    assert "Unchanged" in all_text(bobs)
    api = [r for r in fake.requests[before:] if "/v1/" in r[1] and "token" not in r[1]]
    assert len(api) == 1  # one metadata request


# ----------------------------------------------------------------------------- 3. where shown
async def test_a_dm_analysis_is_shown_only_to_its_requester(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    alice = int(fake_discord.owner_user["id"])
    bob = fake_discord.add_user("bob")
    services = await make_services()
    att = fake_discord.add_attachment("late night.csv", exportify_csv(60))
    async with start_bot(services):
        async with AsDM(fake_discord, alice) as dm:
            it = await fake_discord.slash("cluster", {"k": 3}, attachments={"csv": att})
        await results(fake_discord, it, 3)
        [row] = await services.store.analyses.recent(user_id=alice)
        aid = row.id
        assert (await services.store.analyses.owner(aid)).guild_id is None  # type: ignore[union-attr]
        it_bob = await fake_discord.slash("clusters show", {"id": aid}, user_id=bob)
        refused = await first_reply(fake_discord, it_bob)
        it_alice = await fake_discord.slash("clusters show", {"id": aid})
        mine = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it_alice) if m.embeds]
        )
    assert refused.ephemeral and not refused.embeds
    assert "late night" not in refused.text
    # Outside the server it was made in (here: a DM), only its requester sees it.
    assert all(m.ephemeral for m in mine) and "late night" in all_text(mine)
    for m in fake_discord.messages.values():  # nothing of it anywhere else
        assert "late night" not in m.text or m.ephemeral or m.channel_id == dm.channel_id


@pytest.mark.parametrize("where", ["dm", "other server"])
async def test_show_never_posts_an_analysis_from_elsewhere(
    fake_discord: FakeDiscord, make_services, start_bot, where: str
) -> None:
    from bot.models import AnalysisRequest

    bob = fake_discord.add_user("bob")
    services = await make_services()
    analysis, rendered = demo_outcome(3)
    analysis.source.name = "Alice's private mix"
    request = AnalysisRequest(
        demo=True,
        k=3,
        user_id=int(fake_discord.owner_user["id"]),
        guild_id=None if where == "dm" else OTHER_GUILD,
    )
    theirs = await services.store.analyses.save(analysis, rendered, request)
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": theirs}, user_id=bob)
        shown = await first_reply(fake_discord, it)
    assert shown.ephemeral and not shown.files and "Alice" not in shown.text
    # Its Browse/Report/Tracks components (pc:…:<id>:…) were posted nowhere.
    for m in fake_discord.messages.values():
        assert not [c for c in fake_discord.custom_ids(m) if f":{theirs}:" in c]


async def test_a_server_analysis_is_shown_to_any_member_of_that_server(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    carol = fake_discord.add_user("carol")
    services = await make_services()
    aid = await store_demo_analysis(services, fake_discord, 3)
    async with start_bot(services):
        it = await fake_discord.slash("clusters show", {"id": aid}, user_id=carol)
        msgs = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.responses(it) if m.embeds]
        )
        text = await download(fake_discord, msgs[0], aid, "csv", carol)
    assert not msgs[0].ephemeral
    assert text.startswith("cluster,")


# ----------------------------------------------------------------------------- 4/5. exports
async def test_exports_are_safe_to_open(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    att = fake_discord.add_attachment(
        "evil.csv", exportify_csv(60, first_name=EVIL_NAME, image=EVIL_IMAGE)
    )
    async with start_bot(services):
        it = await fake_discord.slash("cluster", {"k": 3}, attachments={"csv": att})
        msgs = await results(fake_discord, it, 3)
        [aid] = [r.id for r in await services.store.analyses.recent()]
        tracks = await download(fake_discord, msgs[0], aid, "csv", it.user_id)
        report = await download(fake_discord, msgs[0], aid, "md", it.user_id)
    rows = list(csv.DictReader(io.StringIO(tracks)))
    [evil] = [r for r in rows if "HYPERLINK" in r["track"]]
    assert evil["track"] == "'" + EVIL_NAME
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), value
    assert "onerror" not in report  # the image URL isn't a plain https URL: dropped
    for src in re.findall(r'<img src="([^"]*)"', report):
        assert src.startswith("https://")


async def test_an_upload_never_rewrites_the_tracks_other_members_read(tmp_path) -> None:
    from bot.models import FetchResult, PlaylistMeta, Track
    from storage.db import Database
    from storage.store import Store

    x, y = "4uLU6hMCjMI75M1A2tKUQC", "7ouMYWpwJ422jRcDASZB7P"
    db = await Database(tmp_path / "t.sqlite3").open()
    try:
        store = Store(db)
        real = Track(
            id=x, name="Real name", artists=["Real"], artist_ids=["0du5cEVh5yTK9QJze8zA0C"]
        )
        spotify = PlaylistMeta(id="pl1", name="Alice's", snapshot_id="s1")
        await store.snapshots.save(FetchResult(spotify, [real]))
        evil = {"name": EVIL_NAME, "label": "evil", "popularity": 1, "image_url": EVIL_IMAGE,
                "artists": ["<@1>"], "artist_ids": ["0du5cEVh5yTK9QJze8zA0C"]}  # fmt: skip
        upload = PlaylistMeta(id="csv:u2:abc", name="bob's", kind="csv")
        key = await store.snapshots.save(
            FetchResult(upload, [Track(id=x, **evil), Track(id=y, **evil)])
        )
        # A later Spotify read of y (no label, no popularity: a Development-Mode app).
        later = PlaylistMeta(id="pl2", name="Alice's too", snapshot_id="s9")
        await store.snapshots.save(FetchResult(later, [Track(id=y, name="Y for real")]))
        [a] = (await store.snapshots.load("pl1", "s1")).tracks  # type: ignore[union-attr]
        [b] = (await store.snapshots.load("pl2", "s9")).tracks  # type: ignore[union-attr]
        own = (await store.snapshots.load("csv:u2:abc", key)).tracks  # type: ignore[union-attr]
    finally:
        await db.close()
    assert (a.name, a.artists, a.label, a.image_url) == ("Real name", ["Real"], None, None)
    assert (b.name, b.label, b.popularity, b.image_url) == ("Y for real", None, None, None)
    assert [t.name for t in own] == [EVIL_NAME, EVIL_NAME] and own[0].label == "evil"


# ----------------------------------------------------------------------------- 6. mentions
async def test_no_mentions_from_data_only_the_requester_on_a_late_post(
    fake_discord: FakeDiscord, fake_spotify_extended: FakeSpotify, make_services, start_bot
) -> None:
    fake = fake_spotify_extended
    carol = fake_discord.add_user("carol")
    services = await make_services(spotify_settings(fake))
    empty = fake.add_playlist(
        [{"local": "demo tape"}], name=f"<@{carol}> @everyone <@&{fake_discord.guild_id}>"
    )
    pid = next(p for p in fake.playlists if not p.startswith("37i9") and p != empty.id)
    async with start_bot(services, interaction_ttl_s=0.0):
        it = await fake_discord.slash(
            "cluster", {"playlist": f"https://open.spotify.com/playlist/{empty.id}"}
        )
        failed = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.sent(via="channel") if "no playable" in m.content],
            SLOW,
        )
        it2 = await fake_discord.slash(
            "cluster", {"playlist": f"https://open.spotify.com/playlist/{pid}", "k": 2}
        )
        ready = await wait_results(fake_discord, None, 2, via="channel")
    requester = it.user_id
    assert it2.user_id == requester
    assert pinged(failed[0]) == {requester}
    assert pinged(ready[0]) == {requester}
    for m in fake_discord.messages.values():
        assert pinged(m) <= {requester}, m.content
        assert not pings_everyone_or_roles(m), m.content
        if m not in (failed[0], ready[0]):
            assert not pinged(m), m.content
    assert f"<@{carol}>" not in failed[0].content  # the name can't even render as a mention


async def test_allowed_mentions_are_off_bot_wide(
    fake_discord: FakeDiscord, make_services, start_bot
) -> None:
    services = await make_services()
    async with start_bot(services) as bot:
        am = bot.allowed_mentions
    assert am is not None
    assert am.to_dict()["parse"] == [] and not am.replied_user


# ----------------------------------------------------------------------------- 7. errors
async def test_a_storage_error_shows_members_an_incident_id_not_the_path(
    fake_discord: FakeDiscord, make_services, start_bot, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    from storage.db import _storage_error

    services = await make_services()
    path = str(services.db.path)

    async def broken(*args: Any, **kwargs: Any) -> int:
        raise _storage_error(sqlite3.OperationalError("database is locked"), services.db.path)

    services.store.jobs.create = broken  # type: ignore[method-assign]
    att = fake_discord.add_attachment("p.csv", exportify_csv(30))
    with caplog.at_level(logging.INFO):
        async with start_bot(services):
            it = await fake_discord.slash("cluster", {"k": 2}, attachments={"csv": att})
            msg = await fake_discord.wait_for(
                lambda: next((m for m in fake_discord.responses(it) if m.content), None)
            )
    seen = all_text(fake_discord.responses(it))
    assert path not in seen and "database" not in seen.lower() and "sqlite" not in seen
    [incident] = re.findall(r"incident `?([0-9a-f]{8})", msg.content)
    assert incident in caplog.text and path in caplog.text


async def test_bot_wide_credential_failures_do_not_name_settings_in_servers(
    fake_discord: FakeDiscord,
    fake_spotify_extended: FakeSpotify,
    make_services,
    start_bot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fake_spotify_extended
    # Public pages off: with them on, the playlist would be read from its public page instead.
    settings = spotify_settings(fake, spotify_client_secret="wrong", spotify_public_pages=False)
    services = await make_services(settings)
    pid = next(p for p in fake.playlists if not p.startswith("37i9"))
    with caplog.at_level(logging.INFO):
        async with start_bot(services):
            it = await fake_discord.slash(
                "cluster", {"playlist": f"https://open.spotify.com/playlist/{pid}"}
            )
            msg = await fake_discord.wait_for(
                lambda: next(
                    (m for m in fake_discord.responses(it) if "incident" in m.content), None
                ),
                SLOW,
            )
    seen = all_text(fake_discord.responses(it))
    assert "SPOTIFY_" not in seen and "CLIENT" not in seen.upper().replace("CLIENTS", "")
    [incident] = re.findall(r"incident `?([0-9a-f]{8})", msg.content)
    assert incident in caplog.text and "SPOTIFY_CLIENT_ID" in caplog.text


# ----------------------------------------------------------------------------- 8. logs
async def test_debug_logs_hold_no_oauth_code_state_or_interaction_token(
    fake_discord: FakeDiscord, fake_spotify: FakeSpotify, make_services, start_bot, caplog
) -> None:
    services = await make_services(spotify_settings(fake_spotify))
    code, state = "AQBsecretCODE123456", "secretSTATE987654"
    pasted = f"http://127.0.0.1:8080/spotify/callback?code={code}&state={state}"
    root = logging.getLogger()
    saved = root.level
    try:
        root.setLevel(logging.DEBUG)
        for name in ("discord.gateway", "discord.webhook", "aiosqlite", "spotipy"):
            logging.getLogger(name).setLevel(logging.NOTSET)  # as at a fresh start
        with caplog.at_level(logging.DEBUG):
            async with start_bot(services):
                url = await services.accounts.start_link(int(fake_discord.owner_user["id"]))
                real_state = re.search(r"state=([^&]+)", url).group(1)  # type: ignore[union-attr]
                it = await fake_discord.slash("cluster", {"playlist": pasted})
                await fake_discord.wait_response(it)
    finally:
        root.setLevel(saved)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # DEBUG logging was on
    assert code not in logged and state not in logged and real_state not in logged
    assert it.token not in logged


def _world_readable_key(tmp_path: Any) -> tuple[Any, Any]:
    """Settings whose generated token key file exists with mode 0644 (readable by everyone)."""
    import os

    from cryptography.fernet import Fernet

    from bot.config import Settings
    from storage.accounts import key_file_path

    settings = Settings(_env_file=None, database_path=tmp_path / "bot.sqlite3")  # type: ignore[call-arg]
    key = key_file_path(settings)
    assert key is not None
    key.write_bytes(Fernet.generate_key() + b"\n")
    os.chmod(key, 0o644)
    return settings, key


def test_a_world_readable_key_file_is_tightened_when_the_bot_reads_it(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    import stat

    from storage.accounts import load_cipher

    settings, key = _world_readable_key(tmp_path)
    with caplog.at_level(logging.WARNING):
        load_cipher(settings)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "0644" in caplog.text


def test_a_key_file_that_cannot_be_tightened_stops_start_up_with_a_clear_line(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.startup import StartupError, check_encryption_key
    from storage import accounts

    settings, _ = _world_readable_key(tmp_path)

    def refuse(path: object, mode: int) -> None:  # a file owned by another user
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(accounts.os, "chmod", refuse)
    with pytest.raises(StartupError, match=r"chmod 600"):
        check_encryption_key(settings)


# ----------------------------------------------------------------------------- served files
def test_stored_exports_are_served_safe() -> None:
    from bot.safety import safe_export

    old_md = (
        b'| <img src="https://i.scdn.co/a.jpg" onerror="alert(1)" alt="" width="50" /> | x |\n'
        b'| <img src="https://i.scdn.co/ok.jpg" alt="" width="50" /> | <script>y</script> |\n'
    )
    md = safe_export("report.md", old_md).decode()
    assert "onerror" not in md and "<script" not in md
    assert '<img src="https://i.scdn.co/ok.jpg" alt="" width="50" />' in md
    assert safe_export("report.md", md.encode()).decode() == md  # idempotent
    csv_text = safe_export(
        "tracks.csv", f'cluster,track\n1,"{EVIL_NAME.replace(chr(34), chr(34) * 2)}"\n'.encode()
    )
    assert list(csv.reader(io.StringIO(csv_text.decode())))[1] == ["1", "'" + EVIL_NAME]


# ----------------------------------------------------------------------------- /privacy
async def test_privacy_show_and_delete(fake_discord: FakeDiscord, make_services, start_bot) -> None:
    from storage.accounts import TokenSet

    alice = int(fake_discord.owner_user["id"])
    bob = fake_discord.add_user("bob")
    services = await make_services()
    mine = await store_demo_analysis(services, fake_discord, 3)
    theirs = await store_demo_analysis(services, fake_discord, 3, user_id=bob)
    await services.accounts.store.save_account(
        alice,
        spotify_user_id="alice",
        display_name="Alice S",
        tokens=TokenSet("a", "r", 9e9),
        scopes=["playlist-read-private"],
    )
    att = fake_discord.add_attachment("secret songs.csv", exportify_csv(40))
    async with start_bot(services):
        it = await fake_discord.slash("cluster", {"k": 2}, attachments={"csv": att})
        await results(fake_discord, it, 2)
        show = await fake_discord.slash("privacy show")
        [shown] = await fake_discord.wait_response(show)
        ask = await fake_discord.slash("privacy delete")
        [question] = await fake_discord.wait_response(ask)
        [delete_id] = [c for c in fake_discord.custom_ids(question)
                       if fake_discord.find_component(question, c).get("style") == 4]  # fmt: skip
        asked = question.content
        click = await fake_discord.click(question, delete_id)
        done = await fake_discord.wait_for(lambda: "Deleted" in question.content and question)
        left = {r.id for r in await services.store.analyses.recent(limit=50)}
        uploads = await services.db.fetchall("SELECT id FROM playlists WHERE id LIKE 'csv:%'")
        jobs = await services.db.fetchall("SELECT id FROM jobs WHERE user_id = ?", (alice,))
        linked = await services.accounts.status(alice)
    assert shown.ephemeral and "Analyses you asked for:** 2" in shown.content
    assert "Alice S" in shown.content and "Uploaded CSV files among them:** 1" in shown.content
    assert question.ephemeral and "can't be undone" in asked
    assert click.response_type == 7 and "Deleted" in done.content
    assert mine not in left and theirs in left and len(left) == 1
    assert not uploads and not jobs and not linked


async def test_an_unanswered_delete_confirmation_says_it_expired(
    fake_discord: FakeDiscord, make_services, start_bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its buttons stop listening after two minutes: they are taken away and the message says
    nothing was deleted (a late click used to end in Discord's "This interaction failed")."""
    import sys

    services = await make_services()
    async with start_bot(services):
        # the module the bot loaded (load_extension executes a fresh copy of it)
        monkeypatch.setattr(sys.modules["cogs.privacy"], "CONFIRM_TIMEOUT_S", 0.2)
        ask = await fake_discord.slash("privacy delete")
        [question] = await fake_discord.wait_response(ask)
        assert fake_discord.custom_ids(question)
        await fake_discord.wait_for(lambda: "Nothing was deleted" in question.content, within=5)
    assert question.ephemeral and "/privacy delete" in question.content
    assert not fake_discord.custom_ids(question)
