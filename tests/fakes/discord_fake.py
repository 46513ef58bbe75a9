"""A fake Discord (gateway WebSocket + REST v10 + CDN) on 127.0.0.1 for end-to-end bot tests.

The real discord.py client connects to it unchanged: :func:`patch_discord` points
``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` at the fake. The fake

* speaks enough of the gateway: HELLO, IDENTIFY → READY + GUILD_CREATE (channels, roles,
  members, permission overwrites), heartbeat ACKs, RESUME (answered with INVALID_SESSION);
* serves the REST routes the bot uses (users/@me, applications/@me, command sync,
  interaction callbacks, webhook edits/followups, channel messages JSON + multipart,
  reactions, GET channel, GET guild, GET guild member: 404 Unknown Member (10007) once the
  member left, see :meth:`FakeDiscord.remove_member`) — shaped after
  /work/shared/specs/discord-openapi.json;
* ENFORCES Discord's limits and answers violations like Discord does (HTTP 400, JSON
  ``{"code": 50035, "message": "Invalid Form Body", "errors": {...}}``), plus 40060 for an
  interaction acknowledged twice, 10062 for a callback after 3 s of the fake clock, 50027 for
  a webhook token older than 15 minutes, 40005 for files > 10 MiB and 50013 for missing
  channel permissions;
* records everything the bot sent (``.requests``, ``.messages``, ``.interactions``) and lets
  tests wait for conditions deterministically (``await fake.wait_for(pred)``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import WSMsgType, web

# --- Discord limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_AUTHOR = 256
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_FILES = 10
MAX_CUSTOM_ID = 100
MAX_ACTION_ROWS = 5
MAX_BUTTON_LABEL = 80
MAX_SELECT_OPTIONS = 25
MAX_OPTION_LABEL = 100
MAX_OPTION_DESCRIPTION = 100
MAX_PLACEHOLDER = 150
INTERACTION_CALLBACK_WINDOW_S = 3.0
INTERACTION_TOKEN_TTL_S = 15 * 60

EPHEMERAL = 1 << 6

# Permission bits used by the bot.
P = {
    "view_channel": 1 << 10,
    "send_messages": 1 << 11,
    "manage_messages": 1 << 13,
    "embed_links": 1 << 14,
    "attach_files": 1 << 15,
    "read_message_history": 1 << 16,
    "add_reactions": 1 << 6,
    "administrator": 1 << 3,
    "manage_guild": 1 << 5,
    "use_external_emojis": 1 << 18,
    "send_messages_in_threads": 1 << 38,
}
DEFAULT_BOT_PERMS = (
    P["view_channel"]
    | P["send_messages"]
    | P["embed_links"]
    | P["attach_files"]
    | P["read_message_history"]
    | P["add_reactions"]
)
ALL_PERMS = (1 << 53) - 1


class Snowflakes:
    """Monotonic snowflake ids (large enough to look real)."""

    def __init__(self, start: int = 1_300_000_000_000_000_000) -> None:
        self._it = itertools.count(start)

    def __call__(self) -> int:
        return next(self._it)


class FakeClock:
    """Clock for interaction windows. Tests ``advance()`` it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON with Content-Type exactly ``application/json`` (discord.py compares it verbatim)."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _iso(ts: datetime | None = None) -> str:
    return (ts or datetime.now(UTC)).isoformat()


@dataclass
class FakeFile:
    filename: str
    data: bytes
    content_type: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class Sent:
    """One message the bot created or edited, as Discord stored it."""

    id: int
    channel_id: int
    content: str
    embeds: list[dict]
    components: list[dict]
    files: list[FakeFile]
    flags: int
    via: str  # "channel" | "callback" | "original" | "followup" | "component_update"
    interaction_id: int | None = None
    reference_id: int | None = None
    edits: int = 0
    payload: dict = field(default_factory=dict)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def text(self) -> str:
        """Content plus every embed's visible text, for easy assertions."""
        parts = [self.content or ""]
        for e in self.embeds:
            parts += [e.get("title", ""), e.get("description", "")]
            parts += [f.get("name", "") + "\n" + f.get("value", "") for f in e.get("fields", [])]
            parts.append((e.get("footer") or {}).get("text", ""))
            parts.append((e.get("author") or {}).get("name", ""))
        return "\n".join(p for p in parts if p)


@dataclass
class FakeInteraction:
    id: int
    token: str
    type: int
    channel_id: int
    user_id: int
    created_at: float
    data: dict
    responded: bool = False
    response_type: int | None = None
    original_id: int | None = None  # message id of the original response
    callbacks: list[dict] = field(default_factory=list)
    message_id: int | None = None  # component interactions: the message clicked


class DiscordError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def response(self) -> web.Response:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return _json(body, status=self.status)


def _form_error(path: str, code: str, message: str) -> DiscordError:
    """Discord's nested 50035 error shape: errors.<path...>._errors[{code, message}]."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        errors = {part: errors}
    return DiscordError(400, 50035, "Invalid Form Body", errors)


def embed_chars(embed: dict) -> int:
    n = len(embed.get("title") or "") + len(embed.get("description") or "")
    n += len((embed.get("footer") or {}).get("text") or "")
    n += len((embed.get("author") or {}).get("name") or "")
    for f in embed.get("fields") or []:
        n += len(f.get("name") or "") + len(f.get("value") or "")
    return n


def _resolve_attachments(embed: dict, urls: dict[str, str]) -> dict:
    """Discord serves an embed's ``attachment://name`` image as that attachment's CDN URL."""
    out = dict(embed)
    for key in ("image", "thumbnail"):
        url = (embed.get(key) or {}).get("url") or ""
        name = url[len("attachment://") :] if url.startswith("attachment://") else None
        if name in urls:
            out[key] = {**embed[key], "url": urls[name], "proxy_url": urls[name]}
    return out


def validate_message(payload: dict, files: list[FakeFile]) -> None:
    """Raise DiscordError for anything Discord would reject."""
    content = payload.get("content") or ""
    if len(content) > MAX_CONTENT:
        raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = payload.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, e in enumerate(embeds):
        p = f"embeds.{i}"
        checks = [
            ("title", e.get("title"), MAX_TITLE),
            ("description", e.get("description"), MAX_DESCRIPTION),
            ("footer.text", (e.get("footer") or {}).get("text"), MAX_FOOTER),
            ("author.name", (e.get("author") or {}).get("name"), MAX_AUTHOR),
        ]
        for name, value, limit in checks:
            if value is not None and len(value) > limit:
                raise _form_error(
                    f"{p}.{name}", "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                )
        fields_ = e.get("fields") or []
        if len(fields_) > MAX_FIELDS:
            raise _form_error(f"{p}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer.")
        for j, f in enumerate(fields_):
            for key, limit in (("name", MAX_FIELD_NAME), ("value", MAX_FIELD_VALUE)):
                v = f.get(key)
                if not v or not str(v).strip():
                    raise _form_error(
                        f"{p}.fields.{j}.{key}", "BASE_TYPE_REQUIRED", "This field is required"
                    )
                if len(v) > limit:
                    raise _form_error(
                        f"{p}.fields.{j}.{key}",
                        "BASE_TYPE_MAX_LENGTH",
                        f"Must be {limit} or fewer in length.",
                    )
        total += embed_chars(e)
    if total > MAX_EMBED_TOTAL:
        raise _form_error(
            "embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )
    if len(files) > MAX_FILES:
        raise _form_error("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    for f in files:
        if f.size > MAX_FILE_BYTES:
            raise DiscordError(413, 40005, "Request entity too large")
    names = {f.filename for f in files}
    for i, e in enumerate(embeds):
        for key in ("thumbnail", "image"):
            url = (e.get(key) or {}).get("url") or ""
            if url.startswith("attachment://") and url[len("attachment://") :] not in names:
                # Discord silently drops it; fakes flag it so tests notice.
                raise _form_error(f"embeds.{i}.{key}.url", "ATTACHMENT_NOT_FOUND", url)
    validate_components(payload.get("components") or [])


def validate_components(rows: list[dict]) -> None:
    if len(rows) > MAX_ACTION_ROWS:
        raise _form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    for i, row in enumerate(rows):
        items = row.get("components") or []
        if not items or len(items) > 5:
            raise _form_error(f"components.{i}.components", "BASE_TYPE_BAD_LENGTH", "1 to 5")
        for j, c in enumerate(items):
            p = f"components.{i}.components.{j}"
            cid = c.get("custom_id")
            if cid is not None and len(cid) > MAX_CUSTOM_ID:
                raise _form_error(f"{p}.custom_id", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer")
            if c.get("type") == 2 and len(c.get("label") or "") > MAX_BUTTON_LABEL:
                raise _form_error(f"{p}.label", "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer")
            if len(c.get("placeholder") or "") > MAX_PLACEHOLDER:
                raise _form_error(f"{p}.placeholder", "BASE_TYPE_MAX_LENGTH", "150 or fewer")
            options = c.get("options") or []
            if c.get("type") == 3 and not 1 <= len(options) <= MAX_SELECT_OPTIONS:
                raise _form_error(f"{p}.options", "BASE_TYPE_BAD_LENGTH", "1 to 25 options")
            for k, o in enumerate(options):
                if not o.get("label") or len(o["label"]) > MAX_OPTION_LABEL:
                    raise _form_error(f"{p}.options.{k}.label", "BASE_TYPE_BAD_LENGTH", "1-100")
                if len(o.get("description") or "") > MAX_OPTION_DESCRIPTION:
                    raise _form_error(
                        f"{p}.options.{k}.description", "BASE_TYPE_MAX_LENGTH", "100 or fewer"
                    )


def compute_permissions(guild: dict, channel: dict, member_id: int, role_ids: list[int]) -> int:
    """Discord's permission algorithm (base from roles, then channel overwrites)."""
    roles = {int(r["id"]): int(r["permissions"]) for r in guild["roles"]}
    gid = int(guild["id"])
    if int(guild["owner_id"]) == member_id:
        return ALL_PERMS
    perms = roles.get(gid, 0)
    for rid in role_ids:
        perms |= roles.get(rid, 0)
    if perms & P["administrator"]:
        return ALL_PERMS
    ows = {(int(o["id"]), int(o["type"])): o for o in channel.get("permission_overwrites", [])}
    ev = ows.get((gid, 0))
    if ev:
        perms = (perms & ~int(ev["deny"])) | int(ev["allow"])
    allow = deny = 0
    for rid in role_ids:
        o = ows.get((rid, 0))
        if o:
            allow |= int(o["allow"])
            deny |= int(o["deny"])
    perms = (perms & ~deny) | allow
    mo = ows.get((member_id, 1))
    if mo:
        perms = (perms & ~int(mo["deny"])) | int(mo["allow"])
    return perms


class FakeDiscord:
    """The fake server. ``await fake.start()``, then point discord.py at ``fake.api_base``."""

    def __init__(self, *, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.snow = Snowflakes()
        self.app_id = self.snow()
        self.bot_user = {
            "id": str(self.app_id),
            "username": "Playlist Clusters",
            "global_name": None,
            "discriminator": "0",
            "avatar": None,
            "bot": True,
            "flags": 0,
            "verified": True,
            "mfa_enabled": False,
        }
        self.owner_user = self._user(self.snow(), "owner")
        self.guild_id = self.snow()
        self.bot_role_id = self.snow()
        self.channel_id = self.snow()
        self.other_channel_id = self.snow()
        self.guild: dict[str, Any] = {
            "id": str(self.guild_id),
            "name": "Test Guild",
            "owner_id": self.owner_user["id"],
            "roles": [
                self._role(self.guild_id, "@everyone", P["view_channel"] | P["send_messages"]),
                self._role(self.bot_role_id, "Playlist Clusters", DEFAULT_BOT_PERMS, managed=True),
            ],
            "channels": [
                self._channel(self.channel_id, "general"),
                self._channel(self.other_channel_id, "music"),
            ],
        }
        # Every guild the bot is in, by id: the default one above, plus add_guild()'s. A
        # bot that IDENTIFYs with a shard gets only its shard's guilds, and guild events
        # go only to the connection of that shard (Discord's rule: (guild_id >> 22) % count).
        self.guilds: dict[int, dict[str, Any]] = {self.guild_id: self.guild}
        self.left_channels: set[int] = set()  # channels of guilds the bot was removed from
        self.dm_channels: dict[int, int] = {}  # DM channel id -> the member on the other side
        self.users_deleted: set[int] = set()  # members' messages deleted since they were sent
        # (guild id, user id) of members who left a guild: GET /guilds/{g}/members/{u} is 404
        # 10007. No GUILD_MEMBER_REMOVE is sent: the bot runs without the members intent.
        self.departed: set[tuple[int, int]] = set()
        self.users: dict[int, dict] = {int(self.owner_user["id"]): self.owner_user}
        self.member_roles: dict[int, list[int]] = {
            self.app_id: [self.bot_role_id],
            int(self.owner_user["id"]): [],
        }
        # Recording
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, json-or-None)
        self.messages: dict[int, Sent] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.by_token: dict[str, FakeInteraction] = {}
        self.reactions: list[tuple[int, int, str, str]] = []  # (channel, message, emoji, op)
        self.errors: list[tuple[str, str, int, dict]] = []  # rejected requests
        self.commands: dict[str, list[dict]] = {}  # "global" | guild id -> synced commands
        self.attachments: dict[str, FakeFile] = {}
        self.identifies = 0
        self.identified_shards: list[list[int] | None] = []  # IDENTIFY's "shard" of each bot
        self.token: str | None = None  # set to require "Authorization: Bot <token>"
        self.message_content_allowed = True  # False: close the gateway with 4014
        self.intents: int | None = None
        # Gateway
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_shards: dict[web.WebSocketResponse, tuple[int, int]] = {}
        self._seq = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ helpers for payloads
    def _user(self, uid: int, name: str, *, bot: bool = False) -> dict:
        return {
            "id": str(uid),
            "username": name,
            "global_name": name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
        }

    def _role(self, rid: int, name: str, perms: int, *, managed: bool = False) -> dict:
        return {
            "id": str(rid),
            "name": name,
            "permissions": str(perms),
            "position": 0 if name == "@everyone" else 1,
            "color": 0,
            "hoist": False,
            "managed": managed,
            "mentionable": False,
            "flags": 0,
        }

    def _channel(self, cid: int, name: str, guild_id: int | None = None) -> dict:
        return {
            "id": str(cid),
            "type": 0,
            "guild_id": str(guild_id or self.guild_id),
            "name": name,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }

    def open_dm(self, user_id: int) -> int:
        """The DM channel between the bot and a member (opened once); returns its id."""
        for cid, uid in self.dm_channels.items():
            if uid == user_id:
                return cid
        cid = self.snow()
        self.dm_channels[cid] = user_id
        return cid

    def channel(self, cid: int) -> dict:
        if cid in self.dm_channels:
            user = self.users[self.dm_channels[cid]]
            return {"id": str(cid), "type": 1, "recipients": [user], "last_message_id": None}
        for guild in self.guilds.values():
            for c in guild["channels"] + guild.get("threads", []):
                if int(c["id"]) == cid:
                    return c
        raise KeyError(cid)

    def add_forum(self, name: str = "share-your-mix") -> int:
        """A forum channel (type 15) in the default guild; returns its id."""
        cid = self.snow()
        forum = self._channel(cid, name)
        forum.update({"type": 15, "available_tags": [], "default_reaction_emoji": None})
        self.guild["channels"].append(forum)
        return cid

    def add_thread(self, parent_id: int, name: str = "a thread", *, cached: bool = True) -> int:
        """A public thread (a forum post when ``parent_id`` is a forum) in the default guild.
        ``cached=False``: left out of GUILD_CREATE's threads, so the bot knows only its id
        (discord.py then gives a message's channel as a PartialMessageable)."""
        tid = self.snow()
        thread = self._channel(tid, name)
        thread.update(
            {
                "type": 11,
                "parent_id": str(parent_id),
                "owner_id": self.owner_user["id"],
                "message_count": 0,
                "member_count": 1,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": _iso(),
                    "locked": False,
                },
                "cached": cached,
            }
        )
        del thread["permission_overwrites"]  # threads have none: their parent's apply
        self.guild.setdefault("threads", []).append(thread)
        return tid

    def guild_of(self, channel_id: int) -> dict:
        """The guild a channel belongs to."""
        return self.guilds[int(self.channel(channel_id)["guild_id"])]

    def _gid(self, channel_id: int) -> str:
        """The id of a channel's guild (the default guild for a channel it does not know)."""
        try:
            return str(self.channel(channel_id)["guild_id"])
        except KeyError:
            return str(self.guild_id)

    def add_guild(
        self, name: str, *, shard: int | None = None, shard_count: int | None = None
    ) -> tuple[int, int]:
        """Another guild the bot is in (same owner and members, channels #general and #music),
        with an id on ``shard`` of ``shard_count`` when given. Returns (guild id, #general id).
        """
        gid = self.snow()
        if shard is not None and shard_count:
            while (gid >> 22) % shard_count != shard:
                gid += 1 << 22  # far above the counter: never handed out again
        general = self.snow()
        self.guilds[gid] = {
            "id": str(gid),
            "name": name,
            "owner_id": self.owner_user["id"],
            "roles": [
                self._role(gid, "@everyone", P["view_channel"] | P["send_messages"]),
                self._role(self.bot_role_id, "Playlist Clusters", DEFAULT_BOT_PERMS, managed=True),
            ],
            "channels": [
                self._channel(general, "general", gid),
                self._channel(self.snow(), "music", gid),
            ],
        }
        return gid, general

    async def remove_guild(self, guild_id: int) -> None:
        """The bot is removed from a guild (kicked, or the guild deleted): GUILD_DELETE, and
        from then on its channels answer 403 Missing Access."""
        guild = self.guilds.pop(guild_id)
        self.left_channels.update(int(c["id"]) for c in guild["channels"])
        await self.dispatch("GUILD_DELETE", {"id": str(guild_id)})

    def add_user(self, name: str, *, bot: bool = False, manage_guild: bool = False) -> int:
        """Add a guild member; returns the user id."""
        uid = self.snow()
        self.users[uid] = self._user(uid, name, bot=bot)
        roles: list[int] = []
        if manage_guild:
            rid = self.snow()
            self.guild["roles"].append(self._role(rid, "Managers", P["manage_guild"]))
            roles.append(rid)
        self.member_roles[uid] = roles
        return uid

    def remove_member(self, uid: int, guild_id: int | None = None) -> None:
        """A member leaves a guild (the default one unless given), or is kicked. The bot hears
        nothing (no members intent); Discord's REST then answers 404 Unknown Member."""
        self.departed.add((guild_id or self.guild_id, uid))

    def deny_bot(self, channel_id: int, *perms: str) -> None:
        """Add a channel overwrite denying the bot's role some permissions (by name)."""
        bits = 0
        for p in perms:
            bits |= P[p]
        self.channel(channel_id)["permission_overwrites"].append(
            {"id": str(self.bot_role_id), "type": 0, "allow": "0", "deny": str(bits)}
        )

    def _member(self, uid: int) -> dict:
        user = self.bot_user if uid == self.app_id else self.users[uid]
        return {
            "user": user,
            "roles": [str(r) for r in self.member_roles.get(uid, [])],
            "joined_at": _iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
            "avatar": None,
        }

    def permissions(self, channel_id: int, uid: int) -> int:
        if channel_id in self.dm_channels:
            return ALL_PERMS  # a DM has no permissions to lack
        channel = self.channel(channel_id)
        if channel.get("parent_id") and channel["type"] in (10, 11, 12):
            return self.permissions(int(channel["parent_id"]), uid)  # a thread: its parent's
        return compute_permissions(
            self.guild_of(channel_id), channel, uid, self.member_roles.get(uid, [])
        )

    def guild_create_payload(self, guild: dict | None = None) -> dict:
        g = dict(guild or self.guild)
        cached = [t for t in g.get("threads", []) if t.get("cached", True)]
        g.update(
            {
                "unavailable": False,
                "member_count": len(self.member_roles),
                "members": [self._member(uid) for uid in self.member_roles],
                "emojis": [],
                "stickers": [],
                "features": [],
                "threads": cached,
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "large": False,
                "joined_at": _iso(),
                "premium_tier": 0,
                "preferred_locale": "en-US",
                "afk_timeout": 300,
                "verification_level": 0,
                "default_message_notifications": 0,
                "explicit_content_filter": 0,
                "mfa_level": 0,
                "nsfw_level": 0,
                "system_channel_flags": 0,
                "icon": None,
                "banner": None,
                "splash": None,
                "discovery_splash": None,
                "description": None,
                "vanity_url_code": None,
                "application_id": None,
                "afk_channel_id": None,
                "system_channel_id": None,
                "rules_channel_id": None,
                "public_updates_channel_id": None,
                "max_members": 500000,
                "premium_subscription_count": 0,
                "premium_progress_bar_enabled": False,
                "incidents_data": None,
            }
        )
        return g

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._ws)
        app.router.add_get("/cdn/{key}/{name}", self._cdn)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------ waiting
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], within: float = 15.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked after every recorded change)."""

        async def _wait() -> Any:
            async with self._changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self._changed.wait()

        return await asyncio.wait_for(_wait(), within)

    def sent(
        self,
        *,
        channel_id: int | None = None,
        interaction_id: int | None = None,
        via: str | None = None,
    ) -> list[Sent]:
        out = []
        for m in self.messages.values():
            if channel_id is not None and m.channel_id != channel_id:
                continue
            if interaction_id is not None and m.interaction_id != interaction_id:
                continue
            if via is not None and m.via != via:
                continue
            out.append(m)
        return out

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p.startswith(prefix))

    # ------------------------------------------------------------------ gateway
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                op = data.get("op")
                if op == 1:
                    await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    self.identifies += 1
                    shard = data["d"].get("shard")
                    self.identified_shards.append(shard)
                    if shard:
                        self._socket_shards[ws] = (int(shard[0]), int(shard[1]))
                    self.intents = data["d"].get("intents")
                    if not self.message_content_allowed and (self.intents or 0) & (1 << 15):
                        await ws.close(code=4014, message=b"Disallowed intent(s).")
                        break
                    await self._send_ready(ws)
                elif op == 6:
                    # RESUME is not modelled: ask for a fresh IDENTIFY.
                    await ws.send_json({"op": 9, "d": False, "s": None, "t": None})
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
            self._socket_shards.pop(ws, None)
        return ws

    async def _send_event(self, ws: web.WebSocketResponse, name: str, data: dict) -> None:
        self._seq += 1
        await ws.send_json({"op": 0, "t": name, "s": self._seq, "d": data})

    def _serves(self, ws: web.WebSocketResponse, guild_id: int) -> bool:
        """Whether the connection ``ws`` receives ``guild_id``'s events (its shard's guilds)."""
        shard = self._socket_shards.get(ws)
        return shard is None or (guild_id >> 22) % shard[1] == shard[0]

    async def _send_ready(self, ws: web.WebSocketResponse) -> None:
        guilds = [g for gid, g in self.guilds.items() if self._serves(ws, gid)]
        ready = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": g["id"], "unavailable": True} for g in guilds],
            "session_id": f"session-{self.snow()}",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "shard": list(self._socket_shards.get(ws, (0, 1))),
        }
        await self._send_event(ws, "READY", ready)
        for guild in guilds:
            await self._send_event(ws, "GUILD_CREATE", self.guild_create_payload(guild))
        await self._notify()

    async def dispatch(self, name: str, data: dict) -> None:
        """Send a gateway DISPATCH event to every connected bot (a guild's event: to the
        connections of its shard only)."""
        gid = int(data["guild_id"]) if data.get("guild_id") else None
        targets = [ws for ws in self._sockets if gid is None or self._serves(ws, gid)]
        if not targets:
            raise RuntimeError("no bot is connected to the fake gateway (for this guild)")
        for ws in targets:
            await self._send_event(ws, name, data)

    @property
    def connected(self) -> bool:
        return bool(self._sockets)

    # ------------------------------------------------------------------ test-side actions
    def add_attachment(
        self, filename: str, data: bytes, content_type: str | None = "text/csv"
    ) -> dict:
        """Host bytes on the fake CDN; returns a Discord attachment object."""
        aid = self.snow()
        key = str(aid)
        self.attachments[key] = FakeFile(filename, data, content_type)
        att = {
            "id": str(aid),
            "filename": filename,
            "size": len(data),
            "url": f"{self.base}/cdn/{key}/{filename}",
            "proxy_url": f"{self.base}/cdn/{key}/{filename}",
        }
        if content_type:
            att["content_type"] = content_type
        return att

    def _message_payload(
        self,
        mid: int,
        channel_id: int,
        author: dict,
        content: str = "",
        *,
        embeds: list | None = None,
        components: list | None = None,
        attachments: list | None = None,
        flags: int = 0,
        webhook_id: int | None = None,
        interaction: dict | None = None,
        reference: int | None = None,
    ) -> dict:
        msg: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": _iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": embeds or [],
            "components": components or [],
            "pinned": False,
            "type": 0 if reference is None else 19,
            "flags": flags,
        }
        if channel_id not in self.dm_channels:
            msg["guild_id"] = self._gid(channel_id)
        if webhook_id is not None:
            msg["webhook_id"] = str(webhook_id)
        if interaction is not None:
            msg["interaction_metadata"] = interaction
        if reference is not None:
            msg["message_reference"] = {"message_id": str(reference), "channel_id": str(channel_id)}
            if "guild_id" in msg:
                msg["message_reference"]["guild_id"] = msg["guild_id"]
        return msg

    def _sent_payload(self, m: Sent) -> dict:
        atts = []
        for i, f in enumerate(m.files):
            aid = self.snow()
            url = f"{self.base}/cdn/sent/{aid}-{i}-{f.filename}"  # the name dump() gives it
            atts.append(
                {
                    "id": str(aid),
                    "filename": f.filename,
                    "size": f.size,
                    "url": url,
                    "proxy_url": url,
                }
            )
        by_name = {a["filename"]: a["url"] for a in atts}
        embeds = [_resolve_attachments(e, by_name) for e in m.embeds]
        author = self.bot_user
        msg = self._message_payload(
            m.id,
            m.channel_id,
            author,
            m.content,
            embeds=embeds,
            components=m.components,
            attachments=atts,
            flags=m.flags,
            webhook_id=self.app_id if m.interaction_id else None,
            interaction=self._interaction_metadata(m),
            reference=m.reference_id,
        )
        if m.interaction_id and msg["interaction_metadata"]["type"] == 2:
            msg["type"] = 20  # CHAT_INPUT_COMMAND: Discord shows "<user> used /<command>" above
        return msg

    def _interaction_metadata(self, m: Sent) -> dict | None:
        """What Discord attaches to every message of an interaction (original AND followups)."""
        fi = self.interactions.get(m.interaction_id) if m.interaction_id else None
        if fi is None:
            return None
        user = self.users.get(fi.user_id) or self._user(fi.user_id, "someone")
        meta: dict[str, Any] = {
            "id": str(fi.id),
            "type": fi.type,
            "user": user,
            "authorizing_integration_owners": {"0": self._gid(fi.channel_id)},
        }
        if fi.type == 2:
            meta["name"] = fi.data.get("name", "")
        if fi.original_id and fi.original_id != m.id:
            meta["original_response_message_id"] = str(fi.original_id)
        if fi.message_id:
            meta["interacted_message_id"] = str(fi.message_id)
        return meta

    def dump(self, path: Any, files_dir: Any, messages: list[Sent] | None = None) -> list[dict]:
        """Write messages as Discord message objects (JSON list) + their files, for
        ``../shared/tools/render_messages.py --json PATH --files-dir FILES_DIR``.

        Files are named ``<message id>-<index>-<filename>``: the renderer resolves an attachment
        by name to the closest earlier snowflake, so two results' ``clusters.png`` never mix.
        """
        from pathlib import Path

        files_path = Path(files_dir)
        files_path.mkdir(parents=True, exist_ok=True)
        chosen = sorted(
            messages if messages is not None else self.messages.values(), key=lambda m: m.id
        )
        out = []
        for m in chosen:
            payload = self._sent_payload(m)
            out.append(payload)
            for i, (f, att) in enumerate(zip(m.files, payload["attachments"], strict=True)):
                (files_path / f"{att['id']}-{i}-{f.filename}").write_bytes(f.data)
        Path(path).write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
        return out

    async def send_message(
        self,
        content: str,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        bot: bool = False,
        webhook: bool = False,
    ) -> int:
        """A user (or bot/webhook) posts a message: dispatches MESSAGE_CREATE; returns its id."""
        uid = user_id or int(self.owner_user["id"])
        cid = channel_id or self.channel_id
        author = dict(self.users.get(uid) or self._user(uid, "someone"))
        if bot:
            author["bot"] = True
        mid = self.snow()
        payload = self._message_payload(
            mid, cid, author, content, webhook_id=self.snow() if webhook else None
        )
        if not webhook and cid not in self.dm_channels:
            member = self._member(uid) if uid in self.member_roles else None
            if member:
                member = {k: v for k, v in member.items() if k != "user"}
                payload["member"] = member
        await self.dispatch("MESSAGE_CREATE", payload)
        return mid

    async def edit_user_message(
        self, message_id: int, content: str, *, channel_id: int | None = None
    ) -> None:
        cid = channel_id or self.channel_id
        payload = self._message_payload(message_id, cid, self.owner_user, content)
        payload["edited_timestamp"] = _iso()
        await self.dispatch("MESSAGE_UPDATE", payload)

    def _interaction_base(
        self, itype: int, data: dict, user_id: int | None, channel_id: int | None
    ) -> tuple[FakeInteraction, dict]:
        uid = user_id or int(self.owner_user["id"])
        cid = channel_id or self.channel_id
        iid = self.snow()
        token = f"tok-{iid}-{'x' * 40}"
        fi = FakeInteraction(iid, token, itype, cid, uid, self.clock(), data)
        self.interactions[iid] = fi
        self.by_token[token] = fi
        member = self._member(uid)
        member["permissions"] = str(self.permissions(cid, uid))
        gid = self._gid(cid)
        payload = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": itype,
            "data": data,
            "guild_id": gid,
            "guild": {"id": gid, "locale": "en-US", "features": []},
            "channel_id": str(cid),
            "channel": self.channel(cid),
            "member": member,
            "token": token,
            "version": 1,
            "app_permissions": str(self.permissions(cid, self.app_id)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": gid},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        return fi, payload

    def _command(self, name: str) -> dict | None:
        for scope in (str(self.guild_id), "global"):
            for c in self.commands.get(scope, []):
                if c["name"] == name:
                    return c
        return None

    async def slash(
        self,
        command: str,
        options: dict[str, Any] | None = None,
        *,
        attachments: dict[str, dict] | None = None,
        user_id: int | None = None,
        channel_id: int | None = None,
    ) -> FakeInteraction:
        """Invoke ``/command [sub [subsub]]`` with options {name: value}.

        ``attachments`` maps an option name to an attachment object from
        :meth:`add_attachment`. Option types are taken from the synced command when present.
        """
        names = command.split()
        synced = self._command(names[0])
        opts: list[dict] = []
        opt_schema: list[dict] = synced.get("options", []) if synced else []
        container = opts
        for sub in names[1:]:
            schema = next((o for o in opt_schema if o["name"] == sub), None)
            stype = schema["type"] if schema else 1
            node = {"name": sub, "type": stype, "options": []}
            container.append(node)
            container = node["options"]
            opt_schema = schema.get("options", []) if schema else []
        resolved: dict[str, Any] = {}
        for oname, value in (options or {}).items():
            schema = next((o for o in opt_schema if o["name"] == oname), None)
            if isinstance(value, bool):
                otype = 5
            elif isinstance(value, int):
                otype = 4
            else:
                otype = 3
            if schema:
                otype = schema["type"]
            container.append({"name": oname, "type": otype, "value": value})
        for oname, att in (attachments or {}).items():
            container.append({"name": oname, "type": 11, "value": att["id"]})
            resolved.setdefault("attachments", {})[att["id"]] = att
        data: dict[str, Any] = {
            "id": synced["id"] if synced else str(self.snow()),
            "name": names[0],
            "type": 1,
            "options": opts,
        }
        if resolved:
            data["resolved"] = resolved
        fi, payload = self._interaction_base(2, data, user_id, channel_id)
        await self.dispatch("INTERACTION_CREATE", payload)
        return fi

    async def autocomplete(
        self,
        command: str,
        focused: str,
        value: str,
        *,
        user_id: int | None = None,
    ) -> FakeInteraction:
        """Autocomplete interaction (type 4) for option ``focused`` of ``command``."""
        names = command.split()
        opts: list[dict] = []
        container = opts
        for sub in names[1:]:
            node = {"name": sub, "type": 1, "options": []}
            container.append(node)
            container = node["options"]
        container.append({"name": focused, "type": 3, "value": value, "focused": True})
        synced = self._command(names[0])
        data = {
            "id": synced["id"] if synced else str(self.snow()),
            "name": names[0],
            "type": 1,
            "options": opts,
        }
        fi, payload = self._interaction_base(4, data, user_id, None)
        await self.dispatch("INTERACTION_CREATE", payload)
        return fi

    async def click(
        self,
        message: Sent,
        custom_id: str,
        *,
        values: list[str] | None = None,
        user_id: int | None = None,
    ) -> FakeInteraction:
        """Click a button (or pick ``values`` in a select) on a message the bot sent."""
        comp = self.find_component(message, custom_id)
        if comp is None:
            raise AssertionError(f"no component {custom_id!r} on message {message.id}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": comp.get("type", 2)}
        if values is not None:
            data["values"] = values
        fi, payload = self._interaction_base(3, data, user_id, message.channel_id)
        fi.message_id = message.id
        payload["message"] = self._sent_payload(message)
        await self.dispatch("INTERACTION_CREATE", payload)
        return fi

    @staticmethod
    def find_component(message: Sent, custom_id: str) -> dict | None:
        for row in message.components:
            for c in row.get("components", []):
                if c.get("custom_id") == custom_id:
                    return c
        return None

    @staticmethod
    def custom_ids(message: Sent) -> list[str]:
        return [
            c["custom_id"]
            for row in message.components
            for c in row.get("components", [])
            if c.get("custom_id")
        ]

    def responses(self, fi: FakeInteraction) -> list[Sent]:
        """Every message attached to an interaction (original + followups), in order."""
        return sorted(self.sent(interaction_id=fi.id), key=lambda m: m.id)

    async def wait_response(self, fi: FakeInteraction, *, count: int = 1, within: float = 15.0):
        """Wait until the interaction has ``count`` messages with content or embeds."""

        def ready():
            got = [m for m in self.responses(fi) if m.content or m.embeds or m.files]
            return got if len(got) >= count else None

        return await self.wait_for(ready, within)

    async def wait_acked(self, fi: FakeInteraction, within: float = 15.0) -> None:
        await self.wait_for(lambda: fi.responded, within)

    # ------------------------------------------------------------------ REST
    async def _cdn(self, request: web.Request) -> web.Response:
        f = self.attachments.get(request.match_info["key"])
        if f is None:
            return web.Response(status=404)
        return web.Response(body=f.data, content_type=f.content_type or "application/octet-stream")

    async def _read_body(self, request: web.Request) -> tuple[dict, list[FakeFile]]:
        ctype = request.content_type
        files: list[FakeFile] = []
        payload: dict = {}
        if ctype.startswith("multipart/"):
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                name = part.name or ""  # type: ignore[union-attr]
                data = await part.read()  # type: ignore[union-attr]
                if name == "payload_json":
                    payload = json.loads(data)
                elif name.startswith("files["):
                    files.append(
                        FakeFile(
                            part.filename or name,  # type: ignore[union-attr]
                            bytes(data),
                            part.headers.get("Content-Type"),  # type: ignore[union-attr]
                        )
                    )
        elif request.can_read_body:
            raw = await request.read()
            payload = json.loads(raw) if raw else {}
        return payload, files

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        method = request.method
        try:
            payload, files = await self._read_body(request)
        except json.JSONDecodeError:
            return DiscordError(400, 50109, "The request body contains invalid JSON.").response()
        self.requests.append((method, path, payload))
        auth = request.headers.get("Authorization")
        if self.token is not None and auth is not None and auth != f"Bot {self.token}":
            await self._notify()
            return DiscordError(401, 0, "401: Unauthorized").response()
        try:
            resp = await self._route(method, path, payload, files, request)
        except DiscordError as err:
            self.errors.append((method, path, err.code, err.errors or {}))
            resp = err.response()
        await self._notify()
        return resp

    async def _route(
        self, method: str, path: str, payload: dict, files: list[FakeFile], request: web.Request
    ) -> web.StreamResponse:
        parts = [p for p in path.split("/") if p]
        app = str(self.app_id)
        if parts == ["users", "@me"]:
            return _json(self.bot_user)
        if parts == ["gateway", "bot"] or parts == ["gateway"]:
            return _json(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 999,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if parts in (["applications", "@me"], ["oauth2", "applications", "@me"]):
            return _json(self._application())
        if parts[:1] == ["applications"] and parts[1] == app and "commands" in parts:
            scope = parts[3] if parts[2] == "guilds" else "global"
            return self._commands_route(method, scope, payload)
        if parts[:1] == ["interactions"] and parts[-1] == "callback":
            return self._callback(int(parts[1]), parts[2], payload, files)
        if parts[:1] == ["webhooks"] and parts[1] == app:
            return self._webhook(method, parts[2], parts[3:], payload, files)
        if parts[:1] == ["guilds"] and method == "GET" and len(parts) in (2, 4):
            return self._guild_route(int(parts[1]), parts[2:])
        if parts[:1] == ["channels"]:
            cid = int(parts[1])
            if cid in self.left_channels:
                raise DiscordError(403, 50001, "Missing Access")
            if len(parts) == 2 and method == "GET":
                return _json(self.channel(cid))
            if parts[2:3] == ["messages"]:
                return self._channel_messages(method, cid, parts[3:], payload, files)
            if parts[2:3] == ["typing"]:
                return web.Response(status=204)
        return DiscordError(404, 0, f"404: Not Found ({method} {path})").response()

    def _guild_route(self, gid: int, rest: list[str]) -> web.Response:
        """GET /guilds/{id} and GET /guilds/{id}/members/{user id} (Discord's error codes)."""
        guild = self.guilds.get(gid)
        if guild is None:
            raise DiscordError(404, 10004, "Unknown Guild")
        if not rest:
            payload = self.guild_create_payload(guild)
            for key in ("members", "threads", "presences", "voice_states", "joined_at"):
                payload.pop(key, None)  # gateway-only fields
            return _json(payload)
        if rest[0] != "members":
            raise DiscordError(404, 0, "404: Not Found")
        uid = int(rest[1])
        if uid != self.app_id and uid not in self.users:
            raise DiscordError(404, 10013, "Unknown User")
        if (gid, uid) in self.departed:
            raise DiscordError(404, 10007, "Unknown Member")
        return _json(self._member(uid))

    def _application(self) -> dict:
        return {
            "id": str(self.app_id),
            "name": "Playlist Clusters",
            "icon": None,
            "description": "",
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner_user,
            "summary": "",
            "verify_key": "0" * 64,
            "team": None,
            "flags": 1 << 19,  # GATEWAY_MESSAGE_CONTENT_LIMITED
            "bot": self.bot_user,
        }

    def _commands_route(self, method: str, scope: str, payload: Any) -> web.Response:
        if method == "PUT":
            out = []
            for c in payload or []:
                c = dict(c)
                c.setdefault("type", 1)
                c["id"] = str(self.snow())
                c["application_id"] = str(self.app_id)
                c["version"] = str(self.snow())
                if scope != "global":
                    c["guild_id"] = scope
                c.setdefault("description", "")
                c.setdefault("options", [])
                c.setdefault("default_member_permissions", None)
                c.setdefault("dm_permission", True)
                c.setdefault("nsfw", False)
                self._validate_command(c)
                out.append(c)
            self.commands[scope] = out
            return _json(out)
        if method == "GET":
            return _json(self.commands.get(scope, []))
        return DiscordError(405, 0, "405: Method Not Allowed").response()

    def _validate_command(self, c: dict) -> None:
        import re

        pat = re.compile(r"^[-_\w]{1,32}$")

        def check(node: dict, where: str) -> None:
            if not pat.match(node["name"]) or node["name"] != node["name"].lower():
                raise _form_error(f"{where}.name", "APPLICATION_COMMAND_INVALID_NAME", node["name"])
            if not 1 <= len(node.get("description") or "") <= 100:
                raise _form_error(f"{where}.description", "BASE_TYPE_BAD_LENGTH", "1 to 100")
            opts = node.get("options") or []
            if len(opts) > 25:
                raise _form_error(f"{where}.options", "BASE_TYPE_MAX_LENGTH", "25 or fewer")
            seen_optional = False
            for i, o in enumerate(opts):
                if o.get("type") not in (1, 2):
                    if o.get("required") and seen_optional:
                        raise _form_error(
                            f"{where}.options.{i}.required",
                            "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                            "Required options must be placed before non-required options",
                        )
                    seen_optional |= not o.get("required")
                check(o, f"{where}.options.{i}")

        check(c, "0")

    # --- interactions
    def _interaction(self, iid: int, token: str) -> FakeInteraction:
        fi = self.interactions.get(iid)
        if fi is None or fi.token != token:
            raise DiscordError(404, 10062, "Unknown interaction")
        return fi

    def _callback(self, iid: int, token: str, payload: dict, files: list[FakeFile]) -> web.Response:
        fi = self._interaction(iid, token)
        if fi.responded:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        if self.clock() - fi.created_at > INTERACTION_CALLBACK_WINDOW_S:
            raise DiscordError(404, 10062, "Unknown interaction")
        rtype = payload.get("type")
        data = payload.get("data") or {}
        fi.callbacks.append(payload)
        resource: dict[str, Any] = {"type": rtype}
        if rtype in (4, 5):  # CHANNEL_MESSAGE_WITH_SOURCE / DEFERRED_CHANNEL_MESSAGE
            if rtype == 4:
                validate_message(data, files)
            m = self._store(
                fi.channel_id,
                data if rtype == 4 else {"flags": data.get("flags", 0)},
                files,
                via="callback",
                interaction_id=fi.id,
            )
            fi.original_id = m.id
            resource["message"] = self._sent_payload(m)
        elif rtype == 7:  # UPDATE_MESSAGE
            validate_message(data, files)
            if fi.message_id is None or fi.message_id not in self.messages:
                raise DiscordError(404, 10008, "Unknown Message")
            self._edit(self.messages[fi.message_id], data, files)
            resource["message"] = self._sent_payload(self.messages[fi.message_id])
        elif rtype == 6:  # DEFERRED_UPDATE_MESSAGE
            pass
        elif rtype == 8:  # AUTOCOMPLETE_RESULT
            choices = data.get("choices") or []
            if len(choices) > 25:
                raise _form_error("data.choices", "BASE_TYPE_MAX_LENGTH", "25 or fewer")
            for i, ch in enumerate(choices):
                if not 1 <= len(ch.get("name", "")) <= 100 or len(str(ch.get("value"))) > 100:
                    raise _form_error(f"data.choices.{i}", "BASE_TYPE_BAD_LENGTH", "1 to 100")
        elif rtype == 9:  # MODAL
            pass
        else:
            raise _form_error("type", "BASE_TYPE_CHOICES", f"bad type {rtype}")
        fi.responded = True
        fi.response_type = rtype
        body = {
            "interaction": {
                "id": str(fi.id),
                "type": fi.type,
                "response_message_id": str(fi.original_id) if fi.original_id else None,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": bool((data.get("flags") or 0) & EPHEMERAL),
            },
            "resource": resource,
        }
        return _json(body)

    def _webhook(
        self, method: str, token: str, rest: list[str], payload: dict, files: list[FakeFile]
    ) -> web.Response:
        fi = self.by_token.get(token)
        if fi is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        if self.clock() - fi.created_at > INTERACTION_TOKEN_TTL_S:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        if not fi.responded:
            raise DiscordError(404, 10015, "Unknown Webhook")
        if not rest and method == "POST":
            validate_message(payload, files)
            m = self._store(fi.channel_id, payload, files, via="followup", interaction_id=fi.id)
            return _json(self._sent_payload(m))
        if rest[:1] == ["messages"]:
            target = rest[1]
            if target == "@original":
                mid = fi.original_id if fi.type != 3 or fi.original_id else fi.message_id
            else:
                mid = int(target)
            return self._message_op(method, mid, payload, files)
        raise DiscordError(405, 0, "405: Method Not Allowed")

    def _message_op(
        self, method: str, mid: int | None, payload: dict, files: list[FakeFile]
    ) -> web.Response:
        """PATCH / GET / DELETE of one stored message (webhook and channel routes alike)."""
        m = self.messages.get(mid) if mid is not None else None
        if m is None:
            raise DiscordError(404, 10008, "Unknown Message")
        if method == "PATCH":
            validate_message({**self._payload_of(m), **payload}, files)
            self._edit(m, payload, files)
            return _json(self._sent_payload(m))
        if method == "GET":
            return _json(self._sent_payload(m))
        if method == "DELETE":
            del self.messages[m.id]
            return web.Response(status=204)
        raise DiscordError(405, 0, "405: Method Not Allowed")

    @staticmethod
    def _payload_of(m: Sent) -> dict:
        return {"content": m.content, "embeds": m.embeds, "components": m.components}

    def _store(
        self,
        channel_id: int,
        payload: dict,
        files: list[FakeFile],
        *,
        via: str,
        interaction_id: int | None = None,
    ) -> Sent:
        ref = (payload.get("message_reference") or {}).get("message_id")
        m = Sent(
            id=self.snow(),
            channel_id=channel_id,
            content=payload.get("content") or "",
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            files=list(files),
            flags=int(payload.get("flags") or 0),
            via=via,
            interaction_id=interaction_id,
            reference_id=int(ref) if ref else None,
            payload=payload,
        )
        self.messages[m.id] = m
        return m

    def _edit(self, m: Sent, payload: dict, files: list[FakeFile]) -> None:
        if "content" in payload:
            m.content = payload["content"] or ""
        if "embeds" in payload:
            m.embeds = list(payload["embeds"] or [])
        if "components" in payload:
            m.components = list(payload["components"] or [])
        if files or "attachments" in payload:
            # The bot always re-sends the full attachment set on edits (discord.py does too).
            m.files = list(files)
        m.edits += 1

    # --- channel messages
    def _require(self, channel_id: int, *perms: str) -> None:
        have = self.permissions(channel_id, self.app_id)
        for p in perms:
            if not have & P[p]:
                raise DiscordError(403, 50013, "Missing Permissions")

    def _channel_messages(
        self, method: str, cid: int, rest: list[str], payload: dict, files: list[FakeFile]
    ) -> web.Response:
        if not rest and method == "POST":
            # In a thread Discord asks for Send Messages in Threads, not Send Messages.
            thread = self.channel(cid)["type"] in (10, 11, 12)
            self._require(
                cid, "view_channel", "send_messages_in_threads" if thread else "send_messages"
            )
            if payload.get("embeds"):
                self._require(cid, "embed_links")
            if files:
                self._require(cid, "attach_files")
            if payload.get("message_reference") and not (
                self.permissions(cid, self.app_id) & P["read_message_history"]
            ):
                raise DiscordError(
                    400, 160002, "Cannot reply without permission to read message history"
                )
            validate_message(payload, files)
            ref = payload.get("message_reference") or {}
            if ref and int(ref["message_id"]) in self.users_deleted:
                if ref.get("fail_if_not_exists", True):
                    raise _form_error(
                        "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                    )
                payload = {k: v for k, v in payload.items() if k != "message_reference"}
            m = self._store(cid, payload, files, via="channel")
            return _json(self._sent_payload(m))
        if not rest and method == "GET":
            msgs = [self._sent_payload(m) for m in self.sent(channel_id=cid)]
            return _json(list(reversed(msgs)))
        mid = int(rest[0])
        if len(rest) >= 3 and rest[1] == "reactions":
            self._require(cid, "add_reactions", "read_message_history")
            if mid in self.users_deleted:
                raise DiscordError(404, 10008, "Unknown Message")
            op = "add" if method == "PUT" else "remove"
            self.reactions.append((cid, mid, unquote(rest[2]), op))
            return web.Response(status=204)
        if len(rest) == 1:
            return self._message_op(method, mid, payload, files)
        raise DiscordError(405, 0, "405: Method Not Allowed")


def patch_discord(fake: FakeDiscord, monkeypatch: Any) -> None:
    """Point discord.py's REST base and default gateway at the fake (undone by monkeypatch)."""
    import discord.gateway
    import discord.http
    import yarl

    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url)
    )
