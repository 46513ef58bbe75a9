"""Issue #10 item 4: a request's link is parsed once and carried; one path from a Discord user
to a gateway acting as their linked Spotify account."""

from __future__ import annotations

import json
from typing import Any

import pytest

import bot.sources.links as links
from bot.config import Settings
from bot.jobs.queue import source_key
from bot.models import AnalysisRequest, PlaylistMeta, Progress, SpotifyRef
from bot.pipeline import PipelineContext, fetch_step, with_parsed_link
from bot.sources.spotify import SpotifyGateway, gateway_for_user

PLAYLIST_ID = "37i9dQZF1DX68H8ZujdnN8"
PLAYLIST_URL = f"https://open.spotify.com/playlist/{PLAYLIST_ID}?si=abc"


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


async def _quiet(_event: Progress) -> None:
    return None


class MetaOnly:
    """A gateway that records which ref it was asked for and stops after the metadata."""

    def __init__(self) -> None:
        self.refs: list[SpotifyRef] = []

    async def get_meta(self, ref: SpotifyRef) -> PlaylistMeta:
        self.refs.append(ref)
        return PlaylistMeta(id=ref.id, name="Stub", snapshot_id="s", total=5)


async def test_the_link_is_parsed_once_from_submit_to_the_fetch_step(monkeypatch) -> None:
    calls: list[str] = []
    parse = links.parse_spotify_link

    def counting(text: str) -> SpotifyRef:
        calls.append(text)
        return parse(text)

    monkeypatch.setattr(links, "parse_spotify_link", counting)
    request = with_parsed_link(AnalysisRequest(link=PLAYLIST_URL))
    assert source_key(request) == f"playlist:{PLAYLIST_ID}"
    gateway = MetaOnly()
    ctx = PipelineContext(settings=_settings(), spotify=gateway)  # type: ignore[arg-type]

    async def stored(meta: PlaylistMeta) -> Any:
        from bot.pipeline import Reused

        return Reused(meta, analysis_id=1)

    await fetch_step(request, ctx, _quiet, reuse=stored)
    assert calls == [PLAYLIST_URL]
    assert gateway.refs == [SpotifyRef("playlist", PLAYLIST_ID)]


async def test_the_fetch_step_reads_the_carried_ref() -> None:
    # A stored job resumed after a restart carries its ref; the text is not read again.
    request = AnalysisRequest(link="(already parsed)", ref=SpotifyRef("album", PLAYLIST_ID))
    gateway = MetaOnly()
    ctx = PipelineContext(settings=_settings(), spotify=gateway)  # type: ignore[arg-type]

    async def stored(meta: PlaylistMeta) -> Any:
        from bot.pipeline import Reused

        return Reused(meta, analysis_id=1)

    await fetch_step(request, ctx, _quiet, reuse=stored)
    assert gateway.refs == [SpotifyRef("album", PLAYLIST_ID)]


def test_a_parsed_request_survives_the_job_table_round_trip() -> None:
    request = with_parsed_link(AnalysisRequest(link=PLAYLIST_URL, user_id=3))
    assert request.ref == SpotifyRef("playlist", PLAYLIST_ID)
    back = AnalysisRequest.from_dict(json.loads(json.dumps(request.to_dict())))
    assert back == request
    # Jobs stored before the field existed have no ref: it is parsed when needed.
    old = request.to_dict()
    del old["ref"]
    assert AnalysisRequest.from_dict(old).ref is None


def test_a_bad_link_fails_when_parsed() -> None:
    from bot.errors import InvalidLink

    with pytest.raises(InvalidLink):
        with_parsed_link(AnalysisRequest(link="https://open.spotify.com/track/" + PLAYLIST_ID))
    assert with_parsed_link(AnalysisRequest(demo=True)).ref is None


async def test_one_path_from_a_discord_user_to_their_gateway() -> None:
    settings = _settings()
    app = SpotifyGateway(settings)
    tokens = {7: "tok-7"}

    async def token_of(user_id: int) -> str | None:
        return tokens.get(user_id)

    try:
        assert await gateway_for_user(8, token_of, settings, app=app) is None
        gateway = await gateway_for_user(7, token_of, settings, app=app)
        assert gateway is not None and gateway is not app
        assert gateway._state is app._state  # built from the app's gateway: shares what it learnt
        gateway.close()
    finally:
        app.close()
