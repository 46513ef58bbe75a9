"""Spotify account linking, split by concern:

* :mod:`.oauth` — scopes, PKCE, redirect URIs, the accounts service's token endpoint (through
  the Spotify transport and its one status mapper);
* :mod:`.tokens` — stored links: fresh access tokens (refresh, ``invalid_grant`` → the link
  dropped with a one-time relink notice), status, unlinking;
* :mod:`.link` — the ``/spotify link`` flow (state, code exchange, allow-list check);
* :mod:`.service` — :class:`AccountService`: all of the above plus Spotify as the user
  (their playlists, Liked Songs, 💚 marks, saving clusters).
"""

from bot.accounts.link import LinkListener
from bot.accounts.oauth import (
    CALLBACK_PATH,
    CONSENT_LIFETIME,
    REFRESH_MARGIN_S,
    SAVE_SCOPES,
    SCOPES,
    STATE_RETENTION,
    STATE_TTL,
    consent_error_message,
    make_pkce_pair,
    redirect_uri_for,
    uses_web_callback,
)
from bot.accounts.service import PLAYLISTS_CACHE_S, AccountService
from bot.accounts.tokens import relink_notice_text
from bot.errors import LinkError, NotLinked

__all__ = [
    "CALLBACK_PATH",
    "CONSENT_LIFETIME",
    "PLAYLISTS_CACHE_S",
    "REFRESH_MARGIN_S",
    "SAVE_SCOPES",
    "SCOPES",
    "STATE_RETENTION",
    "STATE_TTL",
    "AccountService",
    "LinkError",
    "LinkListener",
    "NotLinked",
    "consent_error_message",
    "make_pkce_pair",
    "redirect_uri_for",
    "relink_notice_text",
    "uses_web_callback",
]
