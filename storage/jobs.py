"""Persisted analysis jobs (``jobs``): state, request, checkpoint, attempts, outcome, and the
reply a resumed job finishes (:class:`ReplyRef`, encrypted at rest)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet

from bot.codecs import dumps, dumps_chunked
from bot.models import AnalysisRequest
from storage.db import Database
from storage.repository import Repository

log = logging.getLogger(__name__)

UNREADABLE_MESSAGE = "This analysis couldn't be resumed after a restart. Please ask again."

ACTIVE_STATES = ("queued", "fetching", "featurizing", "clustering", "rendering")
# "IN (?, ?, ...)" with one placeholder per active state (bind ACTIVE_STATES to it).
IN_ACTIVE = f"IN ({', '.join('?' * len(ACTIVE_STATES))})"
# A finished job is never resumed: its uploaded CSV text (up to megabytes) is not kept.
_DROP_CSV = "json_set(request_json, '$.csv_text', json('null'))"
# Parameters: analysis_id, updated_at, job id. Also run by AnalysisRepository.save, in the
# transaction that stores the analysis (so "done" always has its analysis).
FINISH_JOB = (
    "UPDATE jobs SET state = 'done', analysis_id = ?, checkpoint_json = NULL,"
    f" request_json = {_DROP_CSV}, updated_at = ? WHERE id = ?"
)


@dataclass(frozen=True)
class ReplyRef:
    """What a resumed job needs to finish an interaction reply it was asked from: the
    application id and interaction token (a webhook: a secret, valid 15 minutes), the
    original response's message id, when the token expires (UTC), and who asked where (a job
    joined by an identical request keeps each requester's reply)."""

    application_id: int
    token: str
    message_id: int
    expires_at: datetime
    user_id: int | None = None  # None: the job's requester (kept before joiners were)
    channel_id: int | None = None

    def __repr__(self) -> str:  # never print the token by accident
        return f"ReplyRef(message_id={self.message_id}, expires_at={self.expires_at!r})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "application_id": self.application_id,
            "token": self.token,
            "message_id": self.message_id,
            "expires_at": self.expires_at.isoformat(),
            "user_id": self.user_id,
            "channel_id": self.channel_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplyRef:
        def optional(key: str) -> int | None:
            value = data.get(key)
            return None if value is None else int(value)

        return cls(
            application_id=int(data["application_id"]),
            token=str(data["token"]),
            message_id=int(data["message_id"]),
            expires_at=datetime.fromisoformat(data["expires_at"]),
            user_id=optional("user_id"),
            channel_id=optional("channel_id"),
        )


@dataclass
class JobRow:
    """A ``jobs`` row with its request and checkpoint decoded."""

    id: int
    dedupe_key: str
    state: str
    request: AnalysisRequest
    user_id: int | None
    guild_id: int | None
    channel_id: int | None
    analysis_id: int | None
    error_code: str | None
    error_message: str | None
    attempts: int
    created_at: str
    updated_at: str
    checkpoint: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRow:
        cp = row["checkpoint_json"]
        return cls(
            id=row["id"],
            dedupe_key=row["dedupe_key"],
            state=row["state"],
            request=AnalysisRequest.from_dict(json.loads(row["request_json"])),
            user_id=row["user_id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            analysis_id=row["analysis_id"],
            error_code=row["error_code"],
            error_message=row["error_message"],
            attempts=row["attempts"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            checkpoint=json.loads(cp) if cp else {},
        )


class JobRepository(Repository):
    """``cipher``: encrypts the replies of :meth:`attach_reply` (the linked-account key,
    :func:`storage.accounts.load_cipher`); without one, replies are not kept."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        *,
        cipher: MultiFernet | None = None,
    ) -> None:
        super().__init__(db, clock)
        self.cipher = cipher

    async def create(self, dedupe_key: str, request: AnalysisRequest) -> int:
        """Write a queued job (with the full request, CSV text included) before it runs."""
        now = self._now()
        return await self.db.execute(
            "INSERT INTO jobs (dedupe_key, state, request_json, user_id, guild_id, channel_id,"
            " created_at, updated_at) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?)",
            (
                dedupe_key,
                dumps(request.to_dict()),
                request.user_id,
                request.guild_id,
                request.channel_id,
                now,
                now,
            ),
        )

    async def set_state(
        self, job_id: int, state: str, checkpoint: dict[str, Any] | None = None
    ) -> None:
        """Commit a step: the new state and (when given) the checkpoint to resume from."""
        if checkpoint is None:
            await self.db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                (state, self._now(), job_id),
            )
        else:
            # Features/analysis checkpoints are megabytes: encoded in pieces, in a thread.
            text = await asyncio.to_thread(dumps_chunked, checkpoint)
            await self.db.execute(
                "UPDATE jobs SET state = ?, checkpoint_json = ?, updated_at = ? WHERE id = ?",
                (state, text, self._now(), job_id),
            )

    async def finish(self, job_id: int, analysis_id: int) -> None:
        await self.db.execute(FINISH_JOB, (analysis_id, self._now(), job_id))

    async def fail(self, job_id: int, code: str, message: str) -> None:
        await self.db.execute(
            "UPDATE jobs SET state = 'failed', error_code = ?, error_message = ?,"
            f" checkpoint_json = NULL, request_json = {_DROP_CSV}, updated_at = ? WHERE id = ?",
            (code, message, self._now(), job_id),
        )

    async def start_attempt(self, job_id: int, *, seen: int) -> int | None:
        """Claim a run of an active job: one more attempt, compare-and-set on ``seen`` (the
        attempts the caller read when it took the job; 0 for a new one).

        Returns the attempt number, or None when another process started the job meanwhile
        (or it ended): two processes on one database never both run it.
        """
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET attempts = attempts + 1, updated_at = ?"
                f" WHERE id = ? AND attempts = ? AND state {IN_ACTIVE}",
                (self._now(), job_id, seen, *ACTIVE_STATES),
            )
            return seen + 1 if cur.rowcount == 1 else None

    async def get(self, job_id: int) -> JobRow | None:
        row = await self.db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return JobRow.from_row(row) if row is not None else None

    async def unfinished(self) -> list[JobRow]:
        """Jobs a previous process left running (oldest first), to resume at start-up.

        A row this version can't read (edited by hand, damaged) is failed instead: one such
        row stopped the bot's start-up with a JSONDecodeError, and no other job resumed."""
        rows = await self.db.fetchall(
            f"SELECT * FROM jobs WHERE state {IN_ACTIVE} ORDER BY id", ACTIVE_STATES
        )
        jobs = []
        for row in rows:
            try:
                jobs.append(JobRow.from_row(row))
            except (ValueError, TypeError, KeyError) as exc:
                log.warning(
                    "job %s can't be read (%s); marked failed instead of resumed",
                    row["id"],
                    type(exc).__name__,
                )
                # Not self.fail(): its json_set on request_json (dropping an upload's text)
                # errors on the damaged JSON this row is failed for; the whole request goes.
                await self.db.execute(
                    "UPDATE jobs SET state = 'failed', error_code = 'unreadable',"
                    " error_message = ?, checkpoint_json = NULL, request_json = '{}',"
                    " reply_blob = NULL, updated_at = ? WHERE id = ?",
                    (UNREADABLE_MESSAGE, self._now(), row["id"]),
                )
        return jobs

    async def count_active(self, *, user_id: int | None = None, guild_id: int | None = None) -> int:
        col, value = ("user_id", user_id) if user_id is not None else ("guild_id", guild_id)
        if value is None:
            return 0
        row = await self.db.fetchone(
            f"SELECT count(*) FROM jobs WHERE {col} = ? AND state {IN_ACTIVE}",
            (value, *ACTIVE_STATES),
        )
        return int(row[0]) if row else 0

    # --- the reply a resumed job finishes ---------------------------------------------------
    async def attach_reply(
        self,
        job_id: int,
        *,
        application_id: int,
        token: str,
        message_id: int,
        valid_s: float,
        user_id: int | None = None,
        channel_id: int | None = None,
    ) -> bool:
        """Keep, encrypted, what a resumed job needs to edit the reply ``message_id`` through
        the interaction ``token``, usable ``valid_s`` more seconds; a job joined by identical
        requests keeps one per requester. False: not kept (no cipher, the token is already
        too old, or the job has ended)."""
        if self.cipher is None or valid_s <= 0:
            return False
        ref = ReplyRef(
            application_id=application_id,
            token=token,
            message_id=message_id,
            expires_at=self._clock() + timedelta(seconds=valid_s),
            user_id=user_id,
            channel_id=channel_id,
        )
        # Compare-and-set on the stored blob (Fernet blobs are unique): two requesters joining
        # at once, maybe in two bot processes, both keep theirs. Only while the job runs: one
        # that already ended (a reused result is quick) has been announced.
        for _ in range(8):
            row = await self.db.fetchone("SELECT reply_blob FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return False
            old = row["reply_blob"]
            refs = [r.to_dict() for r in self._decrypt_replies(job_id, old)] if old else []
            blob = self.cipher.encrypt(json.dumps([*refs, ref.to_dict()]).encode())
            same = "reply_blob IS NULL" if old is None else "reply_blob = ?"
            async with self.db.transaction() as conn:
                cur = await conn.execute(
                    f"UPDATE jobs SET reply_blob = ? WHERE id = ? AND state {IN_ACTIVE} AND {same}",
                    (blob, job_id, *ACTIVE_STATES, *(() if old is None else (old,))),
                )
            if cur.rowcount == 1:
                return True
            if not await self._active(job_id):
                return False
        return False

    async def _active(self, job_id: int) -> bool:
        row = await self.db.fetchone(
            f"SELECT 1 FROM jobs WHERE id = ? AND state {IN_ACTIVE}", (job_id, *ACTIVE_STATES)
        )
        return row is not None

    def _decrypt_replies(self, job_id: int, blob: Any) -> list[ReplyRef]:
        if self.cipher is None:
            return []
        try:
            data = json.loads(self.cipher.decrypt(bytes(blob)))
        except InvalidToken:
            log.warning("the stored reply of job %d can't be decrypted (key changed?)", job_id)
            return []
        # One reply (a dict) was kept before joiners' replies were.
        return [ReplyRef.from_dict(d) for d in (data if isinstance(data, list) else [data])]

    async def replies(self, job_id: int) -> list[ReplyRef]:
        """Every reply kept with the job, the requester's first, expired ones included (the
        caller posts to their channel instead); [] when none, or none can be decrypted."""
        row = await self.db.fetchone("SELECT reply_blob FROM jobs WHERE id = ?", (job_id,))
        if row is None or row["reply_blob"] is None:
            return []
        return self._decrypt_replies(job_id, row["reply_blob"])

    def usable(self, ref: ReplyRef) -> bool:
        """Whether the reply's token is still valid, by our record."""
        return self._clock() < ref.expires_at

    async def reply(self, job_id: int) -> ReplyRef | None:
        """The requester's reply while its token is still valid; None when there is none, it
        has expired, or it can't be decrypted any more (the key changed)."""
        refs = await self.replies(job_id)
        return refs[0] if refs and self.usable(refs[0]) else None

    async def drop_reply(self, job_id: int) -> None:
        """The job's end was announced: its interaction token is not kept any longer."""
        await self.db.execute(
            "UPDATE jobs SET reply_blob = NULL WHERE id = ? AND reply_blob IS NOT NULL", (job_id,)
        )

    async def drop_finished_replies(self) -> int:
        """Tokens of jobs that ended while nobody announced them (a crash in between)."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET reply_blob = NULL WHERE reply_blob IS NOT NULL"
                f" AND state NOT {IN_ACTIVE}",
                ACTIVE_STATES,
            )
            return cur.rowcount
