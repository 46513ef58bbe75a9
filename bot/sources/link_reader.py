"""One shared playlist/album link → its tracks, from the first source that can read it.

Order (README "Spotify in 2026"):

1. the Spotify Web API, as the requester's linked account if they have one, else as the bot's
   app: metadata (one request, gives the real track count), then the entries;
2. when the API can't read the entries (Development Mode: not the reader's playlist; a
   Spotify-made ``37i9dQZF1…`` playlist; the app suspended, rate-limited or not configured) →
   Spotify's public embed page (:mod:`bot.sources.public_page`): the first ~100 tracks, no token;
3. when that fails too → the help the API gave ("link your account or attach an Exportify CSV"),
   phrased for what happened: a linked member asking for someone else's playlist is told Spotify
   only lets apps read playlists they own or collaborate on, and what was tried next.

A page read keeps the API's track count (``meta.total``) when the metadata answered, so the
overview can say "first 100 of 1,240 tracks". :func:`public_page_note` words that, with the way
to all of the tracks that works for whoever reads it (linking only helps a playlist's owner or
collaborators; an Exportify CSV works for anyone).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.errors import (
    AppSuspended,
    AuthError,
    EditorialPlaylist,
    NotFound,
    NotOwner,
    PipelineError,
    QuotaExceeded,
    RateLimited,
    SpotifyUnavailable,
)
from bot.models import FetchResult, PlaylistMeta, Progress, ProgressCallback
from bot.retry_after import wait_in_words
from bot.sources.links import SpotifyRef, is_short_link, parse_spotify_link
from bot.sources.normalise import check_total
from bot.sources.public_page import PublicPageReader, PublicPageUnreadable
from bot.sources.spotify.catalog import EDITORIAL_PREFIX
from bot.sources.spotify.errors import NOT_OWNER_MESSAGE, quota_exceeded
from bot.sources.status import SourceStatus

if TYPE_CHECKING:
    from bot.pipeline import Reused

log = logging.getLogger(__name__)

EXPORTIFY = "export it with Exportify (https://exportify.net) and attach the CSV file here"
LINKED_NOT_OWNER = (
    "Spotify only lets apps read playlists you own or collaborate on, so your linked account "
    "can't read this one."
)
PAGE_SNAPSHOT_PREFIX = "page:"
# An app token has no user, so in Development Mode Spotify refuses it every playlist's entries.
# After one such refusal the app's entry reads are skipped (public page straight after the
# metadata) for this long; an upgrade to Extended Quota is noticed within the hour.
APP_REFUSAL_MEMORY_S = 3600.0
# The app's quota (a 429 QUOTA_EXCEEDED, shared by the app's token and every linked member's):
# until its Retry-After has passed, links go straight to the public page. Each link had made one
# more refused API call first, for the whole window (hours).
SPOTIFY_QUOTA = "spotify_quota"

# API failures after which the public page is tried. Anything else (the playlist doesn't exist,
# is too large, has nothing playable) is the answer as it is.
_FALL_BACK_ON = (NotOwner, EditorialPlaylist, RateLimited, SpotifyUnavailable, AuthError)


async def resolve_ref(text: str, pages: PublicPageReader | None) -> SpotifyRef:
    """A pasted link as a reference; a short link (``spotify.link/…``) is followed first."""
    if is_short_link(text) and pages is not None:
        return await pages.resolve_short_link(text)
    return parse_spotify_link(text)


def is_public_page_read(meta: PlaylistMeta) -> bool:
    """The listing came from Spotify's public page (its snapshot id is a hash of the page)."""
    return bool(meta.snapshot_id and meta.snapshot_id.startswith(PAGE_SNAPSHOT_PREFIX))


#: Who reads a partial listing's note (:func:`public_page_note`), so it says what is true for
#: them. Worked out when the note is shown, never stored with the shared analysis.
FOR_ANYONE = "anyone"  # no one member in particular: a digest, a stored result shown again
FOR_UNLINKED = "unlinked"  # the member who asked has no linked account
FOR_LINKED = "linked"  # the member who asked is linked, and their account couldn't read it all
NO_LINKING = "no-linking"  # linking isn't offered here (the CLI, a bot without a Spotify app)

# Each fits where the longest overview has room at 420 px (no extra line at k = 20: 2,392 px).
_HOW = {
    # Development Mode: the API reads all of a playlist only for its owner or collaborators.
    FOR_ANYONE: "only its owner can link for all of them; anyone can attach an Exportify CSV",
    FOR_UNLINKED: "if it's yours, `/spotify link` reads all of it; else attach an Exportify CSV",
    FOR_LINKED: "apps read all only of what you own or collaborate on; use an Exportify CSV",
    NO_LINKING: "attach an Exportify CSV for all of them",
}
# Spotify-made playlists (37i9dQZF1…): no app reads all of them, linked or not.
_HOW_EDITORIAL = "no app reads Spotify-made playlists in full: copy it or use an Exportify CSV"
# Albums: any Spotify app reads all of one (catalog data, Development Mode too), and Exportify
# exports playlists, not albums. A page read of an album means the app's API didn't answer this
# time, or there is no app (the CLI without credentials).
_HOW_ALBUM = "the Spotify API reads whole albums: ask again later for all of them"
_HOW_ALBUM_NO_APP = "with SPOTIFY_CLIENT_ID/SECRET set, the Spotify API reads whole albums"


def reader_for(*, linking: bool, linked: bool) -> str:
    """The note's reader for the member who asked: ``linking``: the bot offers linking;
    ``linked``: the member has a linked account."""
    if not linking:
        return NO_LINKING
    return FOR_LINKED if linked else FOR_UNLINKED


def public_page_note(meta: PlaylistMeta, shown: int, *, reader: str = FOR_ANYONE) -> str | None:
    """The overview's plain sentence when a public page listed only part of the playlist.

    ``shown``: the tracks the page listed (analysed or skipped). ``reader``: who reads it
    (:data:`FOR_ANYONE`, :data:`FOR_UNLINKED`, :data:`FOR_LINKED`, :data:`NO_LINKING`): the
    way to all of the tracks is the one that works for them. None when the page showed the
    whole playlist or the listing did not come from a page.
    """
    if not is_public_page_read(meta):
        return None
    if meta.kind == "album":
        how = _HOW_ALBUM_NO_APP if reader == NO_LINKING else _HOW_ALBUM
    elif meta.id.startswith(EDITORIAL_PREFIX) and reader != NO_LINKING:
        how = _HOW_EDITORIAL
    else:
        how = _HOW.get(reader, _HOW[FOR_ANYONE])
    if meta.total is None:
        if shown < 100:
            return None
        return f"first {shown:,} tracks, from Spotify's public page (it shows no more); {how}"
    if meta.total <= shown:
        return None
    return f"first {shown:,} of {meta.total:,} tracks, from Spotify's public page; {how}"


def _outcome(exc: PipelineError) -> str:
    """A failed read in a few words, for /about."""
    if isinstance(exc, NotOwner):
        return "refused: only playlists its user owns or collaborates on"
    if isinstance(exc, EditorialPlaylist):
        return "refused: Spotify-made playlists"
    if isinstance(exc, NotFound):
        return "works (the last link was private or missing)"
    if isinstance(exc, PublicPageUnreadable):
        return "failed: the page changed (see the log)"
    if isinstance(exc, RateLimited):
        return f"rate-limited ({exc.code})"
    if isinstance(exc, AppSuspended):
        return "suspended: the app owner's Spotify Premium has lapsed"
    return f"failed ({exc.code})"


async def read_link(
    ref: SpotifyRef,
    *,
    app: Any | None,
    user: Any | None,
    pages: PublicPageReader | None,
    progress: ProgressCallback,
    limit: int,
    reuse: Callable[[PlaylistMeta], Awaitable[Reused | None]] | None = None,
    status: SourceStatus | None = None,
) -> FetchResult | Reused:
    """The link's tracks from the first source that can read them (see the module doc).

    ``app``/``user``: Spotify gateways (``get_meta``/``fetch_tracks``) as the bot's app and as
    the requester's linked account (either may be None); ``pages``: the public page reader
    (None when ``SPOTIFY_PUBLIC_PAGES`` is off). ``reuse(meta)`` may return a stored fetch of
    the same API snapshot after the metadata request: whatever it returns (the pipeline's
    ``Reused``) is returned as it is. Else the FetchResult read.
    """
    gateway = user if user is not None else app
    source = "linked" if user is not None else "app"
    if gateway is not None and not getattr(gateway, "has_credentials", True):
        gateway = None
    api_error: PipelineError | None = None
    api_meta: PlaylistMeta | None = None
    remembered: NotOwner | None = None
    quota_left = status.paused_for(SPOTIFY_QUOTA) if status is not None else 0.0
    if gateway is not None and quota_left > 0:
        api_error, gateway = quota_exceeded(quota_left), None
    if gateway is not None:
        try:
            api_meta = await gateway.get_meta(ref)
            check_total(api_meta, limit)
            if reuse is not None:
                stored = await reuse(api_meta)
                if stored is not None:
                    return stored
            if (
                source == "app"
                and pages is not None
                and ref.kind == "playlist"
                and status is not None
                and status.refused_entries_within("app", APP_REFUSAL_MEMORY_S)
            ):
                remembered = NotOwner(NOT_OWNER_MESSAGE, detail="app refused entries lately")
                raise remembered
            fetched = await gateway.fetch_tracks(ref, api_meta, progress)
        except _FALL_BACK_ON as exc:
            api_error = exc
            if status is not None and exc is not remembered:  # the memory ages, not renewed
                status.record(source, False, _outcome(exc), not_owner=isinstance(exc, NotOwner))
            if isinstance(exc, QuotaExceeded) and status is not None:
                status.pause(SPOTIFY_QUOTA, exc.retry_after)
                log.warning(
                    "Spotify API quota used up: links are read from their public page, without "
                    "API calls, for the next %s",
                    wait_in_words(exc.retry_after),
                )
            if getattr(exc, "for_operator", False):  # wrong app credentials: say so, not INFO
                log.warning(
                    "%s Reading %s %s from its public page instead.",
                    exc.user_message, ref.kind, ref.id,
                )  # fmt: skip
            else:
                log.info("Spotify API can't read %s %s (%s)", ref.kind, ref.id, exc.code)
        else:
            if status is not None:
                status.record(source, True)
            return fetched
    if pages is None:
        raise _no_page_help(ref, api_error, linked=user is not None)
    try:
        page = await pages.read(ref)
    except PipelineError as exc:
        if status is not None:
            status.record("page", isinstance(exc, NotFound), _outcome(exc))
        raise _page_failed(ref, api_error, exc, linked=user is not None) from None
    if status is not None:
        status.record("page", True)
    fetched = page.fetched
    # The API's count says how much a page at its cap left out. A page short of the cap lists
    # the whole playlist: the API also counts entries no page shows (removed tracks), and
    # "first 36 of 37 tracks … attach an Exportify CSV for all of them" promised one more.
    if api_meta is not None and api_meta.total is not None and page.maybe_truncated:
        fetched.meta.total = api_meta.total
    n = len(fetched.tracks)
    await progress(Progress("fetching", done=n, total=n))
    return fetched


def _no_credentials() -> AuthError:
    return AuthError(
        "This bot has no Spotify credentials configured, so it cannot read playlists. "
        "Attach an Exportify CSV (https://exportify.net) instead."
    )


def _no_page_help(ref: SpotifyRef, api_error: PipelineError | None, *, linked: bool) -> Exception:
    """Public pages off: the API's own answer (linked members get the precise reason)."""
    if api_error is None:
        return _no_credentials()
    if linked and isinstance(api_error, NotOwner):
        return NotOwner(
            f"{LINKED_NOT_OWNER} Ask its owner, or {EXPORTIFY}.", detail=api_error.detail
        )
    return api_error


def _page_failed(
    ref: SpotifyRef, api_error: PipelineError | None, page_error: PipelineError, *, linked: bool
) -> PipelineError:
    """Neither the API nor the public page could read the link: say both, then the help."""
    if api_error is None:
        return page_error  # the page's own message already carries the help
    if page_error.user_message == api_error.user_message:
        return api_error  # both unreachable alike (no network): say it once
    if isinstance(page_error, NotFound):
        why = f"Its public page isn't available either (the {ref.kind} may be private)"
    elif isinstance(page_error, PublicPageUnreadable):
        why = "Its public page couldn't be read either (Spotify may have changed it)"
    else:
        why = f"Its public page couldn't be read right now either ({page_error.user_message})"
    if linked and isinstance(api_error, NotOwner):
        return NotOwner(f"{LINKED_NOT_OWNER} {why}, so {EXPORTIFY}.", detail=api_error.detail)
    message = f"{api_error.user_message}\n{why}."
    api_error.user_message = message
    api_error.args = (message,)
    return api_error
