"""Stored analyses: their result, clusters, assignments and rendered files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.codecs import decode_text, dumps, encode_parts, parts_text
from bot.models import ARTEFACTS, Analysis, AnalysisRequest, Rendered
from storage.jobs import FINISH_JOB
from storage.repository import Repository


@dataclass
class AnalysisListing:
    """One line of an analysis history (no result decoded)."""

    id: int
    playlist_id: str
    name: str | None
    k: int
    n_tracks: int | None
    created_at: str
    requested_by: int | None


@dataclass
class AnalysisOwner:
    """Who asked for an analysis and where: enough to decide who may see it."""

    requested_by: int | None
    guild_id: int | None


def _result_text(analysis: Analysis) -> str:
    """``result_json`` of an analysis: its parts, one per line (see bot.codecs.parts_text)."""
    return parts_text(encode_parts(analysis))


def _xy(coords: Sequence[float] | None) -> tuple[float | None, float | None]:
    if not coords or len(coords) < 2:
        return None, None
    return float(coords[0]), float(coords[1])


class AnalysisRepository(Repository):
    async def save(
        self,
        analysis: Analysis,
        rendered: Rendered,
        request: AnalysisRequest,
        *,
        params_key: str | None = None,
        job_id: int | None = None,
        result_text: str | None = None,
    ) -> int:
        """Store an analysis with its clusters, assignments and rendered files.

        ``result_json`` holds ``bot.codecs.parts_text`` of the analysis' parts (older rows: one
        ``to_dict()`` object; both are read). ``result_text``: that text when the caller has it
        already (the worker process makes it), bound as it is: no copy of it is made here (at
        10,000 tracks it is 8 MB; re-encoding its head to add the new id made another, at the
        bot's peak). Its head is encoded before the row exists, so its ``analysis_id`` is null:
        the row's id is the analysis' id (:meth:`get` sets it).
        Sets ``analysis.analysis_id``/``created_at``. When ``job_id`` is given, that job is
        marked done in the same transaction (so "done" always has its analysis).
        """
        now = self._now()
        analysis.created_at = analysis.created_at or now
        if result_text is None:
            result_text = await asyncio.to_thread(_result_text, analysis)
        pkey = params_key or request.params_key()
        src = analysis.source
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO analyses (playlist_id, snapshot_id, params_json, params_key, k,"
                " feature_mode, coverage_json, silhouette, requested_by, guild_id, channel_id,"
                " result_json, created_at, name, n_tracks)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    src.id,
                    src.snapshot_id,
                    dumps({"k": request.k}),
                    pkey,
                    analysis.k,
                    analysis.feature_mode,
                    dumps(analysis.coverage),
                    analysis.silhouette,
                    request.user_id,
                    request.guild_id,
                    request.channel_id,
                    result_text,
                    analysis.created_at,
                    src.name,
                    len(analysis.tracks),
                ),
            )
            analysis_id = int(cur.lastrowid or 0)
            analysis.analysis_id = analysis_id
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
                        dumps(c.centroid),
                        dumps(c.representative_ids),
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
                    (analysis_id, ARTEFACTS.png, rendered.png),
                    (analysis_id, ARTEFACTS.markdown, rendered.markdown.encode()),
                    (analysis_id, ARTEFACTS.csv, rendered.csv.encode()),
                    (analysis_id, ARTEFACTS.summary, dumps(rendered.summary).encode()),
                    (analysis_id, ARTEFACTS.profile, rendered.profile_png),
                ],
            )
            if job_id is not None:
                await conn.execute(FINISH_JOB, (analysis_id, now, job_id))
        return analysis_id

    async def find(self, playlist_id: str, snapshot_id: str | None, params_key: str) -> int | None:
        """Newest analysis of this playlist content with these parameters, if any."""
        row = await self.db.fetchone(
            "SELECT id FROM analyses WHERE playlist_id = ? AND snapshot_id IS ? "
            "AND params_key = ? ORDER BY id DESC LIMIT 1",
            (playlist_id, snapshot_id, params_key),
        )
        return int(row["id"]) if row else None

    async def coverage(self, analysis_id: int) -> dict[str, int]:
        """Tracks per feature source of a stored analysis ("metadata": those without audio
        features), without decoding the analysis."""
        row = await self.db.fetchone(
            "SELECT coverage_json FROM analyses WHERE id = ?", (analysis_id,)
        )
        return dict(json.loads(row["coverage_json"])) if row else {}

    async def get(
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

    async def file(self, analysis_id: int, name: str) -> bytes | None:
        row = await self.db.fetchone(
            "SELECT content FROM analysis_files WHERE analysis_id = ? AND name = ?",
            (analysis_id, name),
        )
        return bytes(row["content"]) if row else None

    async def rendered(self, analysis_id: int) -> Rendered | None:
        """All four rendered artefacts of a stored analysis."""
        rows = await self.db.fetchall(
            "SELECT name, content FROM analysis_files WHERE analysis_id = ?", (analysis_id,)
        )
        files = {r["name"]: bytes(r["content"]) for r in rows}
        if not all(name in files for name in ARTEFACTS.all()):
            return None
        return Rendered(
            png=files[ARTEFACTS.png],
            markdown=files[ARTEFACTS.markdown].decode(),
            csv=files[ARTEFACTS.csv].decode(),
            summary=json.loads(files[ARTEFACTS.summary]),
            profile_png=files.get(ARTEFACTS.profile, b""),
        )

    async def owner(self, analysis_id: int) -> AnalysisOwner | None:
        """Who requested ``analysis_id`` and in which server (None: no such analysis)."""
        row = await self.db.fetchone(
            "SELECT requested_by, guild_id FROM analyses WHERE id = ?", (analysis_id,)
        )
        return AnalysisOwner(row["requested_by"], row["guild_id"]) if row else None

    async def recent(
        self, *, user_id: int | None = None, guild_id: int | None = None, limit: int = 10
    ) -> list[AnalysisListing]:
        """Newest first; filtered to a requester and/or a server when given."""
        where: list[str] = []
        params: list[int] = []
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
        return [AnalysisListing(**dict(r)) for r in rows]
