"""A tiny run of the benchmark harness (bench/): 60 real tracks through the real JobQueue.

Checks behaviour, not timing: a cold analysis of a 60-track development-mode playlist makes
exactly the minimum requests (1 meta + ceil(60/50)=2 item pages + ceil(60/40)=2 ReccoBeats
calls), and a second run of the unchanged playlist makes exactly 1 (the meta request).
The fake runs in a subprocess on 127.0.0.1 with no added latency; CPU steps run inline. As in
the bot (/about), the app mode is detected once at start-up (one audio-features 403), so the
measured jobs do not include that probe.
"""

from __future__ import annotations

from bench.harness import classify, minimum_requests

N = 60


def test_minimum_requests_formula() -> None:
    assert minimum_requests(60) == {"meta": 1, "items": 2, "features": 2, "total": 5}
    assert minimum_requests(10_000)["total"] == 1 + 200 + 250


def test_classify_counts_each_kind() -> None:
    log = [
        {"host": "accounts", "method": "POST", "path": "/api/token", "query": {}},
        {"host": "spotify", "method": "GET", "path": "/v1/playlists/P1", "query": {}},
        {"host": "spotify", "method": "GET", "path": "/v1/playlists/P1/items", "query": {}},
        {"host": "spotify", "method": "GET", "path": "/v1/playlists/P2/items", "query": {}},
        {"host": "spotify", "method": "GET", "path": "/v1/audio-features", "query": {}},
        {"host": "reccobeats", "method": "GET", "path": "/reccobeats/v1/audio-features"},
    ]
    counts = classify(log, "P1")
    assert counts["meta"] == 1
    assert counts["items"] == 1
    assert counts["other"] == 1  # the other playlist's page
    assert counts["spotify_features"] == 1
    assert counts["features"] == 1
    assert counts["token"] == 1
    assert counts["total"] == 5  # token requests are not API requests


async def test_harness_small_playlist_makes_minimum_requests() -> None:
    from bench.playlist import run

    result = await run(N, latency_ms=0.0, workers=0, warmup=False)

    first, second = result["first"], result["second"]
    assert "error" not in first, first.get("error")
    assert first["n_tracks"] == N
    assert first["coverage"].get("reccobeats") == N
    assert first["requests"]["total"] == minimum_requests(N)["total"], first["requests"]
    assert first["requests"]["items"] == 2
    assert first["requests"]["features"] == 2

    assert "error" not in second, second.get("error")
    assert second["requests"]["total"] == 1, second["requests"]
    assert second["requests"]["meta"] == 1
    assert second["reused"] is True
