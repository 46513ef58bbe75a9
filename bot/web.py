"""The bot's small aiohttp web server: Spotify's OAuth redirect lands on ``/spotify/callback``.

Only started when ``PUBLIC_BASE_URL`` is set (see :func:`bot.accounts.uses_web_callback`);
without it users paste the redirected URL into Discord instead. Pages are tiny static HTML
with a strict Content-Security-Policy, no caching and no referrer (the URL carries the code).
"""

from __future__ import annotations

import html
import logging

from aiohttp import web

from bot.accounts import CALLBACK_PATH, AccountService, consent_error_message
from bot.config import Settings
from bot.errors import PipelineError

log = logging.getLogger(__name__)

ACCOUNTS_KEY = web.AppKey("accounts", AccountService)

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Playlist Clusters</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;
line-height:1.5}}h1{{font-size:1.4rem}}</style></head>
<body><h1>{icon} {title}</h1><p>{body}</p></body></html>
"""


def page(title: str, body: str, *, ok: bool, status: int = 200) -> web.Response:
    """A small HTML page; ``title`` and ``body`` are escaped here."""
    text = _PAGE.format(icon="✅" if ok else "⚠️", title=html.escape(title), body=html.escape(body))
    return web.Response(
        text=text, status=status, content_type="text/html", headers=_SECURITY_HEADERS
    )


async def spotify_callback(request: web.Request) -> web.Response:
    """Spotify redirects here with ``code`` + ``state`` (or ``error``) after consent."""
    accounts = request.app[ACCOUNTS_KEY]
    query = request.query
    if "error" in query:
        return page("Not linked", consent_error_message(query["error"]), ok=False, status=400)
    state, code = query.get("state"), query.get("code")
    if not state or not code:
        return page(
            "Not linked",
            "This address is missing the authorization code. Start again with /spotify link "
            "in Discord.",
            ok=False,
            status=400,
        )
    try:
        info = await accounts.complete_link(state, code)
    except PipelineError as exc:
        return page("Not linked", exc.user_message.replace("`", ""), ok=False, status=400)
    except Exception:
        log.exception("Spotify callback failed")
        return page(
            "Something went wrong",
            "The bot could not finish linking. Try /spotify link again in a few minutes.",
            ok=False,
            status=500,
        )
    name = info.get("display_name") or info.get("spotify_user_id") or "your Spotify account"
    return page(
        "Linked",
        f"Linked as {name}. You can close this tab and go back to Discord.",
        ok=True,
    )


async def health(_: web.Request) -> web.Response:
    return web.Response(text="ok", headers={"Cache-Control": "no-store"})


def build_app(accounts: AccountService) -> web.Application:
    app = web.Application()
    app[ACCOUNTS_KEY] = accounts
    app.router.add_get(CALLBACK_PATH, spotify_callback)
    app.router.add_get("/healthz", health)
    return app


class CallbackServer:
    """Runs :func:`build_app` on ``settings.web_host``:``settings.web_port``."""

    def __init__(self, accounts: AccountService, settings: Settings) -> None:
        self.accounts = accounts
        self.settings = settings
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        runner = web.AppRunner(build_app(self.accounts), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.web_host, self.settings.web_port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses  # [(host, port, ...)]: the real port when web_port is 0
        self.port = int(addresses[0][1]) if addresses else self.settings.web_port
        log.info("OAuth callback server listening on %s:%s", self.settings.web_host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
