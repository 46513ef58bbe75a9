"""Storage of what #14 keeps across failures, on SQLite and PostgreSQL: relink notices (told
once, compare-and-set) and the encrypted reply a resumed job finishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from bot.models import AnalysisRequest
from storage.accounts import AccountStore, TokenSet
from storage.store import Store
from tests.storage_backends import backend_fixture, database

storage_backend = backend_fixture()

TOKEN = "aW50ZXJhY3Rpb24tdG9rZW4tc2VjcmV0LXZhbHVl"


def cipher() -> MultiFernet:
    return MultiFernet([Fernet(Fernet.generate_key())])


async def test_a_relink_notice_is_claimed_once_and_cleared_by_a_new_link(tmp_path: Path):
    async with database(tmp_path / "n.sqlite3") as db:
        other = await database(tmp_path / "n.sqlite3").open()  # a second instance, same data
        try:
            mine, theirs = AccountStore(db, cipher()), AccountStore(other, cipher())
            tokens = TokenSet("a", "r", 0.0)
            await mine.save_account(7, spotify_user_id="s", display_name="S", tokens=tokens,
                                    scopes=[])  # fmt: skip
            await mine.drop_account(7, "expired")
            assert not await mine.has_account(7)
            assert await mine.claim_notice(8) is None  # nobody else's
            notice = await mine.claim_notice(7)
            assert notice is not None and notice.reason == "expired"
            assert await theirs.claim_notice(7) is None  # told once, by one instance
            await mine.release_notice(notice)  # Discord refused it: pending again
            assert await theirs.claim_notice(7) is not None
            await mine.drop_account(7, "unreadable")  # a new event is told again
            assert (await mine.claim_notice(7)).reason == "unreadable"
            await mine.drop_account(7, "expired")
            await mine.save_account(7, spotify_user_id="s", display_name="S", tokens=tokens,
                                    scopes=[])  # fmt: skip
            assert await mine.claim_notice(7) is None  # linked again: nothing to tell
            await mine.drop_account(7, "expired")
            assert await mine.delete_account(7) is False  # /privacy delete: the notice goes
            assert await mine.claim_notice(7) is None
        finally:
            await other.close()


async def test_a_jobs_reply_is_kept_encrypted_while_it_runs_and_its_token_is_valid(
    tmp_path: Path,
):
    now = [datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]
    key = cipher()
    async with database(tmp_path / "j.sqlite3") as db:
        jobs = Store(db, clock=lambda: now[0], cipher=key).jobs
        job_id = await jobs.create("k", AnalysisRequest(demo=True, user_id=1))
        kept = await jobs.attach_reply(
            job_id, application_id=5, token=TOKEN, message_id=9, valid_s=600
        )
        assert kept
        row = await db.fetchone("SELECT reply_blob FROM jobs WHERE id = ?", (job_id,))
        assert TOKEN.encode() not in bytes(row["reply_blob"])  # encrypted at rest
        ref = await jobs.reply(job_id)
        assert ref is not None and (ref.token, ref.message_id, ref.application_id) == (TOKEN, 9, 5)
        assert TOKEN not in repr(ref)
        assert await jobs.attach_reply(  # the same request again joined the job: kept too
            job_id, application_id=5, token=TOKEN + "2", message_id=11, valid_s=600, user_id=2
        )
        refs = await jobs.replies(job_id)
        assert [(r.message_id, r.user_id) for r in refs] == [(9, None), (11, 2)]
        assert (await jobs.reply(job_id)).message_id == 9  # the requester's, first
        assert await Store(db, cipher=cipher()).jobs.reply(job_id) is None  # key changed
        assert await Store(db).jobs.reply(job_id) is None  # no key: nothing read
        now[0] += timedelta(seconds=601)
        assert await jobs.reply(job_id) is None  # the token is too old to use
        assert not await jobs.attach_reply(
            job_id, application_id=5, token=TOKEN, message_id=9, valid_s=0
        )
        now[0] -= timedelta(seconds=601)
        await jobs.drop_reply(job_id)
        assert await jobs.reply(job_id) is None  # the end was announced: gone

        # A job killed between its end and the announcement leaves its token: dropped at start.
        assert await jobs.attach_reply(
            job_id, application_id=5, token=TOKEN, message_id=9, valid_s=600
        )
        await jobs.fail(job_id, "x", "failed")
        assert not await jobs.attach_reply(  # an ended job keeps no token
            job_id, application_id=5, token=TOKEN, message_id=9, valid_s=600
        )
        running = await jobs.create("k2", AnalysisRequest(demo=True, user_id=2))
        await jobs.attach_reply(running, application_id=5, token=TOKEN, message_id=10, valid_s=600)
        assert await jobs.drop_finished_replies() == 1
        assert await jobs.reply(job_id) is None and await jobs.reply(running) is not None
