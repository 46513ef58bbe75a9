"""Pipeline steps without the network: demo/CSV sources, limits, gateway choice, reuse hook."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.config import Settings
from bot.demo import load_demo
from bot.errors import AuthError, EmptyPlaylist, InvalidInput, InvalidLink, TooLarge, TooSmall
from bot.jobs.inline import run_analysis
from bot.models import (
    AUDIO_FEATURES,
    AnalysisRequest,
    FetchResult,
    PlaylistMeta,
    Progress,
    Track,
    params_key,
)
from bot.pipeline import PipelineContext, featurize_step, fetch_step
from bot.sources.normalise import normalise

PLAYLIST_URL = "https://open.spotify.com/playlist/37i9dQZF1DX68H8ZujdnN8"


def _settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


class Events:
    def __init__(self) -> None:
        self.stages: list[str] = []

    async def __call__(self, event: Progress) -> None:
        self.stages.append(event.stage)


@dataclass
class StubGateway:
    """Records calls; serves the demo tracks as if they were a Spotify playlist."""

    total: int = 300
    token: str | None = None
    calls: list[str] = field(default_factory=list)
    closed: bool = False
    children: list[StubGateway] = field(default_factory=list)

    def with_user_token(self, token: str) -> StubGateway:
        child = StubGateway(total=self.total, token=token, calls=self.calls)
        self.children.append(child)
        return child

    def close(self) -> None:
        self.closed = True

    async def get_meta(self, ref: Any) -> PlaylistMeta:
        self.calls.append(f"meta:{ref.id}:{self.token}")
        return PlaylistMeta(id=ref.id, name="Stub", snapshot_id="snap1", total=self.total)

    async def fetch_tracks(self, ref: Any, meta: PlaylistMeta, progress: Any) -> FetchResult:
        self.calls.append(f"tracks:{ref.id}:{self.token}")
        return FetchResult(meta=meta, tracks=load_demo().tracks)

    async def fetch_liked(self, progress: Any, *, max_tracks: int | None = None) -> FetchResult:
        self.calls.append(f"liked:{self.token}:{max_tracks}")
        return FetchResult(meta=PlaylistMeta(id="liked", name="Liked"), tracks=[])


def _tokens(mapping: dict[int, str]):
    async def user_tokens(user_id: int) -> str | None:
        return mapping.get(user_id)

    return user_tokens


async def test_demo_runs_end_to_end_without_network() -> None:
    events = Events()
    ctx = PipelineContext(settings=_settings())  # no spotify, no reccobeats, no cache
    analysis, rendered = await run_analysis(AnalysisRequest(demo=True, k=5), ctx, events)
    assert analysis.k == 5 and len(analysis.assignments) == 300
    assert analysis.coverage == {"csv": 300}
    assert rendered.png[:4] == b"\x89PNG" and rendered.summary["k"] == 5
    assert events.stages[0] == "fetching" and events.stages[-1] == "done"
    assert "clustering" in events.stages and "rendering" in events.stages


def _exportify_csv(tracks: list[Track]) -> str:
    buf = io.StringIO()
    cols = ["Track URI", "Track Name", "Artist Name(s)", "Album Name", "Album Release Date"]
    cols += ["Duration (ms)", "Popularity", "Explicit"]
    cols += [f.capitalize() for f in AUDIO_FEATURES] + ["Key", "Mode"]
    w = csv.writer(buf)
    w.writerow(cols)
    for t in tracks:
        f = t.features or {}
        w.writerow(
            [t.uri, t.name, ";".join(t.artists), t.album, t.release_date, t.duration_ms]
            + [t.popularity, "false"]
            + [f[x] for x in AUDIO_FEATURES]
            + [int(f["key"]), int(f["mode"])]
        )
    return buf.getvalue()


async def test_csv_source_end_to_end_without_network() -> None:
    pytest.importorskip("bot.sources.exportify")
    text = _exportify_csv(load_demo().tracks[:120])
    ctx = PipelineContext(settings=_settings())
    request = AnalysisRequest(csv_text=text, csv_name="mine.csv", k=3)
    analysis, rendered = await run_analysis(request, ctx, Events())
    assert analysis.source.kind == "csv"
    assert len(analysis.assignments) == 120
    assert analysis.coverage == {"csv": 120}
    assert analysis.feature_mode.startswith("audio")
    assert "## Cluster #3" in rendered.markdown


async def test_too_large_request_limit_and_setting() -> None:
    ctx = PipelineContext(settings=_settings())
    with pytest.raises(TooLarge) as err:
        await fetch_step(AnalysisRequest(demo=True, max_tracks=100), ctx, Events())
    assert "300" in err.value.user_message and "100" in err.value.user_message
    ctx = PipelineContext(settings=_settings(max_playlist_tracks=250))
    with pytest.raises(TooLarge):
        await fetch_step(AnalysisRequest(demo=True), ctx, Events())


def test_empty_playlist_message_lists_what_was_skipped() -> None:
    empty = FetchResult(PlaylistMeta(id="p", name="Pods"), [], skipped={"episode": 3})
    with pytest.raises(EmptyPlaylist) as err:
        normalise(empty, 100)
    assert "Pods" in err.value.user_message and "3 podcast episodes" in err.value.user_message


async def test_link_uses_app_gateway_and_checks_size_before_reading_tracks() -> None:
    gw = StubGateway(total=20_000)
    ctx = PipelineContext(settings=_settings(), spotify=gw)
    with pytest.raises(TooLarge):
        await fetch_step(AnalysisRequest(link=PLAYLIST_URL), ctx, Events())
    assert gw.calls == ["meta:37i9dQZF1DX68H8ZujdnN8:None"]


async def test_link_prefers_the_requesters_linked_account_and_closes_it() -> None:
    gw = StubGateway()
    ctx = PipelineContext(settings=_settings(), spotify=gw, user_tokens=_tokens({7: "tok-7"}))
    fetched = await fetch_step(AnalysisRequest(link=PLAYLIST_URL, user_id=7), ctx, Events())
    assert len(fetched.tracks) == 300
    assert gw.calls == ["meta:37i9dQZF1DX68H8ZujdnN8:tok-7", "tracks:37i9dQZF1DX68H8ZujdnN8:tok-7"]
    assert gw.children[0].closed and not gw.closed
    # someone without a linked account goes through the app
    gw.calls.clear()
    await fetch_step(AnalysisRequest(link=PLAYLIST_URL, user_id=8), ctx, Events())
    assert gw.calls[0].endswith(":None")


async def test_reuse_hook_skips_reading_tracks_of_an_unchanged_snapshot() -> None:
    gw = StubGateway()
    ctx = PipelineContext(settings=_settings(), spotify=gw)
    stored = FetchResult(PlaylistMeta(id="x", name="Stored"), load_demo().tracks[:50])
    seen: list[str | None] = []

    async def reuse(meta: PlaylistMeta) -> FetchResult | None:
        seen.append(meta.snapshot_id)
        return stored

    fetched = await fetch_step(AnalysisRequest(link=PLAYLIST_URL), ctx, Events(), reuse=reuse)
    assert fetched is stored and seen == ["snap1"]
    assert not any(c.startswith("tracks:") for c in gw.calls)


async def test_liked_songs_need_a_linked_account() -> None:
    ctx = PipelineContext(settings=_settings(), spotify=StubGateway(), user_tokens=_tokens({}))
    with pytest.raises(AuthError) as err:
        await fetch_step(AnalysisRequest(liked=True, user_id=1), ctx, Events())
    assert "/spotify link" in err.value.user_message


async def test_liked_songs_use_the_user_token_and_limit() -> None:
    gw = StubGateway()
    ctx = PipelineContext(
        settings=_settings(max_playlist_tracks=500), spotify=gw, user_tokens=_tokens({1: "t"})
    )
    with pytest.raises(EmptyPlaylist):  # the stub's library is empty
        await fetch_step(AnalysisRequest(liked=True, user_id=1), ctx, Events())
    assert gw.calls == ["liked:t:500"]


async def test_link_without_credentials_or_bad_link() -> None:
    ctx = PipelineContext(settings=_settings())
    with pytest.raises(AuthError) as err:
        await fetch_step(AnalysisRequest(link=PLAYLIST_URL), ctx, Events())
    assert "CSV" in err.value.user_message
    with pytest.raises(InvalidLink):
        await fetch_step(AnalysisRequest(link="https://example.com/nope"), ctx, Events())
    with pytest.raises(InvalidInput):
        await fetch_step(AnalysisRequest(), ctx, Events())


async def test_featurize_uses_the_tracks_own_features_without_any_client() -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"network client used: {name}")

    fetched = load_demo()
    ctx = PipelineContext(
        settings=_settings(), spotify=Exploding(), reccobeats=Exploding(), feature_cache=Exploding()
    )
    table = await featurize_step(fetched, ctx, Events())
    assert table.coverage() == {"csv": 300}


def test_params_key_is_stable_and_distinct() -> None:
    assert params_key(None) == params_key(None)
    assert len({params_key(None), params_key(3), params_key(4)}) == 3


async def test_dev_mode_link_through_linked_account_with_reccobeats(fake_spotify) -> None:
    """Against the loopback fake: the requester's token reads their playlist (dev mode),
    audio features come from ReccoBeats, and the whole run needs nothing else."""
    from bot.features.cache import MemoryFeatureCache
    from bot.features.reccobeats import ReccoBeatsClient
    from bot.sources.spotify import SpotifyGateway
    from tests.fakes.spotify_fixtures import spotify_settings

    settings = spotify_settings(fake_spotify)
    app = SpotifyGateway(settings)
    recco = ReccoBeatsClient(settings.reccobeats_base, timeout_s=5.0)
    ctx = PipelineContext(
        settings=settings,
        spotify=app,
        reccobeats=recco,
        feature_cache=MemoryFeatureCache(),
        user_tokens=_tokens({42: fake_spotify.alice_token}),
    )
    link = f"https://open.spotify.com/playlist/{fake_spotify.alice_playlist}"
    try:
        analysis, rendered = await run_analysis(
            AnalysisRequest(link=link, user_id=42, k=3), ctx, Events()
        )
    finally:
        await recco.close()
        app.close()
    assert len(analysis.assignments) == 60 and analysis.k == 3
    assert analysis.coverage == {"reccobeats": 60}  # dev mode: no Spotify audio features
    assert "popularity" not in analysis.feature_names  # dev mode: no popularity field
    assert "ReccoBeats audio features for 60 tracks" in rendered.markdown


def test_packed_cluster_steps_give_the_same_analysis_as_cluster_step() -> None:
    """What crosses the process boundary in pieces rebuilds exactly what cluster_step makes."""
    import json

    from bot import codecs, pipeline
    from bot.jobs import cpu
    from bot.models import Analysis

    fetched = load_demo()
    features = pipeline.features_from_tracks(fetched.tracks)
    assert features is not None
    direct = cpu.cluster_step(fetched, features, 4)

    inputs = cpu.pickle_inputs(fetched, features, chunk=50)
    assert len(inputs[1]) > 1 and len(inputs[2]) > 1  # really in pieces
    packed = cpu.cluster_pickled_step(*inputs, 4)
    assert len(packed.chunks) == 1 + 1  # the head, then 300 tracks in one piece of 500
    called: list[int] = []
    decoded = cpu.unpack(packed, on_part=lambda: called.append(1))
    expected = direct.to_dict()
    expected["created_at"] = decoded.created_at  # set by each run
    assert decoded.to_dict() == expected and called == []
    small = cpu.pack(decoded, chunk=50)
    assert len(small.chunks) == 1 + 6
    assert cpu.unpack(small, on_part=lambda: called.append(1)).to_dict() == expected
    assert len(called) == 5  # between pieces, after the first

    # Two workers draw one analysis: its charts, and its texts with the JSON for storage.
    charts, none = cpu.render_packed_step(small, "charts")
    texts, squeezed = cpu.render_packed_step(small, "texts")
    parts = codecs.encode_parts(decoded)
    text = codecs.decompress_text(squeezed)
    assert none == "" and text == codecs.parts_text(parts)
    assert charts.png.startswith(b"\x89PNG") and charts.profile_png.startswith(b"\x89PNG")
    assert charts.markdown == charts.csv == "" and texts.png == texts.profile_png == b""
    merged = cpu.merge_rendered(charts, texts)
    whole = cpu.render_step(decoded)
    assert (merged.markdown, merged.csv, merged.summary) == (
        whole.markdown,
        whole.csv,
        whole.summary,
    )
    assert merged.png and merged.profile_png

    again = codecs.decode_parts(parts, on_part=lambda: called.append(1))
    assert again.to_dict() == decoded.to_dict()
    assert text.isascii()  # 1 byte per character in memory, whatever the names hold
    assert codecs.decode_text(text).to_dict() == decoded.to_dict()
    assert Analysis.from_dict(json.loads(text)).to_dict() == decoded.to_dict()
    old_format = json.dumps(decoded.to_dict())
    assert codecs.decode_text(old_format).to_dict() == decoded.to_dict()


def test_a_small_album_is_refused_by_name_when_read() -> None:
    """An EP of 4 tracks said "This playlist has only 4 playable tracks", and only after the
    features step (cache, ReccoBeats) had run for it."""
    ep = FetchResult(
        PlaylistMeta(id="a", name="Four Songs EP", kind="album"),
        [Track(id=f"t{i}", name=f"Song {i}") for i in range(4)],
        skipped={"local": 1},
    )
    with pytest.raises(TooSmall) as err:
        normalise(ep, 100)
    assert err.value.user_message == (
        "“Four Songs EP” has only 4 playable tracks (skipped: 1 local file); "
        "clustering needs at least 10."
    )
    ten = FetchResult(ep.meta, [Track(id=f"t{i}", name=f"Song {i}") for i in range(10)])
    assert normalise(ten, 100) is ten
