"""Spotify's public web pages, served by the loopback :class:`~tests.fakes.spotify_api.FakeSpotify`.

* ``/embed/playlist/{id}`` and ``/embed/album/{id}``: embed pages built like the real ones (2026):
  a Next.js HTML document whose ``<script id="__NEXT_DATA__" type="application/json">`` holds
  ``props.pageProps.state.data.entity`` with ``name``/``title``/``subtitle``/``authors``/
  ``coverArt``/``visualIdentity`` and a ``trackList`` of at most :data:`PAGE_TRACK_CAP` entries
  (``uri``, ``uid``, ``title``, ``subtitle`` = artists joined by ``",\\u00a0"``, ``duration``,
  ``isExplicit``, ``isPlayable``, ``audioPreview``, ``entityType``), next to the anonymous
  web-player session (with an ``accessToken`` that must never reach a log) and Next.js noise.
  JSON is escaped the way Next.js does it (``<`` → ``\\u003c``). Editorial ids (``37i9dQZF1…``)
  are served like any other public playlist. An unknown or private id answers **HTTP 200** with a
  ``pageProps`` holding only ``status``/``title`` (what the real site does); a real HTTP 404 can be
  injected with ``fake.fail_next("/embed/playlist/<id>", 404, body="…")``.
* ``/spotify.link/{code}``, ``/spotify.app.link/{code}``, ``/spoti.fi/{code}``: short links
  (``SPOTIFY_WEB_BASE`` pointed at the fake makes the bot request them here): a 307 to
  ``short_links[code]``, or, for codes in ``short_link_html``, an HTML page naming the target.

Knobs on ``fake.pages``: ``broken[id] = "no_next_data" | "bad_json" | "no_tracklist" |
"no_uris" | "renamed_entity"`` (Spotify changed the page), ``short_links``,
``short_link_html``, ``track_cap``; ``user_agents`` records who asked.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.fakes.spotify_api import FakePlaylist, FakeSpotify

PAGE_TRACK_CAP = 100
EDITORIAL_PREFIX = "37i9dQZF1"
ANON_TOKEN = "BQDfakeAnonymousWebPlayerToken_never_log_me"


def next_json(data: Any) -> str:
    """JSON as Next.js embeds it in a script tag (htmlEscapeJsonString)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, esc in (("&", "\\u0026"), (">", "\\u003e"), ("<", "\\u003c")):
        text = text.replace(raw, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def page_html(next_data: Any | None, *, raw_script: str | None = None) -> str:
    """An embed page around ``next_data`` (no __NEXT_DATA__ script when both are None)."""
    script = ""
    if raw_script is None and next_data is not None:
        raw_script = next_json(next_data)
    if raw_script is not None:
        script = f'<script id="__NEXT_DATA__" type="application/json">{raw_script}</script>'
    return (
        '<!DOCTYPE html><html lang="en" dir="ltr"><head><meta charSet="utf-8"/>'
        '<meta name="viewport" content="width=device-width"/><title>Spotify Embed</title>'
        '<link rel="preconnect" href="https://embed-cdn.spotifycdn.com"/>'
        '<script src="https://embed-cdn.spotifycdn.com/_next/static/chunks/webpack.js" defer="">'
        "</script><style>body{margin:0}</style></head><body>"
        '<div id="__next"><div class="EmbedWidget"><a href="https://open.spotify.com/">Spotify</a>'
        "</div></div>"
        f"{script}"
        '<script>self.__next_f=self.__next_f||[];self.__next_f.push([1,"</div>"])</script>'
        "</body></html>"
    )


def _uid(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


class FakePages:
    """Embed pages and short links for one FakeSpotify (``fake.pages``)."""

    def __init__(self, fake: FakeSpotify) -> None:
        self.fake = fake
        self.broken: dict[str, str] = {}
        self.short_links: dict[str, str] = {}
        self.short_link_html: set[str] = set()
        self.track_cap = PAGE_TRACK_CAP
        self.user_agents: list[str] = []  # User-Agent of every page / short-link request

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/embed/playlist/{pid}", self._playlist_page)
        router.add_get("/embed/album/{aid}", self._album_page)
        for host in ("spotify.link", "spotify.app.link", "spoti.fi"):
            router.add_get(f"/{host}/{{code}}", self._short_link)

    # -- builders ------------------------------------------------------------------------

    def _images(self, seed: str) -> tuple[dict, dict]:
        base = "https://i.scdn.co/image/ab67616d0000"
        urls = {w: f"{base}{w:04d}{seed[:16]}" for w in (640, 300, 64)}
        cover = {
            "extractedColors": {"colorDark": {"hex": "#4C3E35", "isFallback": False}},
            "sources": [{"url": u, "width": w, "height": w} for w, u in urls.items()],
        }
        ident = {
            "backgroundBase": {"alpha": 255, "blue": 53, "green": 62, "red": 76},
            "image": [{"url": u, "maxWidth": w, "maxHeight": w} for w, u in urls.items()],
        }
        return cover, ident

    def _artists_text(self, artist_ids: list[str]) -> str:
        return ",\u00a0".join(self.fake.artists[a]["name"] for a in artist_ids)

    def _track_row(self, tid: str, row_key: str, *, playable: bool = True) -> dict:
        t = self.fake.tracks[tid]
        return {
            "uri": f"spotify:track:{tid}",
            "uid": _uid(row_key, tid),
            "title": t["name"],
            "subtitle": self._artists_text(t["artist_ids"]),
            "isExplicit": bool(t["explicit"]),
            "isNineteenPlus": False,
            "contentRatings": {"labels": ["EXPLICIT"] if t["explicit"] else []},
            "duration": t["duration_ms"],
            "isPlayable": playable and t["playable"],
            "playabilityReason": "PLAYABLE" if playable else "UNAVAILABLE",
            "audioPreview": {
                "format": "MP3_96",
                "url": f"https://p.scdn.co/mp3-preview/{_uid('preview', tid)}",
            },
            "entityType": "track",
        }

    def _entry_row(self, pl: FakePlaylist, n: int, entry: Any) -> dict | None:
        key = f"{pl.id}:{n}"
        if entry is None:
            return None  # removed items are not shown on the page
        if isinstance(entry, str):
            return self._track_row(entry, key)
        if "unavailable" in entry:
            return self._track_row(entry["unavailable"], key, playable=False)
        if "episode" in entry:
            eid = _uid("episode", entry["episode"]) + "abcdef"
            return {
                "uri": f"spotify:episode:{eid}",
                "uid": _uid(key, eid),
                "title": entry["episode"],
                "subtitle": "Some podcast",
                "isExplicit": False,
                "duration": 1800000,
                "isPlayable": True,
                "entityType": "episode",
            }
        name = entry["local"]
        return {
            "uri": f"spotify:local:Local+Artist::{name.replace(' ', '+')}:180",
            "uid": _uid(key, name),
            "title": name,
            "subtitle": "Local Artist",
            "duration": 180000,
            "isPlayable": False,
            "entityType": "track",
        }

    def _document(self, kind: str, eid: str, entity: dict | None) -> dict:
        """The whole __NEXT_DATA__ object around ``entity`` (None: the not-found answer)."""
        if entity is None:
            page_props: dict[str, Any] = {
                "status": 404,
                "title": "Page not found",
                "description": "We can't seem to find the page you are looking for.",
                "links": [{"href": "https://open.spotify.com", "text": "Home"}],
                "rtl": False,
            }
        else:
            page_props = {
                "state": {
                    "data": {
                        "entity": entity,
                        "embeded_entity_uri": f"spotify:{kind}:{eid}",
                        "defaultAudioFileObject": {"url": [], "format": "MP3_96"},
                    },
                    "settings": {
                        "rtl": False,
                        "session": {
                            "accessToken": ANON_TOKEN,
                            "accessTokenExpirationTimestampMs": 1796000000000,
                            "isAnonymous": True,
                        },
                        "entityContext": kind,
                        "clientId": "ab9ad0d96a624805a7d51e8868df1f97",
                        "isMobile": False,
                        "isSafari": False,
                        "isIOS": False,
                        "isTablet": False,
                        "isDarkMode": True,
                    },
                    "machineState": {"initted": False, "playbackMode": "UNKNOWN"},
                },
                "config": {"correlationId": _uid("corr", eid), "strings": {"en": {}}},
                "_sentryTraceData": "0" * 32,
            }
        return {
            "props": {"pageProps": page_props, "__N_SSP": True},
            "page": f"/{kind}/[id]",
            "query": {"id": eid},
            "buildId": "fake-build-2026",
            "assetPrefix": "https://embed-cdn.spotifycdn.com",
            "isFallback": False,
            "isExperimentalCompile": False,
            "gssp": True,
            "scriptLoader": [],
        }

    def _respond(self, kind: str, eid: str, entity: dict | None) -> web.Response:
        doc = self._document(kind, eid, entity)
        mode = self.broken.get(eid)
        if mode == "no_next_data":
            html = page_html(None)
        elif mode == "bad_json":
            html = page_html(None, raw_script=next_json(doc)[:-40])
        else:
            if entity is not None and mode == "no_tracklist":
                entity["items"] = entity.pop("trackList")
            if entity is not None and mode == "renamed_entity":
                data = doc["props"]["pageProps"]["state"]["data"]
                data["entityV2"] = data.pop("entity")
            if entity is not None and mode == "no_uris":
                for row in entity["trackList"]:
                    row["trackUri"] = row.pop("uri")
            html = page_html(doc)
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    # -- handlers ------------------------------------------------------------------------

    async def _playlist_page(self, request: web.Request) -> web.Response:
        pid = request.match_info["pid"]
        self.user_agents.append(request.headers.get("User-Agent", ""))
        pl = self.fake.playlists.get(pid)
        if pl is None or not pl.public:
            return self._respond("playlist", pid, None)
        owner = self.fake.users.get(pl.owner_id)
        owner_name = owner.display_name if owner else pl.owner_id
        if pid.startswith(EDITORIAL_PREFIX):
            owner_name = "Spotify"
        rows = [self._entry_row(pl, n, e) for n, e in enumerate(pl.entries)]
        listed = [r for r in rows if r is not None][: self.track_cap]
        cover, ident = self._images(pid)
        entity = {
            "type": "playlist",
            "name": pl.name,
            "uri": f"spotify:playlist:{pid}",
            "id": pid,
            "title": pl.name,
            "subtitle": owner_name,
            "authors": [{"name": owner_name}],
            "releaseDate": None,
            "coverArt": cover,
            "trackList": listed,
            "visualIdentity": ident,
            "hasVideo": False,
            "relatedEntityUri": f"spotify:user:{pl.owner_id}",
        }
        if pl.description:
            entity["description"] = pl.description
        return self._respond("playlist", pid, entity)

    async def _album_page(self, request: web.Request) -> web.Response:
        aid = request.match_info["aid"]
        self.user_agents.append(request.headers.get("User-Agent", ""))
        al = self.fake.albums.get(aid)
        if al is None:
            return self._respond("album", aid, None)
        cover, ident = self._images(aid)
        artists = self._artists_text(al["artist_ids"])
        rows = [self._track_row(t, f"{aid}:{n}") for n, t in enumerate(al["track_ids"])]
        date = al["release_date"]
        iso = f"{date}T00:00:00Z" if len(date) == 10 else f"{date[:4]}-01-01T00:00:00Z"
        entity = {
            "type": "album",
            "name": al["name"],
            "uri": f"spotify:album:{aid}",
            "id": aid,
            "title": al["name"],
            "subtitle": artists,
            "releaseDate": {"isoString": iso},
            "coverArt": cover,
            "trackList": rows[: self.track_cap],
            "visualIdentity": ident,
            "hasVideo": False,
        }
        return self._respond("album", aid, entity)

    async def _short_link(self, request: web.Request) -> web.Response:
        code = request.match_info["code"]
        self.user_agents.append(request.headers.get("User-Agent", ""))
        target = self.short_links.get(code)
        if target is None:
            return web.Response(status=404, text="Not found")
        if code in self.short_link_html:
            body = (
                '<html><head><meta property="og:url" content="'
                f'{target}"/><title>Spotify</title></head><body>'
                f'<a href="{target}">Open in Spotify</a></body></html>'
            )
            return web.Response(text=body, content_type="text/html")
        return web.Response(status=307, headers={"Location": target})
