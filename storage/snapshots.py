"""Playlists, tracks, artists and the entries of each fetched snapshot.

A source's content is stored once per snapshot (Spotify's ``snapshot_id``, else a content
hash), so a resumed job or an unchanged playlist reads its tracks back with no network call.
Bulk writes use ``executemany`` inside one transaction: saving a 10,000-track playlist is a
handful of statements, not 40,000.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from bot.codecs import dumps
from bot.models import FetchResult, PlaylistMeta, Track
from storage.repository import Repository

# Track.to_dict() fields that belong to a playlist entry, not to the track itself.
ENTRY_FIELDS = ("added_at", "added_by", "features")


def snapshot_key(fetched: FetchResult) -> str:
    """Key of a fetched source's content: Spotify's snapshot_id, else a content hash.

    Sources without a snapshot (CSV, demo, Liked Songs) get ``h:<sha1 of entries>`` so the
    same content is stored once and a resumed job finds exactly what it fetched.
    """
    if fetched.meta.snapshot_id:
        return fetched.meta.snapshot_id
    digest = hashlib.sha1()
    for t in fetched.tracks:
        digest.update(f"{t.id}\x1f{t.added_at or ''}\x1e".encode())
    return "h:" + digest.hexdigest()[:20]


def _canonical_track_json(track: Track) -> str:
    """The track's own fields, nulls and empties dropped so an upsert never erases data."""
    data = vars(track)  # a flat dataclass: much faster than asdict()'s deep copy
    return dumps(
        {
            k: v
            for k, v in data.items()
            if k not in ENTRY_FIELDS and v is not None and v != [] and v != {}
        }
    )


def _decode_tracks(rows: Sequence[Any]) -> list[Track]:
    tracks = []
    for r in rows:
        data = json.loads(r["track_json"])
        data["added_at"] = r["added_at"]
        if r["entry_json"]:
            data.update(json.loads(r["entry_json"]))
        tracks.append(Track.from_dict(data))
    return tracks


def _entry_json(track: Track, *, whole: bool = False) -> str | None:
    """The entry's own fields; ``whole``: the entire track too (an upload's rows)."""
    extra = {k: getattr(track, k) for k in ("added_by", "features") if getattr(track, k)}
    if whole:
        extra.update(json.loads(_canonical_track_json(track)))
    return dumps(extra) if extra else None


class SnapshotRepository(Repository):
    async def save(self, fetched: FetchResult) -> str:
        """Store a source's metadata and entries at its snapshot, in one transaction.

        Returns the snapshot key (see :func:`snapshot_key`) to pass to :meth:`load`.
        Tracks and artists are upserted (shared across playlists); the entries of this
        snapshot are replaced.
        """
        meta = fetched.meta
        key = snapshot_key(fetched)
        now = self._now()
        tracks = fetched.tracks
        # An upload is its uploader's (issue #13): its rows (names, images, labels — anything
        # the file says) stay in its own entries and never overwrite the shared track and
        # artist rows other members' playlists are read from.
        upload = meta.kind == "csv"
        artists: dict[str, tuple[str, str | None]] = {}
        links: list[tuple[str, str, int]] = []
        for t in [] if upload else tracks:
            single = len(t.artist_ids) == 1
            for pos, (aid, name) in enumerate(zip(t.artist_ids, t.artists, strict=False)):
                if not aid:
                    continue
                genres = dumps(t.genres) if single and t.genres else None
                if aid not in artists or genres:
                    artists[aid] = (name, genres)
                links.append((t.id, aid, pos))
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO playlists (id, kind, name, owner_id, owner_name, snapshot_id, total,"
                " meta_json, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, name = excluded.name, "
                "owner_id = excluded.owner_id, owner_name = excluded.owner_name, "
                "snapshot_id = excluded.snapshot_id, total = excluded.total, "
                "meta_json = excluded.meta_json, fetched_at = excluded.fetched_at",
                (
                    meta.id,
                    meta.kind,
                    meta.name,
                    meta.owner_id,
                    meta.owner_name,
                    meta.snapshot_id,
                    meta.total,
                    dumps(meta.to_dict()),
                    now,
                ),
            )
            if upload:  # a bare row for the foreign key, only if the track is new
                await conn.executemany(
                    "INSERT OR IGNORE INTO tracks (id, name, album, track_json, updated_at) "
                    "VALUES (?, '', NULL, ?, ?)",
                    ((t.id, dumps({"id": t.id}), now) for t in tracks),
                )
            else:
                await conn.executemany(
                    "INSERT INTO tracks (id, name, album, track_json, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                    "album = excluded.album, updated_at = excluded.updated_at, "
                    "track_json = json_patch(tracks.track_json, excluded.track_json)",
                    # Generators: rows are encoded in the database thread, not on the loop.
                    ((t.id, t.name, t.album, _canonical_track_json(t), now) for t in tracks),
                )
            await conn.executemany(
                "INSERT INTO artists (id, name, genres_json) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                "genres_json = coalesce(excluded.genres_json, artists.genres_json)",
                [(aid, name, genres) for aid, (name, genres) in artists.items()],
            )
            await conn.executemany(
                "INSERT OR IGNORE INTO track_artists (track_id, artist_id, position) "
                "VALUES (?, ?, ?)",
                links,
            )
            await conn.execute(
                "DELETE FROM playlist_tracks WHERE playlist_id = ? AND snapshot_id = ?",
                (meta.id, key),
            )
            await conn.executemany(
                "INSERT INTO playlist_tracks (playlist_id, snapshot_id, position, track_id,"
                " added_at, entry_json) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (meta.id, key, pos, t.id, t.added_at, _entry_json(t, whole=upload))
                    for pos, t in enumerate(tracks)
                ),
            )
            await conn.execute(
                "INSERT INTO playlist_snapshots (playlist_id, snapshot_id, meta_json,"
                " skipped_json, n_tracks, fetched_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(playlist_id, snapshot_id) DO UPDATE SET "
                "meta_json = excluded.meta_json, skipped_json = excluded.skipped_json, "
                "n_tracks = excluded.n_tracks, fetched_at = excluded.fetched_at",
                (meta.id, key, dumps(meta.to_dict()), dumps(fetched.skipped), len(tracks), now),
            )
        return key

    async def load(self, playlist_id: str, snapshot_id: str) -> FetchResult | None:
        """The entries saved for ``playlist_id`` at ``snapshot_id`` (or a content key)."""
        snap = await self.db.fetchone(
            "SELECT meta_json, skipped_json, n_tracks FROM playlist_snapshots "
            "WHERE playlist_id = ? AND snapshot_id = ?",
            (playlist_id, snapshot_id),
        )
        if snap is None:
            return None
        rows = await self.db.fetchall(
            "SELECT t.track_json, pt.added_at, pt.entry_json FROM playlist_tracks pt "
            "JOIN tracks t ON t.id = pt.track_id "
            "WHERE pt.playlist_id = ? AND pt.snapshot_id = ? ORDER BY pt.position",
            (playlist_id, snapshot_id),
        )
        if len(rows) != snap["n_tracks"]:
            return None  # incomplete (should not happen: saved in one transaction)
        # 10,000 rows take ~100 ms of pure Python: decoded in a thread, the loop runs meanwhile.
        tracks = await asyncio.to_thread(_decode_tracks, rows)
        return FetchResult(
            meta=PlaylistMeta.from_dict(json.loads(snap["meta_json"])),
            tracks=tracks,
            skipped=json.loads(snap["skipped_json"]),
        )
