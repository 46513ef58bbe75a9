"""JobQueue: states and checkpoints, dedupe, reuse, limits, failures, progress, the pool."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from bot.errors import LimitReached, NotOwner, QuotaExceeded, RateLimited, TooLarge
from bot.jobs import JobCrashed, JobQueue
from bot.jobs.queue import MAX_ATTEMPTS
from bot.models import AnalysisRequest
from bot.pipeline import PipelineContext
from storage.store import Store
from tests.jobs_fakes import FakePipeline, Recorder, job_settings, link, open_queue, sample_csv
from tests.storage_backends import backend_fixture, database

storage_backend = backend_fixture()


@pytest.fixture
async def env(tmp_path, monkeypatch):
    fake = FakePipeline().install(monkeypatch)
    db, store, queue = await open_queue(tmp_path / "jobs.sqlite3")
    rec = Recorder()
    queue.add_listener(rec.listener)
    yield fake, store, queue, rec
    await queue.close()
    await db.close()


async def result(handle):
    return await asyncio.wait_for(handle.result(), 60)


async def test_job_runs_through_every_state(env):
    _fake, store, queue, rec = env
    committed: list[str] = []
    frozen: dict[str, int] = {}

    async def on_commit(job_id, state, checkpoint):
        committed.append(state)
        frozen[state] = gc.get_freeze_count()
        job = await store.jobs.get(job_id)
        assert job.state == state  # the state is in SQLite before the next step runs

    queue.runner.on_commit = on_commit
    handle = await queue.submit(AnalysisRequest(link=link(1), user_id=5), rec.progress)
    row = await store.jobs.get(handle.job_id)
    assert row.state in ("queued", "fetching", "featurizing")  # written before running
    outcome = await result(handle)

    assert not handle.shared and not outcome.reused
    assert committed == ["fetching", "featurizing", "clustering", "rendering", "done"]
    assert rec.stages == ["queued", "fetching", "clustering", "rendering", "done"]
    assert all(e.job_id == handle.job_id for e in rec.events)
    assert any(e.done == 10 and e.total == 10 for e in rec.events)

    job = await store.jobs.get(handle.job_id)
    assert job.state == "done" and job.analysis_id == outcome.analysis_id
    assert job.checkpoint == {} and job.attempts == 1
    stored = await store.analyses.get(outcome.analysis_id)
    assert stored.to_dict() == outcome.analysis.to_dict()
    assert rec.ended == [(handle.job_id, outcome, None)]
    assert queue.active_job_ids == []
    # The job's loaded data is kept out of full GC collections while it runs, not after.
    assert frozen["clustering"] > 0 and frozen["fetching"] == 0
    assert gc.get_freeze_count() == 0


async def test_worker_passes_the_track_limit(tmp_path, monkeypatch):
    fake = FakePipeline().install(monkeypatch)
    db, _store, queue = await open_queue(
        tmp_path / "l.sqlite3", job_settings(max_playlist_tracks=77)
    )
    try:
        await result(await queue.submit(AnalysisRequest(link=link(1))))
        await result(await queue.submit(AnalysisRequest(link=link(2), max_tracks=20)))
        assert fake.seen_max_tracks == [77, 20]
    finally:
        await queue.close()
        await db.close()


async def test_identical_requests_share_one_job(env):
    fake, _store, queue, _rec = env
    gate = fake.hold("fetch")
    first, second = Recorder(), Recorder()
    h1 = await queue.submit(AnalysisRequest(link=link(1), user_id=1, channel_id=10), first.progress)
    await fake.reached("fetch")
    h2 = await queue.submit(
        AnalysisRequest(link=link(1) + "?si=abc", user_id=2, channel_id=20), second.progress
    )
    h3 = await queue.submit(AnalysisRequest(link=link(1), k=4, user_id=3))
    assert (h2.job_id, h2.shared) == (h1.job_id, True)
    assert h3.job_id != h1.job_id and not h3.shared
    gate.set()
    o1, o2, o3 = await result(h1), await result(h2), await result(h3)
    assert o1.analysis_id == o2.analysis_id != o3.analysis_id
    assert fake.calls["fetch"] == 2  # one for the shared job, one for k=4
    # the late joiner got the last event at once, then everything after it
    assert second.events[0].stage == "fetching"
    assert [e.stage for e in second.events][-1] == "done"
    assert first.stages[-1] == "done"


async def test_a_linked_reader_never_shares_with_another_user(env):
    """A job reading with user 1's own Spotify token must not be joined by user 2."""
    fake, _store, queue, _rec = env

    async def tokens(user_id: int) -> str | None:
        return "user-one-token" if user_id == 1 else None

    queue.ctx.user_tokens = tokens
    gate = fake.hold("fetch")
    h1 = await queue.submit(AnalysisRequest(link=link(1), user_id=1))
    await fake.reached("fetch")
    h2 = await queue.submit(AnalysisRequest(link=link(1), user_id=2))
    h3 = await queue.submit(AnalysisRequest(link=link(1), user_id=3))  # app token, like user 2
    h4 = await queue.submit(AnalysisRequest(link=link(1), user_id=1))  # same reader: shares
    assert not h2.shared and h2.job_id != h1.job_id
    assert h3.shared and h3.job_id == h2.job_id
    assert h4.shared and h4.job_id == h1.job_id
    gate.set()
    for handle in (h1, h2, h3, h4):
        await result(handle)
    assert fake.calls["fetch"] == 2


async def test_unchanged_snapshot_reuses_the_stored_analysis(env):
    fake, _store, queue, _rec = env
    first = await result(await queue.submit(AnalysisRequest(link=link(1))))
    again = await result(await queue.submit(AnalysisRequest(link=link(1))))
    assert again.reused and again.analysis_id == first.analysis_id
    assert again.rendered == first.rendered
    assert fake.calls["meta"] == 2 and fake.calls["items"] == 1
    assert fake.calls["cluster"] == 1 and fake.calls["render"] == 1

    # other parameters: stored entries reused (no items refetch), clustering runs
    other_k = await result(await queue.submit(AnalysisRequest(link=link(1), k=5)))
    assert not other_k.reused and other_k.analysis.k == 5
    assert fake.calls["items"] == 1 and fake.calls["cluster"] == 2

    # a new snapshot: everything again
    fake.snapshots[f"{1:022d}"] = "s2"
    changed = await result(await queue.submit(AnalysisRequest(link=link(1))))
    assert not changed.reused and changed.analysis_id != first.analysis_id
    assert fake.calls["items"] == 2 and fake.calls["cluster"] == 3


async def test_user_and_guild_limits(tmp_path, monkeypatch):
    fake = FakePipeline().install(monkeypatch)
    settings = job_settings(max_jobs_per_user=1, max_jobs_per_guild=2)
    db, _store, queue = await open_queue(tmp_path / "lim.sqlite3", settings)
    try:
        gate = fake.hold("fetch")
        h1 = await queue.submit(AnalysisRequest(link=link(1), user_id=1, guild_id=9))
        with pytest.raises(LimitReached) as info:
            await queue.submit(AnalysisRequest(link=link(2), user_id=1, guild_id=9))
        assert "limit is 1" in info.value.user_message
        # joining an identical running job is not a new job: allowed
        shared = await queue.submit(AnalysisRequest(link=link(1), user_id=1, guild_id=9))
        assert shared.shared
        h2 = await queue.submit(AnalysisRequest(link=link(3), user_id=2, guild_id=9))
        with pytest.raises(LimitReached) as info:
            await queue.submit(AnalysisRequest(link=link(4), user_id=3, guild_id=9))
        assert "This server" in info.value.user_message
        other_guild = await queue.submit(AnalysisRequest(link=link(4), user_id=3, guild_id=8))
        gate.set()
        for h in (h1, h2, other_guild):
            await result(h)
        # finished jobs free their slot
        await result(await queue.submit(AnalysisRequest(link=link(2), user_id=1, guild_id=9)))
    finally:
        await queue.close()
        await db.close()


async def test_pipeline_error_fails_the_job(env):
    fake, store, queue, rec = env
    fake.errors["fetch"] = NotOwner("You can only analyse playlists you own.")
    handle = await queue.submit(AnalysisRequest(link=link(1)), rec.progress)
    with pytest.raises(NotOwner):
        await result(handle)
    job = await store.jobs.get(handle.job_id)
    assert (job.state, job.error_code) == ("failed", "not_owner")
    assert job.error_message == "You can only analyse playlists you own."
    assert rec.ended[0][0] == handle.job_id and isinstance(rec.ended[0][2], NotOwner)
    assert rec.events[-1].stage == "failed"


@pytest.mark.parametrize("error_cls", [RateLimited, QuotaExceeded])
async def test_rate_limits_fail_fast_with_the_wait(env, error_cls):
    fake, store, queue, _rec = env
    fake.errors["featurize"] = error_cls("Spotify asks us to wait 2 hours.", retry_after=7200)
    handle = await queue.submit(AnalysisRequest(link=link(1)))
    with pytest.raises(error_cls) as info:
        await result(handle)
    assert info.value.retry_after == 7200
    job = await store.jobs.get(handle.job_id)
    assert job.state == "failed" and "2 hours" in job.error_message


async def test_unexpected_error_gets_an_incident_id(env, caplog):
    fake, store, queue, rec = env
    fake.errors["cluster"] = RuntimeError("boom with token=sekrit, header Bearer abc.def")
    caplog.set_level(logging.ERROR, logger="bot.jobs")
    handle = await queue.submit(AnalysisRequest(link=link(1)))
    with pytest.raises(JobCrashed) as info:
        await result(handle)
    incident = info.value.incident_id
    assert incident in info.value.user_message and "sekrit" not in info.value.user_message
    job = await store.jobs.get(handle.job_id)
    assert job.error_code == "internal" and incident in job.error_message
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert incident in logged and "RuntimeError" in logged and "cluster_step" in logged
    assert "sekrit" not in logged and "Bearer abc" not in logged
    assert isinstance(rec.ended[0][2], JobCrashed)


async def test_bad_link_is_refused_before_a_job_exists(env):
    _fake, store, queue, _rec = env
    from bot.errors import InvalidInput, InvalidLink

    with pytest.raises(InvalidLink):
        await queue.submit(AnalysisRequest(link="https://example.com/nope"))
    with pytest.raises(InvalidInput):
        await queue.submit(AnalysisRequest())
    assert (await store.db.fetchone("SELECT count(*) FROM jobs"))[0] == 0


async def test_progress_callback_errors_do_not_fail_the_job(env):
    _fake, _store, queue, _rec = env

    async def broken(_event):
        raise RuntimeError("discord edit failed")

    outcome = await result(await queue.submit(AnalysisRequest(link=link(1)), broken))
    assert outcome.analysis_id


async def test_a_slow_progress_edit_does_not_hold_the_job_back(env):
    """Steps run while a progress edit is still in flight; every event still arrives, in
    order, and the result only after the last one (so no late edit overwrites it)."""
    fake, _store, queue, _rec = env
    edit_may_finish = asyncio.Event()
    seen: list[str] = []

    async def slow_edit(event):
        seen.append(event.stage)
        if event.stage == "fetching":
            await edit_may_finish.wait()  # e.g. Discord answering slowly

    fake.hold("featurize")
    handle = await queue.submit(AnalysisRequest(link=link(1)), slow_edit)
    await fake.reached("featurize")  # the job went on past the edit still in flight
    assert seen == ["queued", "fetching"] and not handle.done()
    fake.gates["featurize"].set()
    await asyncio.sleep(0.05)
    assert not handle.done()  # done, but its "done" event waits behind the slow edit
    edit_may_finish.set()
    outcome = await result(handle)
    assert outcome.analysis_id
    assert seen == ["queued", "fetching", "fetching", "clustering", "rendering", "done"]


async def test_pages_are_kept_out_of_full_collections_as_they_arrive(env):
    """Frozen from the first progress event of the fetch, not only once it has ended (a
    10,000-track fetch's objects made 75-130 ms full collections on the event loop)."""
    fake, _store, queue, _rec = env
    fake.hold("fetch")
    handle = await queue.submit(AnalysisRequest(link=link(1)))
    await fake.reached("fetch")  # the fake reports its first page, then waits here
    assert gc.get_freeze_count() > 0
    fake.gates["fetch"].set()
    await result(handle)
    assert gc.get_freeze_count() == 0


async def test_close_interrupts_and_next_start_resumes(tmp_path, monkeypatch):
    fake = FakePipeline().install(monkeypatch)
    path = tmp_path / "restart.sqlite3"
    db, store, queue = await open_queue(path)
    fake.hold("featurize")
    handle = await queue.submit(AnalysisRequest(link=link(1), channel_id=42))
    await fake.reached("featurize")
    await queue.close()
    with pytest.raises(Exception) as info:
        await result(handle)
    assert getattr(info.value, "code", "") == "interrupted"
    assert (await store.jobs.get(handle.job_id)).state == "featurizing"
    await db.close()

    fake.gates.clear()
    rec = Recorder()
    db, store, queue = await open_queue(path, listener=rec.listener)
    try:
        await asyncio.wait_for(rec.ended_event.wait(), 60)
        job_id, outcome, error = rec.ended[0]
        assert job_id == handle.job_id and error is None and not outcome.reused
        assert fake.calls["fetch"] == 1 and fake.calls["featurize"] == 2  # no refetch
        job = await store.jobs.get(job_id)
        assert job.state == "done" and job.attempts == 2
        assert job.request.channel_id == 42
    finally:
        await queue.close()
        await db.close()


async def test_a_job_row_that_cannot_be_read_is_failed_and_the_others_resume(
    tmp_path, monkeypatch, caplog
):
    """One unreadable row (edited by hand, damaged) stopped the bot's start-up with a
    JSONDecodeError traceback, and no other job resumed."""
    FakePipeline().install(monkeypatch)
    path = tmp_path / "unreadable.sqlite3"
    db, store, queue = await open_queue(path)
    await queue.close()
    bad = await store.jobs.create("playlist:x|k", AnalysisRequest(link=link(1)))
    good = await store.jobs.create("playlist:y|k", AnalysisRequest(link=link(2)))
    cut = '{"link": "https://open.spotify.com/pl'
    await store.db.execute("UPDATE jobs SET request_json = ? WHERE id = ?", (cut, bad))
    await db.close()
    rec = Recorder()
    with caplog.at_level(logging.WARNING, logger="storage.jobs"):
        db, store, queue = await open_queue(path, listener=rec.listener)
    try:
        await asyncio.wait_for(rec.ended_event.wait(), 60)
        assert [(job_id, error) for job_id, _outcome, error in rec.ended] == [(good, None)]
        failed = await store.jobs.get(bad)
        assert failed is not None and failed.state == "failed"
        assert failed.error_code == "unreadable"
        assert f"job {bad} can't be read" in caplog.text
    finally:
        await queue.close()
        await db.close()


async def test_a_job_that_keeps_crashing_is_given_up(tmp_path, monkeypatch):
    FakePipeline().install(monkeypatch)
    path = tmp_path / "crashloop.sqlite3"
    db, store, queue = await open_queue(path)
    await queue.close()
    job_id = await store.jobs.create("playlist:x|k", AnalysisRequest(link=link(1)))
    await store.db.execute("UPDATE jobs SET attempts = ? WHERE id = ?", (MAX_ATTEMPTS, job_id))
    await db.close()
    rec = Recorder()
    db, store, queue = await open_queue(path, listener=rec.listener)
    try:
        await asyncio.wait_for(rec.ended_event.wait(), 60)
        assert isinstance(rec.ended[0][2], JobCrashed)
        assert (await store.jobs.get(job_id)).state == "failed"
    finally:
        await queue.close()
        await db.close()


async def test_csv_jobs_keep_their_text(env):
    _fake, store, _queue, _rec = env
    gate_free_request = AnalysisRequest(csv_text="Track URI,Track Name\n", csv_name="x.csv")
    # the fake fetch needs a link; only the stored request matters here
    job_id = await store.jobs.create("csv:x", gate_free_request)
    job = await store.jobs.get(job_id)
    assert job.request.csv_text == "Track URI,Track Name\n"
    assert job.request.csv_name == "x.csv"
    await store.jobs.fail(job_id, "test", "not run")


async def test_store_is_the_feature_cache(env):
    _fake, store, queue, _rec = env
    assert queue.ctx.feature_cache is store.features


# --- the real pipeline ------------------------------------------------------------------------
async def test_demo_in_the_process_pool(tmp_path):
    """Real clustering and rendering in a (forkserver/spawn) worker process."""
    settings = job_settings(worker_processes=1)
    db, _store, queue = await open_queue(tmp_path / "pool.sqlite3", settings)
    try:
        assert not queue.pool.inline
        rec = Recorder()
        outcome = await asyncio.wait_for(
            (await queue.submit(AnalysisRequest(demo=True), rec.progress)).result(), 300
        )
        assert outcome.rendered.png.startswith(b"\x89PNG")
        assert len(outcome.analysis.tracks) > 100 and outcome.analysis.k >= 2
        assert rec.stages[-1] == "done"
        again = await asyncio.wait_for(
            (await queue.submit(AnalysisRequest(demo=True))).result(), 300
        )
        assert again.reused and again.analysis_id == outcome.analysis_id
    finally:
        await queue.close()
        await db.close()


async def test_too_large_is_refused_from_the_metadata(tmp_path, fake_spotify):
    from bot.sources.spotify import SpotifyGateway
    from tests.fakes.spotify_fixtures import spotify_settings

    settings = spotify_settings(fake_spotify, worker_processes=0, max_playlist_tracks=10)
    token = fake_spotify.alice_token

    async def user_tokens(_uid):
        return token

    ctx = PipelineContext(
        settings=settings, spotify=SpotifyGateway(settings), user_tokens=user_tokens
    )
    db, store, queue = await open_queue(tmp_path / "big.sqlite3", settings, ctx)
    try:
        fake_spotify.clear_log()
        url = f"https://open.spotify.com/playlist/{fake_spotify.alice_playlist}"
        handle = await queue.submit(AnalysisRequest(link=url, user_id=1))
        with pytest.raises(TooLarge):
            await result(handle)
        assert fake_spotify.count(f"playlists/{fake_spotify.alice_playlist}/items") == 0
        assert (await store.jobs.get(handle.job_id)).error_code == "too_large"
    finally:
        await queue.close()
        await db.close()


# --- against the fake Spotify server --------------------------------------------------------
async def spotify_queue(tmp_path, fake, monkeypatch, **overrides):
    """A queue whose fetch step is real (SpotifyGateway as alice, dev mode) and the rest fake."""
    from bot.sources.spotify import SpotifyGateway
    from tests.fakes.spotify_fixtures import spotify_settings

    steps = FakePipeline().install(monkeypatch, ("featurize_step", "cluster_step", "render_step"))
    settings = spotify_settings(fake, worker_processes=0, **overrides)

    async def user_tokens(_uid):
        return fake.alice_token

    ctx = PipelineContext(
        settings=settings, spotify=SpotifyGateway(settings), user_tokens=user_tokens
    )
    db, store, queue = await open_queue(tmp_path / "spotify.sqlite3", settings, ctx)
    return steps, db, store, queue


async def test_snapshot_reuse_counts_requests(tmp_path, fake_spotify, monkeypatch):
    steps, db, _store, queue = await spotify_queue(tmp_path, fake_spotify, monkeypatch)
    pid = fake_spotify.alice_playlist
    url = f"https://open.spotify.com/playlist/{pid}"
    try:
        first = await result(await queue.submit(AnalysisRequest(link=url, user_id=1)))
        assert len(first.analysis.tracks) == 60
        assert fake_spotify.count(f"playlists/{pid}/items") >= 2  # 60 entries, 50 per page

        fake_spotify.clear_log()
        again = await result(await queue.submit(AnalysisRequest(link=url, user_id=1)))
        assert again.reused and again.analysis_id == first.analysis_id
        assert fake_spotify.count(f"playlists/{pid}/items") == 0
        assert fake_spotify.count(f"playlists/{pid}") == 1  # the one metadata request
        assert steps.calls["cluster"] == 1

        fake_spotify.clear_log()
        other_k = await result(await queue.submit(AnalysisRequest(link=url, k=3, user_id=1)))
        assert not other_k.reused and steps.calls["cluster"] == 2
        assert fake_spotify.count(f"playlists/{pid}/items") == 0  # stored entries reused

        playlist = fake_spotify.playlists[pid]
        playlist.entries = playlist.entries[:55]
        playlist.snapshot_n += 1
        fake_spotify.clear_log()
        changed = await result(await queue.submit(AnalysisRequest(link=url, user_id=1)))
        assert not changed.reused and len(changed.analysis.tracks) == 55
        assert fake_spotify.count(f"playlists/{pid}/items") >= 2
    finally:
        await queue.close()
        await db.close()


@pytest.mark.parametrize("quota", [False, True])
async def test_long_retry_after_fails_the_job_at_once(tmp_path, fake_spotify, monkeypatch, quota):
    _steps, db, store, queue = await spotify_queue(tmp_path, fake_spotify, monkeypatch)
    pid = fake_spotify.alice_playlist
    try:
        fake_spotify.rate_limit_next(f"playlists/{pid}", 7200, times=5, quota=quota)
        handle = await queue.submit(
            AnalysisRequest(link=f"https://open.spotify.com/playlist/{pid}", user_id=1)
        )
        with pytest.raises(RateLimited) as info:
            await result(handle)  # would hang for 2 hours if the worker slept
        assert info.value.retry_after >= 7200
        assert isinstance(info.value, QuotaExceeded) == quota
        job = await store.jobs.get(handle.job_id)
        assert job.state == "failed" and job.error_code == info.value.code
    finally:
        await queue.close()
        await db.close()


async def test_real_csv_jobs_dedupe_and_reuse(tmp_path, monkeypatch):
    """Real pipeline on a real CSV: concurrent duplicates share a job; a resubmission reuses."""
    from bot import pipeline
    from bot.jobs import cpu

    calls = {"fetch": 0, "cluster": 0}
    gate = asyncio.Event()
    real_fetch, real_cluster = pipeline.fetch_step, cpu.cluster_step

    async def fetch(*args, **kwargs):
        calls["fetch"] += 1
        await gate.wait()
        return await real_fetch(*args, **kwargs)

    def cluster(*args, **kwargs):
        calls["cluster"] += 1
        return real_cluster(*args, **kwargs)

    monkeypatch.setattr(pipeline, "fetch_step", fetch)
    monkeypatch.setattr(cpu, "cluster_step", cluster)
    db, store, queue = await open_queue(tmp_path / "csv.sqlite3")
    try:
        text = sample_csv()
        h1 = await queue.submit(AnalysisRequest(csv_text=text, csv_name="a.csv", user_id=1))
        h2 = await queue.submit(AnalysisRequest(csv_text=text, csv_name="b.csv", user_id=1))
        assert h2.shared and h2.job_id == h1.job_id  # the same uploader's same rows
        gate.set()
        o1, o2 = await result(h1), await result(h2)
        assert o1.analysis_id == o2.analysis_id and calls == {"fetch": 1, "cluster": 1}
        assert o1.analysis.source.kind == "csv" and len(o1.analysis.tracks) > 50
        job = await store.jobs.get(h1.job_id)
        # kept while the job runs (see test_crash_resume), dropped once it is finished
        assert job.request.csv_text is None and job.request.csv_name == "a.csv"

        again = await result(await queue.submit(AnalysisRequest(csv_text=text, user_id=1)))
        assert again.reused and again.analysis_id == o1.analysis_id
        assert calls == {"fetch": 2, "cluster": 1}  # the CSV is re-read (no network), no clustering
        # Another member's identical upload is theirs: never shared, never reused (issue #13).
        other = await result(await queue.submit(AnalysisRequest(csv_text=text, user_id=3)))
        assert not other.reused and other.analysis_id != o1.analysis_id
    finally:
        await queue.close()
        await db.close()


async def test_features_are_cached_across_playlists(tmp_path, fake_spotify, monkeypatch):
    """Two playlists sharing 30 tracks: the second asks ReccoBeats only for its 30 new ones."""
    pytest.importorskip("bot.features.gather")
    reccobeats = pytest.importorskip("bot.features.reccobeats")
    from bot.sources.spotify import SpotifyGateway
    from tests.fakes.spotify_fixtures import spotify_settings

    FakePipeline().install(monkeypatch, ("cluster_step", "render_step"))
    settings = spotify_settings(fake_spotify, worker_processes=0)
    ids = fake_spotify.track_ids()
    second = fake_spotify.add_playlist(ids[30:90], name="Second", owner_id="alice").id

    async def user_tokens(_uid):
        return fake_spotify.alice_token

    client = reccobeats.ReccoBeatsClient(settings.reccobeats_base)
    ctx = PipelineContext(
        settings=settings,
        spotify=SpotifyGateway(settings),
        reccobeats=client,
        user_tokens=user_tokens,
    )
    db, store, queue = await open_queue(tmp_path / "cache.sqlite3", settings, ctx)
    assert ctx.feature_cache is store.features

    def asked() -> set[str]:
        out: set[str] = set()
        for _m, path, query in fake_spotify.requests:
            if path.startswith("/reccobeats/") and "ids" in query:
                out.update(query["ids"].split(","))
        return out

    try:
        url = "https://open.spotify.com/playlist/"
        first = await result(
            await queue.submit(AnalysisRequest(link=url + fake_spotify.alice_playlist, user_id=1))
        )
        assert asked() == set(ids[:60])
        assert first.analysis.tracks
        fake_spotify.clear_log()
        await result(await queue.submit(AnalysisRequest(link=url + second, user_id=1)))
        assert asked() == set(ids[60:90])
        cached = await store.features.get_many("reccobeats", ids[:90])
        assert len(cached) == 90
    finally:
        await queue.close()
        await client.close()
        await db.close()


async def test_network_steps_are_bounded(tmp_path, monkeypatch):
    fake = FakePipeline().install(monkeypatch)
    settings = job_settings(max_jobs_per_user=10)
    db = await database(tmp_path / "bound.sqlite3").open()
    queue = JobQueue(Store(db), PipelineContext(settings=settings), settings, network_concurrency=2)
    await queue.start()
    try:
        gate = fake.hold("fetch")
        handles = [await queue.submit(AnalysisRequest(link=link(i), user_id=1)) for i in range(5)]
        await fake.reached("fetch")
        # Let every job run as far as it can: on PostgreSQL each step awaits real I/O, so
        # give them time rather than a number of loop turns.
        for _ in range(200):
            if fake.calls["fetch"] >= 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert fake.calls["fetch"] == 2
        gate.set()
        outcomes = [await result(h) for h in handles]
        assert len({o.analysis_id for o in outcomes}) == 5 and fake.calls["fetch"] == 5
    finally:
        await queue.close()
        await db.close()


@pytest.mark.parametrize("stored_as", ["compressed", "parts", "dict"])
async def test_resume_in_rendering_reads_every_checkpoint_format(tmp_path, monkeypatch, stored_as):
    """A job left in "rendering" only renders; checkpoints written before the analysis was
    compressed (its parts as they are) or stored in parts (one to_dict() object) still
    resume."""
    from bot.codecs import RawJson, compress_text, encode_parts, parts_text
    from tests.storage_helpers import make_analysis, make_fetch

    fake = FakePipeline().install(monkeypatch)
    path = tmp_path / f"resume-{stored_as}.sqlite3"
    db, store, queue = await open_queue(path)
    await queue.close()
    analysis = make_analysis(make_fetch(12))
    key = "analysis"
    if stored_as == "compressed":
        key, saved = "analysis_z", compress_text(parts_text(encode_parts(analysis)))
    elif stored_as == "parts":
        saved = RawJson(parts_text(encode_parts(analysis)))
    else:
        saved = analysis.to_dict()
    job_id = await store.jobs.create("playlist:x|k", AnalysisRequest(link=link(1)))
    await store.jobs.set_state(job_id, "rendering", {"fetch": None, key: saved})
    await db.close()
    rec = Recorder()
    db, store, queue = await open_queue(path, listener=rec.listener)
    try:
        await asyncio.wait_for(rec.ended_event.wait(), 60)
        _job, outcome, error = rec.ended[0]
        assert error is None
        assert fake.calls["render"] == 1 and fake.calls["cluster"] == 0
        saved_at = outcome.analysis.created_at  # set when stored
        expected = analysis.to_dict() | {"analysis_id": outcome.analysis_id, "created_at": saved_at}
        assert outcome.analysis.to_dict() == expected
        assert (await store.analyses.get(outcome.analysis_id)).to_dict() == expected
    finally:
        await queue.close()
        await db.close()
