"""Spotify Web API access for the pipeline: playlists, albums, liked songs, audio features.

One module per concern:

* :mod:`.transport` — spotipy on its own thread pool, bounded concurrency, retries/timeouts,
  429 handling, paging; the accounts service's form POSTs go through the same threads;
* :mod:`.errors` — the ONE place an HTTP status becomes a typed :mod:`bot.errors` error with a
  user message (Web API and accounts service alike);
* :mod:`.parse` — Spotify JSON → :class:`~bot.models.Track` / :class:`~bot.models.PlaylistMeta`;
* :mod:`.catalog` — playlist/album reads, audio features, Extended-mode enrichment;
* :mod:`.gateway` — :class:`SpotifyGateway` (adds the linked user's endpoints) and
  :func:`user_gateway`, the one way to build a gateway acting as a user, and
  :func:`gateway_for_user`, the one path from a Discord user id to it.
"""

from bot.sources.spotify.catalog import FeaturesUnavailable
from bot.sources.spotify.errors import EDITORIAL_MESSAGE, NOT_OWNER_MESSAGE
from bot.sources.spotify.gateway import SpotifyGateway, UserTokens, gateway_for_user, user_gateway

__all__ = [
    "EDITORIAL_MESSAGE",
    "NOT_OWNER_MESSAGE",
    "FeaturesUnavailable",
    "SpotifyGateway",
    "UserTokens",
    "gateway_for_user",
    "user_gateway",
]
