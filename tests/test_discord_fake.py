"""The fake Discord itself: it must reject what real Discord rejects (else tests prove nothing)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.fakes.discord_fake import FakeDiscord


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def embed(chars: int = 10, **extra) -> dict:
    return {"title": "t", "description": "d" * chars, **extra}


async def _post(http, url: str, payload: dict) -> tuple[int, dict]:
    async with http.post(url, json=payload) as resp:
        return resp.status, await resp.json(content_type=None)


async def _interaction(fake: FakeDiscord):
    fi, _ = fake._interaction_base(2, {"name": "x"}, None, None)
    return fi


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"content": "x" * 2001}, "content"),
        ({"embeds": [embed() for _ in range(11)]}, "embeds"),
        ({"embeds": [embed(3000), embed(3000)]}, "embeds"),  # 6,002 chars in one message
        ({"embeds": [{"title": "x" * 257}]}, "title"),
        ({"embeds": [{"description": "x" * 4097}]}, "description"),
        ({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}, "fields"),
        ({"embeds": [{"fields": [{"name": "n" * 257, "value": "v"}]}]}, "name"),
        ({"embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}]}, "value"),
        ({"embeds": [{"fields": [{"name": "n", "value": ""}]}]}, "value"),
        ({"embeds": [{"footer": {"text": "f" * 2049}}]}, "footer"),
        ({"embeds": [{"author": {"name": "a" * 257}}]}, "author"),
        ({"embeds": [{"image": {"url": "attachment://missing.png"}}]}, "image"),
        (
            {"components": [{"type": 1, "components": [{"type": 2, "custom_id": "c" * 101}]}]},
            "custom_id",
        ),
    ],
)
async def test_channel_messages_enforce_discord_limits(
    payload: dict, path: str, fake_discord: FakeDiscord, http
) -> None:
    url = f"{fake_discord.api_base}/channels/{fake_discord.channel_id}/messages"
    status, body = await _post(http, url, payload)
    assert status == 400
    assert body["code"] == 50035 and body["message"] == "Invalid Form Body"
    assert path in json.dumps(body["errors"])
    assert fake_discord.sent() == []


async def test_valid_message_is_recorded(fake_discord: FakeDiscord, http) -> None:
    url = f"{fake_discord.api_base}/channels/{fake_discord.channel_id}/messages"
    status, body = await _post(http, url, {"content": "hi", "embeds": [embed(2998)] * 2})
    assert status == 200 and body["content"] == "hi"
    [m] = fake_discord.sent()
    assert m.via == "channel" and len(m.embeds) == 2  # 5,998 chars: allowed


async def test_files_over_10_mib_and_missing_permissions(fake_discord: FakeDiscord, http) -> None:
    url = f"{fake_discord.api_base}/channels/{fake_discord.channel_id}/messages"
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps({"content": "big"}))
    form.add_field("files[0]", b"x" * (10 * 1024 * 1024 + 1), filename="big.png")
    async with http.post(url, data=form) as resp:
        assert resp.status == 413
        assert (await resp.json())["code"] == 40005
    fake_discord.deny_bot(fake_discord.channel_id, "embed_links")
    status, body = await _post(http, url, {"embeds": [embed()]})
    assert status == 403 and body["code"] == 50013
    status, _ = await _post(http, url, {"content": "plain text still works"})
    assert status == 200


async def test_interaction_acknowledged_twice_or_too_late(fake_discord: FakeDiscord, http) -> None:
    fi = await _interaction(fake_discord)
    url = f"{fake_discord.api_base}/interactions/{fi.id}/{fi.token}/callback"
    status, _ = await _post(http, url, {"type": 5})
    assert status == 200 and fi.responded
    status, body = await _post(http, url, {"type": 5})
    assert status == 400 and body["code"] == 40060
    late = await _interaction(fake_discord)
    fake_discord.clock.advance(3.5)
    url = f"{fake_discord.api_base}/interactions/{late.id}/{late.token}/callback"
    status, body = await _post(http, url, {"type": 5})
    assert status == 404 and body["code"] == 10062


async def test_webhook_token_expires_after_15_minutes(fake_discord: FakeDiscord, http) -> None:
    fi = await _interaction(fake_discord)
    base = fake_discord.api_base
    await _post(http, f"{base}/interactions/{fi.id}/{fi.token}/callback", {"type": 5})
    status, _ = await _post(
        http, f"{base}/webhooks/{fake_discord.app_id}/{fi.token}", {"content": "ok"}
    )
    assert status == 200
    fake_discord.clock.advance(15 * 60 + 1)
    status, body = await _post(
        http, f"{base}/webhooks/{fake_discord.app_id}/{fi.token}", {"content": "late"}
    )
    assert status == 401 and body["code"] == 50027


async def test_followup_limits_apply_too(fake_discord: FakeDiscord, http) -> None:
    fi = await _interaction(fake_discord)
    base = fake_discord.api_base
    await _post(http, f"{base}/interactions/{fi.id}/{fi.token}/callback", {"type": 5})
    url = f"{base}/webhooks/{fake_discord.app_id}/{fi.token}/messages/@original"
    async with http.patch(url, json={"embeds": [embed(3100), embed(3100)]}) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == 50035


async def test_a_member_who_left_is_unknown_member(fake_discord: FakeDiscord, http) -> None:
    """GET /guilds/{id}/members/{user}: the member, then 404 Unknown Member (10007) once they
    left; an unknown guild is 10004 and an unknown user 10013, as Discord answers."""
    base, guild = fake_discord.api_base, fake_discord.guild_id
    bob = fake_discord.add_user("bob")

    async def get(path: str) -> tuple[int, dict]:
        async with http.get(f"{base}{path}") as resp:
            return resp.status, await resp.json(content_type=None)

    status, member = await get(f"/guilds/{guild}/members/{bob}")
    assert status == 200 and member["user"]["id"] == str(bob)
    status, body = await get(f"/guilds/{guild}")
    assert status == 200 and body["id"] == str(guild) and "members" not in body
    fake_discord.remove_member(bob)
    assert (await get(f"/guilds/{guild}/members/{bob}"))[1]["code"] == 10007
    assert (await get(f"/guilds/{guild + 1}/members/{bob}"))[1]["code"] == 10004
    assert (await get(f"/guilds/{guild}/members/{bob + 10**6}"))[1]["code"] == 10013
