"""What the scheduler hands its poster (the digest cog), and how a run ended."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bot.digests.changes import DigestChanges
from bot.digests.schedule import DigestError, Schedule
from bot.errors import (
    AuthError,
    EditorialPlaylist,
    InvalidLink,
    NotFound,
    NotOwner,
    PipelineError,
    TooLarge,
)
from bot.sources.spotify.errors import NotRegistered
from storage.digests import Subscription

if TYPE_CHECKING:
    from bot.jobs import JobOutcome


class DestinationGone(Exception):
    """Raised by the poster when the channel is gone or the bot may no longer write there
    (Discord 404 Unknown Channel / 403 Missing Access). The subscription gets paused."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CreatorGone(Exception):
    """Raised by the creator check (:data:`CreatorCheck`) when the member who set up a digest
    is no longer in its server: the subscription gets paused before the playlist is read, as
    their linked Spotify account must not keep serving a server they left."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


MessageKind = Literal["digest", "unchanged", "skipped", "paused"]


@dataclass
class DigestMessage:
    """One thing for the cog to post.

    * ``digest``: full clusters (``outcome`` is the JobOutcome: analysis, rendered PNG…) plus
      ``changes`` since the previous digest (None on the first one) — to the channel.
    * ``unchanged``: the playlist did not change since ``since`` (ISO time) — to the channel.
    * ``skipped``: this slot was skipped for a reason worth saying once (``text``) — channel.
    * ``paused``: the subscription is paused (``text`` = reason) — to the guild (system
      channel or the first channel the bot can write in), since the channel may be gone.
    """

    kind: MessageKind
    subscription: Subscription
    text: str | None = None
    outcome: JobOutcome | None = None
    changes: DigestChanges | None = None
    since: str | None = None
    manual: bool = False  # /digest run rather than the schedule

    @property
    def schedule(self) -> Schedule | None:
        try:
            return Schedule.of(self.subscription)
        except DigestError:
            return None


Poster = Callable[[DigestMessage], Awaitable[None]]
# Asked before each run whether the subscription's creator is still a member of its server;
# raises CreatorGone when not (the digest cog asks Discord; this package never imports it).
CreatorCheck = Callable[[Subscription], Awaitable[None]]
RunStatus = Literal["posted", "unchanged", "skipped", "paused", "failed"]


@dataclass(frozen=True)
class RunResult:
    """How one run ended (``/digest run`` shows ``message`` to the person who asked)."""

    status: RunStatus
    message: str
    analysis_id: int | None = None


def public_reason(err: PipelineError) -> str:
    """Why a digest was paused, worded for a post the whole server reads (errors speak to
    the member who asked: "your linked account", "attach the CSV here")."""
    if isinstance(err, NotFound):
        return "Spotify can't find this playlist any more (it was deleted or made private)."
    if isinstance(err, EditorialPlaylist):
        return "it is one of Spotify's own editorial playlists, which apps can't read."
    if isinstance(err, InvalidLink):
        return "its link doesn't point to a Spotify playlist or album."
    if isinstance(err, TooLarge):
        return "the playlist has grown past the number of tracks this bot analyses."
    if isinstance(err, NotRegistered):
        return (
            "the Spotify account linked by the member who set up the digest is no longer on the "
            "bot's Spotify app's list of allowed users (Development Mode allows 5), so Spotify "
            "refuses it. The bot's owner can add it back in the Spotify developer dashboard "
            "(*User Management*)."
        )
    if isinstance(err, NotOwner | AuthError):
        return (
            "the bot can't read this playlist any more: it is private, or not owned by (or "
            "shared with) the linked Spotify account of the member who set up the digest, "
            "and Spotify only lets the bot read those. That member can `/spotify link` again."
        )
    return err.user_message
