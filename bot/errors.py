"""Typed pipeline errors.

Every failure a user can cause or hit is one of these. Each carries a ``user_message`` written
for the person who asked (the Discord layer shows it as is, ephemerally when ``ephemeral``), and
the CLI prints it. Nothing here may contain a secret.
"""

from __future__ import annotations

import logging
import secrets

log = logging.getLogger(__name__)


def new_incident_id() -> str:
    """A short random id (8 hex digits) tying a user-facing "something went wrong" to the log."""
    return secrets.token_hex(4)


class PipelineError(Exception):
    """Base class: a failure with a message fit to show the user."""

    code = "error"
    # Shown privately to whoever asked (README: every typed error is explained privately, also
    # quota, rate limits and Spotify outages); the only public one is JobInterrupted.
    ephemeral = True
    #: The message is for the bot's operator (it names settings, paths, the database): members
    #: see :attr:`member_text` and an incident id instead (:func:`member_message`), and the
    #: operator's log gets the message.
    for_operator = False
    member_text = "Something is wrong on the bot's side."

    def __init__(self, user_message: str, *, detail: str | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail
        self.incident_id: str | None = None


class InvalidLink(PipelineError):
    """Not a Spotify playlist/album link (or a track/artist/podcast link instead)."""

    code = "invalid_link"


class InvalidCsv(PipelineError):
    """An attached file that is not a usable Exportify-style CSV (columns named in the message)."""

    code = "invalid_csv"


class InvalidInput(PipelineError):
    """A parameter out of range, e.g. a cluster count k the playlist cannot support."""

    code = "invalid_input"


class NotOwner(PipelineError):
    """403 on playlist items: dev-mode apps may only read the signed-in user's playlists."""

    code = "not_owner"


class NotFound(PipelineError):
    """404 (or an id Spotify does not accept): nothing there, or private to someone else."""

    code = "not_found"


class EditorialPlaylist(PipelineError):
    """Spotify-owned editorial/algorithmic playlists (37i9dQZF1…) are not readable by apps."""

    code = "editorial"


class RateLimited(PipelineError):
    code = "rate_limited"

    def __init__(self, user_message: str, *, retry_after: float, detail: str | None = None):
        super().__init__(user_message, detail=detail)
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    code = "quota_exceeded"


class SpotifyUnavailable(PipelineError):
    """5xx, timeouts, connection errors."""

    code = "spotify_unavailable"


class AppSuspended(SpotifyUnavailable):
    """Every call answers 403 "Active premium subscription required for the owner of the app":
    the bot owner's Spotify Premium lapsed. Raised by the Spotify error mapper (logged once at
    ERROR for the operator); users are told the bot's Spotify app is suspended."""

    code = "app_suspended"


class AuthError(PipelineError):
    """App credentials missing/wrong, or a user token that can no longer be refreshed."""

    code = "auth"


class AppAuthError(AuthError):
    """The bot's own Spotify app credentials are missing or rejected: every request fails the
    same way until the operator fixes them (digests are not paused for it). The message names
    the settings, so it is the operator's: members see :attr:`member_text` and an incident id."""

    code = "app_auth"
    for_operator = True
    member_text = (
        "The bot's connection to Spotify isn't working, so it can't read playlists for anyone "
        "right now. Attaching an Exportify CSV (https://exportify.net) still works."
    )

    def __init__(
        self, user_message: str, *, detail: str | None = None, member_text: str | None = None
    ) -> None:
        super().__init__(user_message, detail=detail)
        if member_text is not None:
            self.member_text = member_text


class RelinkRequired(AuthError):
    """``invalid_grant``: refresh token expired (6 months) or revoked."""

    code = "relink_required"


class NotLinked(AuthError):
    """The user has no linked Spotify account but the action needs one."""

    code = "not_linked"


class LinkError(PipelineError):
    """A failed ``/spotify link`` step (bad/expired/replayed state, refused consent, bad code)."""

    code = "link"


class EmptyPlaylist(PipelineError):
    """No playable tracks left after skipping local files, episodes and duplicates."""

    code = "empty"


class TooSmall(PipelineError):
    """Too few tracks to form the clusters asked for."""

    code = "too_small"


class NothingToCluster(PipelineError):
    """Too few tracks with sound data and no metadata (release year, popularity, length) to
    group them by instead (a file of names and ids only, ReccoBeats knowing few of them)."""

    code = "nothing_to_cluster"


class TooLarge(PipelineError):
    """More tracks than ``MAX_PLAYLIST_TRACKS``."""

    code = "too_large"


class LimitReached(PipelineError):
    """Per-user / per-guild concurrent job limits."""

    code = "limit"


class StorageError(PipelineError):
    """The database failed (disk full, locked, corrupt): not the user's doing."""

    code = "storage"
    for_operator = True
    member_text = "The bot couldn't read or save its data just now; please try again later."


def member_message(err: PipelineError) -> str:
    """What a member is told about ``err``: its message, or — for an operator's error — a plain
    sentence and an incident id, the message itself logged once under that id."""
    if not err.for_operator:
        return err.user_message
    if err.incident_id is None:
        err.incident_id = new_incident_id()
        detail = f" ({err.detail})" if err.detail else ""
        log.error("Incident %s: %s%s", err.incident_id, err.user_message, detail)
    return (
        f"{err.member_text} The bot's owner can look it up in the logs "
        f"(incident `{err.incident_id}`)."
    )
