"""Output and log hygiene: what the bot writes must not harm, ping or leak (issue #13).

Pure helpers, no discord import (the pipeline and storage use them too):

* :func:`csv_cell` / :func:`csv_row` / :func:`escape_csv_text`: spreadsheet formula injection
  (OWASP "CSV Injection"): a text cell starting with ``= + - @``, tab or carriage return is
  prefixed with ``'`` so Excel/LibreOffice/Sheets show it as text instead of running it.
* :func:`html_attr`, :func:`https_url`, :func:`md_link_url`: values going into the markdown
  report's HTML attributes and links (quotes escaped; only https URLs).
* :func:`neutralize_mentions`: text from data (playlist, track, file names) never forms a
  Discord mention.
* :func:`clamp_secret_loggers`: loggers that print secrets at DEBUG are held at INFO.
* :func:`reader_may_reuse`: whether a stored read of a playlist may serve another requester.
"""

from __future__ import annotations

import csv
import html
import io
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# --- CSV formula injection ------------------------------------------------------------------

#: First characters that make a spreadsheet treat a cell as a formula (OWASP CSV Injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# A plain number ("-4.969", "+1", "1e-05") is data, not a formula: spreadsheets read it as a
# number, and prefixing it would turn loudness and the x/y coordinates into text.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """``value`` safe to open in a spreadsheet: a text cell that could start a formula gets a
    leading ``'`` (shown as text, the quote itself hidden). Numbers and None pass unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


def csv_row(values: Iterable[Any]) -> list[Any]:
    """:func:`csv_cell` of every value of a row (for ``csv.writer.writerow``)."""
    return [csv_cell(v) for v in values]


def escape_csv_text(text: str) -> str:
    """A CSV document with every cell passed through :func:`csv_cell` (idempotent).

    For files stored before cells were escaped: they are escaped again when served.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in csv.reader(io.StringIO(text, newline="")):
        writer.writerow(csv_row(row))
    return buf.getvalue()


# --- HTML attributes and links in report.md --------------------------------------------------

# Characters that have no business in a URL we print: quotes, angle brackets, backslashes,
# whitespace and control characters (they end an attribute or a markdown link early).
_URL_BAD = re.compile(r"[\"'<>\\\s\x00-\x1f\x7f`]")


def html_attr(value: str | None) -> str:
    """``value`` escaped for a double-quoted HTML attribute (``& < > " '`` as entities)."""
    return html.escape(value or "", quote=True)


def https_url(url: str | None) -> str | None:
    """``url`` when it is a plain ``https://host/...`` URL, else None.

    Image and link URLs come from Spotify, the public page or an uploaded file: anything else
    (``http:``, ``javascript:``, ``data:``, quotes or spaces that end an attribute) is dropped.
    """
    if not url or _URL_BAD.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    return url


def md_link_url(url: str | None) -> str | None:
    """``url`` fit for a markdown link target ``[text](url)``: https only, no parentheses."""
    url = https_url(url)
    if url is None:
        return None
    return url.replace("(", "%28").replace(")", "%29")


_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_OUR_IMG = re.compile(r'<img src="([^"]*)" alt="" width="(\d+)" />')


def safe_report_md(text: str) -> str:
    """A stored report.md made safe to open, whatever version wrote it: the only raw HTML a
    report holds is its cover ``<img>`` tags; each is kept only as ``<img src="https://…">``
    with a plain https URL (re-escaped), any other ``<`` is escaped. Idempotent."""
    kept: list[str] = []

    def img(m: re.Match[str]) -> str:
        ours = _OUR_IMG.fullmatch(m.group(0))
        url = https_url(html.unescape(ours.group(1))) if ours else None
        if ours is None or url is None:
            return ""
        kept.append(f'<img src="{html_attr(url)}" alt="" width="{ours.group(2)}" />')
        return f"\x00{len(kept) - 1}\x00"

    out = _IMG_TAG.sub(img, text.replace("\x00", "")).replace("<", "&lt;")
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], out)


# --- Discord mentions -------------------------------------------------------------------------

# What Discord parses as a mention: @everyone, @here, <@id>, <@!id>, <@&role>.
_MENTION = re.compile(r"@(everyone|here)\b|<@([!&]?)(\d+)>")
ZWSP = "\u200b"


def neutralize_mentions(text: str | None) -> str:
    """``text`` (from data: playlist, track or file names) with mentions broken by a
    zero-width space, so it reads the same but can neither ping nor render as a mention."""
    if not text:
        return ""

    def fix(m: re.Match[str]) -> str:
        if m.group(1):
            return f"@{ZWSP}{m.group(1)}"
        return f"<@{ZWSP}{m.group(2)}{m.group(3)}>"

    return _MENTION.sub(fix, text)


# --- Logs -------------------------------------------------------------------------------------

#: Loggers that print secrets below INFO, and what they print:
#: * ``discord.gateway``: every gateway event at DEBUG, e.g. the pasted Spotify callback URL
#:   (``?code=…&state=…``) in a modal submission and each interaction's token;
#: * ``aiosqlite``: every statement with its parameters at DEBUG (OAuth ``state`` values);
#: * ``spotipy``: request headers (bearer tokens) at DEBUG.
#: * ``discord.webhook``: interaction webhook URLs, which carry the interaction's token.
SECRET_LOGGERS = ("discord.gateway", "discord.webhook", "aiosqlite", "spotipy")


def clamp_secret_loggers(names: Iterable[str] = SECRET_LOGGERS) -> None:
    """Hold each of ``names`` at INFO or above, whatever ``LOG_LEVEL`` the root logger has."""
    root = logging.getLogger().getEffectiveLevel()
    for name in names:
        logging.getLogger(name).setLevel(max(logging.INFO, root))


# --- Who may reuse a stored read --------------------------------------------------------------

#: Readers that see what anyone could see: the app's own credentials ("app") and Spotify's
#: public embed page ("page"). A read by a linked account is "user:<discord id>".
PUBLIC_READERS = frozenset({"app", "page"})


def user_reader(user_id: int) -> str:
    return f"user:{user_id}"


def reader_may_reuse(stored_readers: Iterable[str], reader: str) -> bool:
    """Whether a playlist snapshot read by ``stored_readers`` may be served to a requester
    who reads as ``reader``: the same reader, or the snapshot was readable publicly."""
    readers = set(stored_readers)
    return reader in readers or bool(readers & PUBLIC_READERS)


def uploader_scoped_id(source_id: str, user_id: int) -> str:
    """A CSV upload's source id made its uploader's: ``csv:<hash>`` → ``csv:u<user>:<hash>``.

    Stored entries and analyses are found by source id, so two members uploading the same rows
    never share them (nor see each other's file name)."""
    kind, _, rest = source_id.partition(":")
    return f"{kind}:u{user_id}:{rest}"


def audience(
    user_id: int, guild_id: int | None, requesters: set[int], guilds: set[int]
) -> str | None:
    """How a stored analysis may be shown to ``user_id`` asking in ``guild_id`` (None: a DM).

    ``"server"``: it was made or delivered in this server, so anyone here may see it (the
    result was posted here already); ``"requester"``: only privately, to someone it was made
    for (a DM analysis, or one made in another server); None: not at all."""
    if guild_id is not None and guild_id in guilds:
        return "server"
    if user_id in requesters:
        return "requester"
    return None


def safe_export(name: str, data: bytes) -> bytes:
    """A stored export as served: ``tracks.csv`` formula-escaped, ``report.md`` HTML-safe."""
    if name.endswith(".csv"):
        return escape_csv_text(data.decode("utf-8")).encode("utf-8")
    if name.endswith(".md"):
        return safe_report_md(data.decode("utf-8")).encode("utf-8")
    return data
