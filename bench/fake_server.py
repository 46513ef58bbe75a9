"""The benchmark's fake Spotify/ReccoBeats, run as its own process (``bench.harness.FakeServer``).

Serves ``tests/fakes/spotify_api.FakeSpotify`` in the requested personality with a fixed
latency on every request, loaded with the bundled real tracks; each ``--playlist
name:n:offset`` becomes a playlist owned by the benchmark user, so a development-mode app
reading it with that user's token gets its items, and features come from ReccoBeats.

Prints one JSON line (bases, user token, playlist ids, control URL) and serves until killed.
A second tiny app on another port exposes the request log: ``GET /requests``, ``POST /reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import signal
from typing import Any

from aiohttp import web

from bench.harness import PlaylistSpec
from bench.make_data import OUT as DATA_FILE
from tests.fakes.spotify_api import FakeSpotify

BENCH_USER = "bench-user"


def read_rows() -> list[dict[str, str]]:
    with gzip.open(DATA_FILE, "rt", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def host_of_path(path: str) -> str:
    if path.startswith("/reccobeats/"):
        return "reccobeats"
    if path.startswith(("/api/token", "/authorize")):
        return "accounts"
    return "spotify"


def control_app(fake: FakeSpotify) -> web.Application:
    async def requests(_: web.Request) -> web.Response:
        log = [
            {"host": host_of_path(p), "method": m, "path": p, "query": q}
            for m, p, q in fake.requests
        ]
        return web.json_response(log)

    async def reset(_: web.Request) -> web.Response:
        fake.clear_log()
        return web.json_response({"ok": True})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"max_in_flight": fake.max_in_flight})

    app = web.Application()
    app.router.add_get("/requests", requests)
    app.router.add_post("/reset", reset)
    app.router.add_get("/stats", stats)
    return app


async def serve(specs: list[PlaylistSpec], latency_ms: float, mode: str) -> None:
    rows = read_rows()
    fake = FakeSpotify(mode)
    fake.latency = latency_ms / 1000.0
    fake.add_user(BENCH_USER, "Bench User")
    playlists: dict[str, str] = {}
    for spec in specs:
        chunk = rows[spec.offset : spec.offset + spec.n]
        if len(chunk) < spec.n:
            raise SystemExit(f"not enough bundled tracks for {spec}")
        ids = fake.add_rows(chunk)
        ids = [r["track_id"] for r in chunk]  # add_rows skips ids already known
        pl = fake.add_playlist(ids, name=f"Bench {spec.name} ({spec.n})", owner_id=BENCH_USER)
        playlists[spec.name] = pl.id
    token = fake.user_token(BENCH_USER)
    fake.token_lifetime_s = 24 * 3600
    await fake.start()

    runner = web.AppRunner(control_app(fake), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    info: dict[str, Any] = {
        "api_base": fake.api_base,
        "accounts_base": fake.accounts_base,
        "reccobeats_base": fake.reccobeats_base,
        "control": f"http://127.0.0.1:{port}/",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "user_token": token,
        "user_id": BENCH_USER,
        "mode": mode,
        "latency_ms": latency_ms,
        "playlists": playlists,
    }
    print(json.dumps(info), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Spotify/ReccoBeats for the benchmarks.")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--mode", choices=("development", "extended"), default="development")
    parser.add_argument("--playlist", action="append", default=[], type=PlaylistSpec.parse)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.playlist, args.latency_ms, args.mode))


if __name__ == "__main__":
    main()
