"""Spotify's JSON → the bot's types (:class:`~bot.models.Track`, :class:`PlaylistMeta`).

Pure functions, no I/O: which ``fields=`` to ask for, how a playlist entry becomes a Track or a
reason to skip it ("local", "episode", …), and the playlist/album/liked metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.models import FEATURE_KEYS, PlaylistMeta, Track
from bot.sources.links import SpotifyRef

_TRACK_FIELDS = (
    "type,id,uri,name,is_local,is_playable,duration_ms,explicit,popularity,external_ids(isrc),"
    "artists(id,name),album(id,name,release_date,images)"
)
_ENTRY_FIELDS = "added_at,added_by.id,is_local"
# First page: ask for both keys (2026 entries carry "item"; older data only "track"). Later
# pages ask only for the key the first page actually used, halving the payload.
ITEMS_FIELDS = f"total,next,items({_ENTRY_FIELDS},item({_TRACK_FIELDS}),track({_TRACK_FIELDS}))"

META_FIELDS = (
    "id,name,description,snapshot_id,owner(id,display_name),images,external_urls,"
    "items.total,tracks.total"
)


def items_fields(key: str | None) -> str:
    """The ``fields=`` filter for playlist items carrying the track under ``key``."""
    if key is None:
        return ITEMS_FIELDS
    return f"total,next,items({_ENTRY_FIELDS},{key}({_TRACK_FIELDS}))"


def rest_item_fields(first_page: dict) -> dict[str, str]:
    """Query parameters for the pages after ``first_page`` (see :data:`ITEMS_FIELDS`)."""
    return {"fields": items_fields(entry_key(first_page.get("items") or []))}


def entry_key(entries: list[Any]) -> str | None:
    """Which key ("item" or "track") these entries carry their track under, if clear."""
    for e in entries:
        if isinstance(e, dict):
            if e.get("item") is not None:
                return "item"
            if e.get("track") is not None:
                return "track"
    return None


def playlist_meta(data: dict, playlist_id: str) -> PlaylistMeta:
    """A playlist object (``GET /playlists/{id}`` or an item of ``/me/playlists``)."""
    owner = data.get("owner") or {}
    paging = data.get("items") or data.get("tracks") or {}
    images = data.get("images") or []
    return PlaylistMeta(
        id=data.get("id") or playlist_id,
        name=data.get("name") or "Untitled playlist",
        kind="playlist",
        owner_id=owner.get("id"),
        owner_name=owner.get("display_name") or owner.get("id"),
        snapshot_id=data.get("snapshot_id"),
        total=paging.get("total"),
        url=(data.get("external_urls") or {}).get("spotify")
        or SpotifyRef("playlist", playlist_id).url,
        image_url=images[0]["url"] if images else None,
        description=data.get("description") or None,
    )


def album_meta(data: dict, album_id: str) -> PlaylistMeta:
    """An album object (``GET /albums/{id}``) as the playlist-like metadata the bot uses."""
    artists = ", ".join(a.get("name", "") for a in data.get("artists") or [])
    images = data.get("images") or []
    total = data.get("total_tracks") or (data.get("tracks") or {}).get("total")
    return PlaylistMeta(
        id=album_id,
        name=data.get("name") or "Untitled album",
        kind="album",
        owner_id=None,
        owner_name=artists or None,
        # Albums don't change; a stable "snapshot" lets storage reuse earlier fetches.
        snapshot_id=f"album:{data.get('release_date', '')}:{total}",
        total=total,
        url=(data.get("external_urls") or {}).get("spotify") or SpotifyRef("album", album_id).url,
        image_url=images[0]["url"] if images else None,
        description=data.get("label") or None,
    )


def album_entries(album: dict, tracks: Iterable[Any]) -> list[dict]:
    """An album's simplified tracks as playlist-style entries carrying the album."""
    album_info = {
        "id": album.get("id"),
        "name": album.get("name"),
        "release_date": album.get("release_date"),
        "images": album.get("images") or [],
    }
    entries = []
    for t in tracks:
        if isinstance(t, dict):
            t = {**t, "album": album_info}
        entries.append({"item": t})
    return entries


def liked_meta(me: dict, total: int) -> PlaylistMeta:
    """The user's Liked Songs as a playlist (``me``: the ``GET /me`` profile)."""
    uid = me.get("id") or "me"
    return PlaylistMeta(
        id=f"liked:{uid}",
        name=f"{me.get('display_name') or uid}'s Liked Songs",
        kind="liked",
        owner_id=uid,
        owner_name=me.get("display_name") or uid,
        snapshot_id=None,
        total=total,
        url="https://open.spotify.com/collection/tracks",
    )


def created_playlist_meta(
    data: dict, *, name: str, description: str, snapshot: str | None, total: int
) -> PlaylistMeta:
    """The answer of ``POST /me/playlists`` after the tracks were added."""
    pid = data["id"]
    owner = data.get("owner") or {}
    return PlaylistMeta(
        id=pid,
        name=data.get("name") or name,
        kind="playlist",
        owner_id=owner.get("id"),
        owner_name=owner.get("display_name") or owner.get("id"),
        snapshot_id=snapshot,
        total=total,
        url=(data.get("external_urls") or {}).get("spotify")
        or f"https://open.spotify.com/playlist/{pid}",
        description=description or None,
    )


def audio_feature_rows(data: dict) -> dict[str, dict[str, float]]:
    """``GET /audio-features`` → features by track id (rows without any feature dropped)."""
    out: dict[str, dict[str, float]] = {}
    for row in data.get("audio_features") or []:
        if row and row.get("id"):
            feats = {k: float(row[k]) for k in FEATURE_KEYS if row.get(k) is not None}
            if feats:
                out[row["id"]] = feats
    return out


def entry_track(entry: Any) -> Track | str:
    """An entry's playable Track, or why it is skipped ("null", "local", "episode", ...)."""
    if not isinstance(entry, dict):
        return "null"
    obj = entry.get("item") if "item" in entry else None
    if obj is None:
        obj = entry.get("track")
    if not isinstance(obj, dict):
        return "null"
    uri = obj.get("uri") or ""
    if entry.get("is_local") or obj.get("is_local") or uri.startswith("spotify:local:"):
        return "local"
    if obj.get("type") == "episode" or obj.get("episode") is True:
        return "episode"
    if not obj.get("id") or obj.get("is_playable") is False:
        return "unavailable"
    return track_from_json(obj, entry)


def page_tracks(entries: list[Any]) -> list[Track | str]:
    """A page's entries parsed as they arrive (see ``_paged(convert=...)``): the raw JSON of
    a 10,000-entry playlist never piles up (less garbage-collector work), and no single step
    parses all entries at once on the event loop."""
    return [entry_track(e) for e in entries]


def track_from_json(obj: dict, entry: dict) -> Track:
    album = obj.get("album") or {}
    images = album.get("images") or []
    # Prefer the ~300 px image (embeds show it small); fall back to whatever there is.
    image = None
    if images:
        image = min(images, key=lambda im: abs((im.get("width") or 300) - 300)).get("url")
    artists = [a for a in obj.get("artists") or [] if a]
    added_by = entry.get("added_by") or {}
    return Track(
        id=obj["id"],
        name=obj.get("name") or "",
        artists=[a.get("name") or "" for a in artists],
        artist_ids=[a.get("id") or "" for a in artists if a.get("id")],
        album=album.get("name") or "",
        album_id=album.get("id"),
        image_url=image,
        release_date=album.get("release_date"),
        duration_ms=obj.get("duration_ms"),
        explicit=obj.get("explicit"),
        popularity=obj.get("popularity"),
        isrc=(obj.get("external_ids") or {}).get("isrc") or None,
        added_at=entry.get("added_at"),
        added_by=added_by.get("id") if isinstance(added_by, dict) else None,
    )
