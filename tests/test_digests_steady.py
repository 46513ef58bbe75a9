"""Clusters kept steady between digests (issue #14): warm start from the previous digest's
clusters and the same numbers for the clusters that continue.

Real TidyTuesday tracks (bot/demo_data/demo_mix.csv: five real playlists of 60 tracks), audio
features only; the playlist columns only pick which tracks a test edits.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from bot import warm_start
from bot.digests import DigestScheduler, Schedule, summarize_changes
from bot.jobs.cpu import cluster_step
from bot.models import AnalysisRequest, FeatureTable, FetchResult, PlaylistMeta, Track, params_key
from tests.manual_clock import ManualClock
from tests.test_digests import (
    CHANNEL,
    GUILD,
    USER,
    Recorder,
    ScriptedQueue,
    _by_playlist,
    _snapshot,
    _subscribe,
    _tick,
    real_digests,
    utc,
)


def _cluster(tracks: list[Track], k: int | None = None, previous=None):
    table = FeatureTable(
        values={t.id: dict(t.features or {}) for t in tracks},
        sources=dict.fromkeys((t.id for t in tracks), "csv"),
    )
    fetched = FetchResult(PlaylistMeta(id="p", name="p"), tracks)
    prev = dict(previous.assignments) if previous is not None else None
    return cluster_step(fetched, table, k, 0, prev)


def _renumbered(before, after) -> int:
    changes = summarize_changes(before, after)
    return sum(1 for c in changes.clusters if c.previous_index not in (None, c.index))


def test_removing_one_track_moves_none_of_the_others() -> None:
    """Real "Big Room EDM" playlist, auto k: one track removed made a fresh clustering move
    10 of the 59 others (measured); started from the previous clusters, none moves."""
    tracks = _by_playlist()["Big Room EDM"]
    edited = tracks[:3] + tracks[4:]
    base = _cluster(tracks)
    fresh = summarize_changes(base, _cluster(edited))
    steady = _cluster(edited, previous=base)
    changes = summarize_changes(base, steady)
    assert fresh.moved >= 10  # the problem, without the previous clusters
    assert changes.moved == 0
    assert steady.k == base.k
    assert all(c.index == c.previous_index for c in changes.clusters)
    assert [c.track_id for c in changes.removed] == [tracks[3].id]


def test_continuing_clusters_keep_their_numbers() -> None:
    """k=3 on three real playlists; then the smallest cluster's playlist grows by 20 tracks.
    A fresh run numbers clusters by size, so old "Cluster 3" became "Cluster 1"; started from
    the previous clusters, every continuing cluster keeps its number."""
    pl = _by_playlist()
    names = ("’80s Hard Rock", "Big Room EDM", "Neo-Soul")
    first = [t for n in names for t in pl[n][:35]]
    base = _cluster(first, k=3)
    smallest = min(base.clusters, key=lambda c: c.size)
    # the playlist most of the smallest cluster's tracks come from
    members = set(smallest.track_ids)
    source = max(names, key=lambda n: len(members & {t.id for t in pl[n][:35]}))
    second = first + pl[source][35:55]
    fresh = _cluster(second, k=3)
    steady = _cluster(second, k=3, previous=base)
    assert _renumbered(base, fresh) > 0  # the problem, without the previous clusters
    assert _renumbered(base, steady) == 0
    changes = summarize_changes(base, steady)
    assert {c.previous_index for c in changes.clusters} == {0, 1, 2}
    grown = next(c for c in changes.clusters if c.index == smallest.index)
    assert grown.delta > 0 and grown.name.startswith(f"Cluster {smallest.index + 1} ")


def test_steady_clustering_is_deterministic_whatever_the_order() -> None:
    tracks = _by_playlist()["Trap Nation"] + _by_playlist()["Vibra Tropical"][:30]
    base = _cluster(tracks)
    edited = tracks[3:] + _by_playlist()["Neo-Soul"][:5]
    one = _cluster(edited, previous=base)
    shuffled = list(edited)
    random.Random(7).shuffle(shuffled)
    two = _cluster(shuffled, previous=base)
    assert one.assignments == two.assignments
    assert [c.name for c in one.clusters] == [c.name for c in two.clusters]


def test_first_digest_is_the_ordinary_clustering() -> None:
    """No previous digest (empty assignment) or no track left of it: the usual result."""
    tracks = _by_playlist()["Neo-Soul"] + _by_playlist()["Trap Nation"][:20]
    plain = _cluster(tracks)
    table = FeatureTable(
        values={t.id: dict(t.features or {}) for t in tracks},
        sources=dict.fromkeys((t.id for t in tracks), "csv"),
    )
    fetched = FetchResult(PlaylistMeta(id="p", name="p"), tracks)
    for previous in ({}, {"0000000000000000000000": 0}):
        other = cluster_step(fetched, table, None, 0, previous)
        assert other.assignments == plain.assignments
        assert [c.name for c in other.clusters] == [c.name for c in plain.clusters]


def test_a_playlist_that_changed_shape_gets_a_new_k() -> None:
    """Two real playlists grow into five (75 % of the tracks new): auto k's 4 is taken over
    the previous 2; the clusters that continue still keep their numbers."""
    pl = _by_playlist()
    first = pl["’80s Hard Rock"][:30] + pl["Big Room EDM"][:30]
    base = _cluster(first)
    assert base.k == 2
    second = first + [t for n in ("Neo-Soul", "Trap Nation", "Vibra Tropical") for t in pl[n]]
    steady = _cluster(second, previous=base)
    fresh = _cluster(second)
    assert steady.k == fresh.k == 4
    changes = summarize_changes(base, steady)
    continuing = [c for c in changes.clusters if c.previous_index is not None]
    assert len(continuing) == 2 and all(c.index == c.previous_index for c in continuing)


def test_k_follows_auto_k_only_when_the_playlist_changed_enough() -> None:
    keeps = warm_start.keeps_shape
    assert keeps(3, 3, 0.9)  # auto k agrees
    assert keeps(3, 2, 0.3) and keeps(3, 4, 0.3) and not keeps(3, 4, 0.4)  # off by one
    assert keeps(4, 2, 0.05) and not keeps(4, 2, 0.1)  # off by more after a small edit


def test_numbering_follows_the_previous_clusters() -> None:
    ids = [f"t{i}" for i in range(9)]
    previous = {"t0": 0, "t1": 0, "t2": 0, "t3": 1, "t4": 1, "t5": 1, "t6": 2, "t7": 2, "t8": 2}
    # the same groups under other labels get their old numbers back
    labels = np.array([2, 2, 2, 0, 0, 0, 1, 1, 1])
    assert warm_start.number_like(labels, ids, previous).tolist() == [
        0, 0, 0, 1, 1, 1, 2, 2, 2,
    ]  # fmt: skip
    # old cluster 1 is gone (its tracks merged into 0); the new group takes the free number
    ids2 = [*ids[:3], "t4", "t6", "t7", "t8", "n1", "n2", "n3"]
    labels2 = np.array([5, 5, 5, 5, 3, 3, 3, 9, 9, 9])
    assert warm_start.number_like(labels2, ids2, previous).tolist() == [
        0, 0, 0, 0, 2, 2, 2, 1, 1, 1,
    ]  # fmt: skip
    # fewer clusters now: a continuing cluster numbered past k takes a free number
    labels3 = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    previous3 = {**previous, "t3": 0, "t4": 0, "t5": 0, "t6": 4, "t7": 4, "t8": 4}
    assert warm_start.number_like(labels3, ids, previous3).tolist() == [
        0, 0, 0, 0, 0, 0, 1, 1, 1,
    ]  # fmt: skip


def test_a_cluster_whose_tracks_all_left_is_started_again() -> None:
    """k fixed at 3 and every track of one previous cluster removed: three clusters again,
    the two that continue keep their numbers."""
    pl = _by_playlist()
    first = [t for n in ("’80s Hard Rock", "Big Room EDM", "Neo-Soul") for t in pl[n][:30]]
    base = _cluster(first, k=3)
    gone = base.clusters[1]
    second = [t for t in first if t.id not in set(gone.track_ids)] + pl["Trap Nation"][:30]
    steady = _cluster(second, k=3, previous=base)
    assert steady.k == 3
    changes = summarize_changes(base, steady)
    continuing = {c.previous_index: c.index for c in changes.clusters if c.previous_index != 1}
    assert continuing == {0: 0, 2: 2, None: 1}


def test_digest_analyses_are_not_shared_with_cluster_requests() -> None:
    assert params_key(None, {}) == params_key(None, {"a": 1}) != params_key(None)
    assert params_key(3, {"a": 1}) != params_key(4, {"a": 1})
    assert params_key(None, {}, digest_id=1) != params_key(None, {}, digest_id=2)
    assert params_key(None, {}, digest_id=1) == params_key(None, {"a": 1}, digest_id=1)


# --- the scheduler passes the previous digest's clusters -----------------------------------


async def test_each_digest_starts_from_the_previous_one(db) -> None:
    pl = _by_playlist()
    base = pl["Neo-Soul"][:30] + pl["Trap Nation"][:30]
    first, second = _snapshot(base, "s1"), _snapshot(base[2:], "s2")
    queue = ScriptedQueue(db, [first, second])
    clock = ManualClock(utc(2026, 11, 23, 7, 0))
    sched = DigestScheduler(db, queue, poster=Recorder(), clock=clock)
    await _subscribe(sched, Schedule.build("daily", "08:00", "UTC"))
    clock.set(utc(2026, 11, 23, 8, 0))
    await _tick(sched)
    clock.set(utc(2026, 11, 24, 8, 0))
    await _tick(sched)
    one, two = queue.requests
    assert one.previous_clusters == {}  # a first digest: nothing to start from
    assert two.previous_clusters == first.assignments
    assert AnalysisRequest.from_dict(two.to_dict()).previous_clusters == first.assignments


async def test_digests_through_the_real_queue_keep_their_clusters(
    tmp_path: Path, fake_spotify_extended
) -> None:
    """Alice's real playlist loses one track: a fresh /cluster of the new snapshot moves
    another and is not taken for the digest, which moves none."""
    fake = fake_spotify_extended
    pid = fake.alice_playlist
    playlist = fake.playlists[pid]
    link = f"https://open.spotify.com/playlist/{pid}"
    async with real_digests(tmp_path, fake) as (_, queue, poster, clock, sched):
        await sched.subscribe(
            guild_id=GUILD,
            channel_id=CHANNEL,
            playlist_ref=link,
            playlist_id=pid,
            schedule=Schedule.build("daily", "07:00", "UTC"),
            k=None,
            created_by=USER,
        )
        clock.set(utc(2026, 11, 23, 7, 0))
        assert [r.status for r in await _tick(sched)] == ["posted"]
        before = poster.messages[-1].outcome.analysis

        playlist.entries = playlist.entries[:27] + playlist.entries[28:]
        playlist.snapshot_n += 1
        handle = await queue.submit(AnalysisRequest(link=link, user_id=USER))  # a /cluster
        plain = await handle.result()
        assert summarize_changes(before, plain.analysis).moved > 0  # measured: 1 moved
        clock.set(utc(2026, 11, 24, 7, 0))
        assert [r.status for r in await _tick(sched)] == ["posted"]
        message = poster.messages[-1]
        assert message.outcome.analysis_id != plain.analysis_id and not message.outcome.reused
        assert message.changes is not None and message.changes.moved == 0
        assert len(message.changes.removed) == 1
        after = message.outcome.analysis
        assert after.k == before.k
        assert all(c.index == c.previous_index for c in message.changes.clusters)


async def test_two_subscriptions_of_one_playlist_each_keep_their_own_clusters(
    tmp_path: Path, fake_spotify_extended
) -> None:
    """Two channels digest Alice's playlist; the second subscribes after an edit. Each digest
    run starts from its own subscription's previous clusters: the second's first digest is a
    fresh clustering, and the first's next digest is not that one (it was taken before, since
    both runs had the same key: the first subscription's digest then moved tracks)."""
    fake = fake_spotify_extended
    pid = fake.alice_playlist
    playlist = fake.playlists[pid]
    link = f"https://open.spotify.com/playlist/{pid}"
    async with real_digests(tmp_path, fake) as (_, _, poster, clock, sched):

        async def subscribe(channel: int, at: str):
            return await sched.subscribe(
                guild_id=GUILD,
                channel_id=channel,
                playlist_ref=link,
                playlist_id=pid,
                schedule=Schedule.build("daily", at, "UTC"),
                k=None,
                created_by=USER,
            )

        first = await subscribe(CHANNEL, "07:00")
        clock.set(utc(2026, 11, 23, 7, 0))
        assert [r.status for r in await _tick(sched)] == ["posted"]
        before = poster.messages[-1].outcome.analysis

        playlist.entries = playlist.entries[:27] + playlist.entries[28:]
        playlist.snapshot_n += 1
        second = await subscribe(CHANNEL + 1, "06:00")  # runs before the first one tomorrow
        clock.set(utc(2026, 11, 24, 6, 0))
        assert [r.status for r in await _tick(sched)] == ["posted"]
        other = poster.messages[-1]
        assert other.subscription.id == second.id and other.changes is None
        clock.set(utc(2026, 11, 24, 7, 0))
        assert [r.status for r in await _tick(sched)] == ["posted"]
        mine = poster.messages[-1]
        assert mine.subscription.id == first.id
        assert mine.outcome.analysis_id != other.outcome.analysis_id
        assert mine.changes is not None and mine.changes.moved == 0
        assert mine.outcome.analysis.k == before.k
        assert all(c.index == c.previous_index for c in mine.changes.clusters)


@pytest.fixture
async def db(tmp_path: Path):
    from storage.db import Database

    database = await Database(tmp_path / "steady.sqlite3").open()
    yield database
    await database.close()
