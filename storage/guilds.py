"""Per-server settings (``guild_settings``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from storage.repository import Repository


@dataclass
class GuildSettings:
    """A server's settings; a server never configured gets the defaults."""

    links_enabled: bool = True
    # settings_json: room for later settings without a migration each
    extra: dict[str, Any] = field(default_factory=dict)


class GuildRepository(Repository):
    async def settings(self, guild_id: int) -> GuildSettings:
        row = await self.db.fetchone(
            "SELECT links_enabled, settings_json FROM guild_settings WHERE guild_id = ?",
            (guild_id,),
        )
        if row is None:
            return GuildSettings()
        return GuildSettings(
            links_enabled=bool(row["links_enabled"]),
            extra=json.loads(row["settings_json"] or "{}"),
        )

    async def set_links_enabled(self, guild_id: int, enabled: bool) -> None:
        await self.db.execute(
            "INSERT INTO guild_settings (guild_id, links_enabled, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(guild_id) DO UPDATE SET links_enabled = excluded.links_enabled, "
            "updated_at = excluded.updated_at",
            (guild_id, int(enabled), self._now()),
        )
