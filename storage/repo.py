"""Queries for playlists, tracks, the feature cache, analyses, jobs and guild settings.

:class:`Store` is the one object the worker, the pipeline (as its ``FeatureCache``) and the
Discord layer use to read and write these tables. Bulk writes use ``executemany`` inside one
transaction: saving a 10,000-track playlist is a handful of statements, not 40,000.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.models import Analysis, FetchResult, PlaylistMeta, Track
from bot.pipeline import AnalysisRequest, Rendered, decode_text, encode_parts, parts_text
from bot.pipeline import params_key as _params_key
from storage.db import Database

# Track.to_dict() fields that belong to a playlist entry, not to the track itself.
ENTRY_FIELDS = ("added_at", "added_by", "features")
ACTIVE_STATES = ("queued", "fetching", "featurizing", "clustering", "rendering")
# "IN (?, ?, ...)" with one placeholder per active state (bind ACTIVE_STATES to it).
_IN_ACTIVE = f"IN ({', '.join('?' * len(ACTIVE_STATES))})"
# A finished job is never resumed: its uploaded CSV text (up to megabytes) is not kept.
_DROP_CSV = "json_set(request_json, '$.csv_text', json('null'))"
# Parameters: analysis_id, updated_at, job id.
_FINISH_JOB = (
    "UPDATE jobs SET state = 'done', analysis_id = ?, checkpoint_json = NULL,"
    f" request_json = {_DROP_CSV}, updated_at = ? WHERE id = ?"
)
FILE_NAMES = {
    "png": "clusters.png",
    "markdown": "report.md",
    "csv": "tracks.csv",
    "summary": "summary.json",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# Items per json call when encoding big containers piece by piece (see _dumps_chunked).
_CHUNK = 500


class RawJson(str):
    """Text that is already JSON: embedded as is by :func:`_dumps_chunked`."""


def _dumps_chunked(value: Any) -> str:
    """The same text as :func:`_dumps`, but big lists/dicts are encoded ``_CHUNK`` items at a time.

    Meant to run in a thread: one ``json.dumps`` of megabytes is a single C call holding the
    GIL (the event loop stalls for all of it); many short calls let the loop run in between.
    """
    if isinstance(value, RawJson):
        return str(value)
    if not _big(value):
        return _dumps(value)
    if isinstance(value, list):
        pieces = (_dumps_chunked(value[i : i + _CHUNK])[1:-1] for i in range(0, len(value), _CHUNK))
        if len(value) <= _CHUNK:
            pieces = (_dumps_chunked(v) for v in value)
        return "[" + ",".join(pieces) + "]"
    items = list(value.items())
    if len(items) > _CHUNK and not any(isinstance(v, RawJson) for _, v in items):
        pieces = (_dumps(dict(items[i : i + _CHUNK]))[1:-1] for i in range(0, len(items), _CHUNK))
        return "{" + ",".join(pieces) + "}"
    return "{" + ",".join(_dumps(k) + ":" + _dumps_chunked(v) for k, v in items) + "}"


def _big(value: Any) -> bool:
    """Holds raw JSON or a container of more than ``_CHUNK`` items (at any depth)."""
    if isinstance(value, RawJson):
        return True
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return False  # json.dumps converts such keys: leave it to one call
        return len(value) > _CHUNK or any(_big(v) for v in value.values())
    if isinstance(value, list):
        return len(value) > _CHUNK or any(_big(v) for v in value)
    return False


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
    return _dumps(
        {
            k: v
            for k, v in data.items()
            if k not in ENTRY_FIELDS and v is not None and v != [] and v != {}
        }
    )


def _decode_features(rows: Sequence[Any]) -> dict[str, dict[str, float] | None]:
    return {
        r["track_id"]: (json.loads(r["features_json"]) if r["features_json"] else None)
        for r in rows
    }


def _decode_tracks(rows: Sequence[Any]) -> list[Track]:
    tracks = []
    for r in rows:
        data = json.loads(r["track_json"])
        data["added_at"] = r["added_at"]
        if r["entry_json"]:
            data.update(json.loads(r["entry_json"]))
        tracks.append(Track.from_dict(data))
    return tracks


async def _result_text(analysis: Analysis, parts: list[str] | None) -> str:
    """``result_json`` of an analysis: its parts, one per line (see bot.pipeline.parts_text)."""
    if parts is None:
        parts = await asyncio.to_thread(encode_parts, analysis)
    head = _dumps(analysis.head_dict())
    return await asyncio.to_thread(parts_text, [head, *parts[1:]])


def _xy(coords: Sequence[float] | None) -> tuple[float | None, float | None]:
    if not coords or len(coords) < 2:
        return None, None
    return float(coords[0]), float(coords[1])


def _entry_json(track: Track) -> str | None:
    extra = {k: getattr(track, k) for k in ("added_by", "features") if getattr(track, k)}
    return _dumps(extra) if extra else None


def _job(row: Any) -> dict:
    """A ``jobs`` row with its request and checkpoint decoded."""
    job = dict(row)
    job["request"] = AnalysisRequest.from_dict(json.loads(job.pop("request_json")))
    cp = job.pop("checkpoint_json")
    job["checkpoint"] = json.loads(cp) if cp else {}
    return job


class Store:
    """All queries except accounts (storage/accounts.py) and digests (storage/digests.py).

    Implements the ``FeatureCache`` protocol (``get_many``/``put_many``) on ``track_features``:
    rows older than ``feature_cache_days`` count as absent; a row with NULL features means
    "this provider has nothing for this id" and is returned as ``None``.
    """

    def __init__(
        self,
        db: Database,
        *,
        feature_cache_days: int = 90,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.feature_cache_days = feature_cache_days
        self._clock = clock or (lambda: datetime.now(UTC))

    def _now(self) -> str:
        return self._clock().isoformat(timespec="seconds")

    # --- FeatureCache ---------------------------------------------------------------------
    async def get_many(self, source: str, ids: Sequence[str]) -> dict[str, dict[str, float] | None]:
        """Cached, unexpired features of ``ids`` from ``source`` (None = known missing)."""
        if not ids:
            return {}
        cutoff = (self._clock() - timedelta(days=self.feature_cache_days)).isoformat(
            timespec="seconds"
        )
        rows = await self.db.fetchall(
            "SELECT track_id, features_json FROM track_features "
            "WHERE source = ? AND fetched_at >= ? "
            "AND track_id IN (SELECT value FROM json_each(?))",
            (source, cutoff, _dumps(list(ids))),
        )
        # 10,000 rows take ~35 ms of pure Python: decoded in a thread, the loop runs meanwhile.
        return await asyncio.to_thread(_decode_features, rows)

    async def put_many(self, source: str, values: Mapping[str, dict[str, float] | None]) -> None:
        if not values:
            return
        now = self._now()
        await self.db.executemany(
            "INSERT INTO track_features (track_id, source, features_json, fetched_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(track_id, source) DO UPDATE SET "
            "features_json = excluded.features_json, fetched_at = excluded.fetched_at",
            # A generator: rows are encoded in the database thread, not on the event loop.
            (
                (tid, source, _dumps(feats) if feats is not None else None, now)
                for tid, feats in values.items()
            ),
        )

    # --- playlists and tracks -------------------------------------------------------------
    async def save_fetch(self, fetched: FetchResult) -> str:
        """Store a source's metadata and entries at its snapshot, in one transaction.

        Returns the snapshot key (see :func:`snapshot_key`) to pass to :meth:`load_fetch`.
        Tracks and artists are upserted (shared across playlists); the entries of this
        snapshot are replaced.
        """
        meta = fetched.meta
        key = snapshot_key(fetched)
        now = self._now()
        tracks = fetched.tracks
        artists: dict[str, tuple[str, str | None]] = {}
        links: list[tuple[str, str, int]] = []
        for t in tracks:
            single = len(t.artist_ids) == 1
            for pos, (aid, name) in enumerate(zip(t.artist_ids, t.artists, strict=False)):
                if not aid:
                    continue
                genres = _dumps(t.genres) if single and t.genres else None
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
                    _dumps(meta.to_dict()),
                    now,
                ),
            )
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
                    (meta.id, key, pos, t.id, t.added_at, _entry_json(t))
                    for pos, t in enumerate(tracks)
                ),
            )
            await conn.execute(
                "INSERT INTO playlist_snapshots (playlist_id, snapshot_id, meta_json,"
                " skipped_json, n_tracks, fetched_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(playlist_id, snapshot_id) DO UPDATE SET "
                "meta_json = excluded.meta_json, skipped_json = excluded.skipped_json, "
                "n_tracks = excluded.n_tracks, fetched_at = excluded.fetched_at",
                (meta.id, key, _dumps(meta.to_dict()), _dumps(fetched.skipped), len(tracks), now),
            )
        return key

    async def load_fetch(self, playlist_id: str, snapshot_id: str) -> FetchResult | None:
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

    # --- analyses -------------------------------------------------------------------------
    async def save_analysis(
        self,
        analysis: Analysis,
        rendered: Rendered,
        request: AnalysisRequest,
        *,
        params_key: str | None = None,
        job_id: int | None = None,
        parts: list[str] | None = None,
    ) -> int:
        """Store an analysis with its clusters, assignments and rendered files.

        ``parts``: ``bot.pipeline.encode_parts(analysis)`` when the caller has it already (the
        worker process makes it); only the head is then encoded again. ``result_json`` holds
        ``parts_text`` of the parts (older rows: one ``to_dict()`` object; both are read).
        Sets ``analysis.analysis_id``/``created_at``. When ``job_id`` is given, that job is
        marked done in the same transaction (so "done" always has its analysis).
        """
        now = self._now()
        analysis.created_at = analysis.created_at or now
        pkey = params_key or _params_key(request.k)
        src = analysis.source
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO analyses (playlist_id, snapshot_id, params_json, params_key, k,"
                " feature_mode, coverage_json, silhouette, requested_by, guild_id, channel_id,"
                " result_json, created_at, name, n_tracks)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, ?, ?)",
                (
                    src.id,
                    src.snapshot_id,
                    _dumps({"k": request.k}),
                    pkey,
                    analysis.k,
                    analysis.feature_mode,
                    _dumps(analysis.coverage),
                    analysis.silhouette,
                    request.user_id,
                    request.guild_id,
                    request.channel_id,
                    analysis.created_at,
                    src.name,
                    len(analysis.tracks),
                ),
            )
            analysis_id = int(cur.lastrowid or 0)
            analysis.analysis_id = analysis_id
            await conn.execute(
                "UPDATE analyses SET result_json = ? WHERE id = ?",
                (await _result_text(analysis, parts), analysis_id),
            )
            await conn.executemany(
                "INSERT INTO clusters (analysis_id, idx, name, description, size, centroid_json,"
                " representatives_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        analysis_id,
                        c.index,
                        c.name,
                        c.description,
                        c.size,
                        _dumps(c.centroid),
                        _dumps(c.representative_ids),
                    )
                    for c in analysis.clusters
                ],
            )
            await conn.executemany(
                "INSERT INTO assignments (analysis_id, track_id, cluster_idx, x, y)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (analysis_id, tid, idx, *_xy(analysis.coords.get(tid)))
                    for tid, idx in analysis.assignments.items()
                ],
            )
            await conn.executemany(
                "INSERT INTO analysis_files (analysis_id, name, content) VALUES (?, ?, ?)",
                [
                    (analysis_id, FILE_NAMES["png"], rendered.png),
                    (analysis_id, FILE_NAMES["markdown"], rendered.markdown.encode()),
                    (analysis_id, FILE_NAMES["csv"], rendered.csv.encode()),
                    (analysis_id, FILE_NAMES["summary"], _dumps(rendered.summary).encode()),
                ],
            )
            if job_id is not None:
                await conn.execute(_FINISH_JOB, (analysis_id, now, job_id))
        return analysis_id

    async def find_analysis(
        self, playlist_id: str, snapshot_id: str | None, params_key: str
    ) -> int | None:
        """Newest analysis of this playlist content with these parameters, if any."""
        row = await self.db.fetchone(
            "SELECT id FROM analyses WHERE playlist_id = ? AND snapshot_id IS ? "
            "AND params_key = ? ORDER BY id DESC LIMIT 1",
            (playlist_id, snapshot_id, params_key),
        )
        return int(row["id"]) if row else None

    async def get_analysis(
        self, analysis_id: int, *, on_part: Callable[[], None] | None = None
    ) -> Analysis | None:
        """The stored analysis. ``on_part()`` is called (in a thread) after each decoded part."""
        row = await self.db.fetchone(
            "SELECT result_json, created_at FROM analyses WHERE id = ?", (analysis_id,)
        )
        if row is None:
            return None
        # Decoded part by part in a thread: the event loop keeps running meanwhile.
        analysis = await asyncio.to_thread(decode_text, row["result_json"], on_part=on_part)
        analysis.analysis_id = analysis_id
        analysis.created_at = analysis.created_at or row["created_at"]
        return analysis

    async def get_file(self, analysis_id: int, name: str) -> bytes | None:
        row = await self.db.fetchone(
            "SELECT content FROM analysis_files WHERE analysis_id = ? AND name = ?",
            (analysis_id, name),
        )
        return bytes(row["content"]) if row else None

    async def get_rendered(self, analysis_id: int) -> Rendered | None:
        """All four rendered artefacts of a stored analysis."""
        rows = await self.db.fetchall(
            "SELECT name, content FROM analysis_files WHERE analysis_id = ?", (analysis_id,)
        )
        files = {r["name"]: bytes(r["content"]) for r in rows}
        if not all(name in files for name in FILE_NAMES.values()):
            return None
        return Rendered(
            png=files[FILE_NAMES["png"]],
            markdown=files[FILE_NAMES["markdown"]].decode(),
            csv=files[FILE_NAMES["csv"]].decode(),
            summary=json.loads(files[FILE_NAMES["summary"]]),
        )

    async def list_analyses(
        self, *, user_id: int | None = None, guild_id: int | None = None, limit: int = 10
    ) -> list[dict]:
        where, params = [], []
        if user_id is not None:
            where.append("requested_by = ?")
            params.append(user_id)
        if guild_id is not None:
            where.append("guild_id = ?")
            params.append(guild_id)
        sql = (
            "SELECT id, playlist_id, name, k, n_tracks, created_at, requested_by FROM analyses"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        rows = await self.db.fetchall(sql, (*params, limit))
        return [dict(r) for r in rows]

    # --- guild settings -------------------------------------------------------------------
    async def get_guild_settings(self, guild_id: int) -> dict:
        row = await self.db.fetchone(
            "SELECT links_enabled, settings_json FROM guild_settings WHERE guild_id = ?",
            (guild_id,),
        )
        if row is None:
            return {"links_enabled": True}
        out = json.loads(row["settings_json"] or "{}")
        out["links_enabled"] = bool(row["links_enabled"])
        return out

    async def set_links_enabled(self, guild_id: int, enabled: bool) -> None:
        await self.db.execute(
            "INSERT INTO guild_settings (guild_id, links_enabled, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(guild_id) DO UPDATE SET links_enabled = excluded.links_enabled, "
            "updated_at = excluded.updated_at",
            (guild_id, int(enabled), self._now()),
        )

    # --- jobs -----------------------------------------------------------------------------
    async def create_job(self, dedupe_key: str, request: AnalysisRequest) -> int:
        """Write a queued job (with the full request, CSV text included) before it runs."""
        now = self._now()
        return await self.db.execute(
            "INSERT INTO jobs (dedupe_key, state, request_json, user_id, guild_id, channel_id,"
            " created_at, updated_at) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?)",
            (
                dedupe_key,
                _dumps(request.to_dict()),
                request.user_id,
                request.guild_id,
                request.channel_id,
                now,
                now,
            ),
        )

    async def set_job_state(self, job_id: int, state: str, checkpoint: dict | None = None) -> None:
        """Commit a step: the new state and (when given) the checkpoint to resume from."""
        if checkpoint is None:
            await self.db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                (state, self._now(), job_id),
            )
        else:
            # Features/analysis checkpoints are megabytes: encoded in pieces, in a thread.
            text = await asyncio.to_thread(_dumps_chunked, checkpoint)
            await self.db.execute(
                "UPDATE jobs SET state = ?, checkpoint_json = ?, updated_at = ? WHERE id = ?",
                (state, text, self._now(), job_id),
            )

    async def finish_job(self, job_id: int, analysis_id: int) -> None:
        await self.db.execute(_FINISH_JOB, (analysis_id, self._now(), job_id))

    async def fail_job(self, job_id: int, code: str, message: str) -> None:
        await self.db.execute(
            "UPDATE jobs SET state = 'failed', error_code = ?, error_message = ?,"
            f" checkpoint_json = NULL, request_json = {_DROP_CSV}, updated_at = ? WHERE id = ?",
            (code, message, self._now(), job_id),
        )

    async def start_attempt(self, job_id: int) -> int:
        """Count one more run of a job; returns the attempt number."""
        await self.db.execute(
            "UPDATE jobs SET attempts = attempts + 1, updated_at = ? WHERE id = ?",
            (self._now(), job_id),
        )
        row = await self.db.fetchone("SELECT attempts FROM jobs WHERE id = ?", (job_id,))
        return int(row["attempts"]) if row else 0

    async def get_job(self, job_id: int) -> dict | None:
        row = await self.db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(row) if row is not None else None

    async def unfinished_jobs(self) -> list[dict]:
        """Jobs a previous process left running (oldest first), to resume at start-up."""
        rows = await self.db.fetchall(
            f"SELECT * FROM jobs WHERE state {_IN_ACTIVE} ORDER BY id", ACTIVE_STATES
        )
        return [_job(r) for r in rows]

    async def prune(self, *, keep_snapshots: int = 3, job_days: int = 30) -> dict[str, int]:
        """Drop old playlist snapshots' entries and old finished jobs. Returns counts.

        Keeps the newest ``keep_snapshots`` snapshots of each playlist and any snapshot an
        unfinished job's checkpoint points at; analyses are never pruned (they are re-shown).
        """
        cutoff = (self._clock() - timedelta(days=job_days)).isoformat(timespec="seconds")
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM playlist_snapshots AS s WHERE ("
                " SELECT count(*) FROM playlist_snapshots AS n WHERE n.playlist_id = s.playlist_id"
                " AND (n.fetched_at > s.fetched_at OR (n.fetched_at = s.fetched_at"
                " AND n.rowid > s.rowid))) >= ? AND NOT EXISTS ("
                f" SELECT 1 FROM jobs AS j WHERE j.state {_IN_ACTIVE}"
                " AND json_extract(j.checkpoint_json, '$.fetch.playlist_id') = s.playlist_id"
                " AND json_extract(j.checkpoint_json, '$.fetch.snapshot') = s.snapshot_id)",
                (keep_snapshots, *ACTIVE_STATES),
            )
            snapshots = cur.rowcount
            await conn.execute(
                "DELETE FROM playlist_tracks AS t WHERE NOT EXISTS (SELECT 1 FROM"
                " playlist_snapshots AS s WHERE s.playlist_id = t.playlist_id"
                " AND s.snapshot_id = t.snapshot_id)"
            )
            cur = await conn.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed') AND updated_at < ?",
                (cutoff,),
            )
            jobs = cur.rowcount
        return {"snapshots": snapshots, "jobs": jobs}

    async def count_active_jobs(
        self, *, user_id: int | None = None, guild_id: int | None = None
    ) -> int:
        col, value = ("user_id", user_id) if user_id is not None else ("guild_id", guild_id)
        if value is None:
            return 0
        row = await self.db.fetchone(
            f"SELECT count(*) FROM jobs WHERE {col} = ? AND state {_IN_ACTIVE}",
            (value, *ACTIVE_STATES),
        )
        return int(row[0]) if row else 0
