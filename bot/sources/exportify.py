"""Read playlists exported with Exportify (https://exportify.net) — no Spotify calls needed.

Exportify's header changed over the years; all of these are accepted (matched by column name,
case/spacing-insensitively, in any order):

* current: ``Track URI,Track Name,Album Name,Artist Name(s),Release Date,Duration (ms),
  Popularity,Explicit,Added By,Added At,Genres,Record Label,Danceability,…,Time Signature``
  (some versions add ``ISRC`` after the URI),
* older:   ``Spotify ID,Artist IDs,Track Name,Album Name,Artist Name(s),Release Date,…``,
* oldest (watsonbox): ``Track URI,Track Name,Artist URI,Artist Name,Album URI,…`` and the
  variant with ``Artist URI(s)``, ``Album Release Date``, ``Track Duration (ms)``,
* exportify.app's (watsonbox) current ``Track URI,Track Name,Artist URI(s),Artist Name(s),Album URI,
  …,ISRC,Added By,Added At[,Artist Genres][,Danceability,…][,Album Genres,Label,Copyrights]``, in
  any of the 12 languages it writes its header in (:mod:`bot.sources.exportify_headers`),
* the TidyTuesday Spotify dataset's snake_case columns (``track_id,track_name,track_artist,…``).

Audio-feature columns, when present, become ``Track.features`` so such CSVs need no feature
look-ups at all. Local files, podcast episodes, empty rows, malformed ids and duplicates are
skipped and counted.

Why one module (~600 lines): decoding a file (encodings, Mac Roman vs cp1252, zip/xlsx told
apart), finding its header and reading its rows all answer one question — what a member's
file says — and share the error messages that name the file; the column names in every
language already live apart (:mod:`bot.sources.exportify_headers`). The seam, should it grow:
decoding bytes to text (``decode_csv`` and ``_plausibility``) from reading the rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
import unicodedata
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePath

from bot.errors import InvalidCsv
from bot.models import AUDIO_FEATURES, FEATURE_KEYS, FetchResult, PlaylistMeta, Track
from bot.sources.exportify_headers import TRANSLATED
from bot.sources.links import SPOTIFY_ID_RE

MAX_CSV_BYTES = 20 * 1024 * 1024
# Skipped-count key for audio cells that are not finite numbers ("Skipped: 2 unreadable …").
UNREADABLE = "unreadable audio values"
EXPORTIFY_HINT = "Export the playlist with Exportify (https://exportify.net) and attach that file."

# field -> accepted header names (normalised: lower case, non-alphanumerics → single space)
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("track uri", "spotify id", "track id", "uri", "spotify uri", "id"),
    "name": ("track name", "name", "title", "song"),
    "artists": (
        "artist name s",
        "artist names",
        "artist name",
        "artists",
        "artist",
        "track artist",
    ),
    "artist_ids": ("artist ids", "artist uri s", "artist uris", "artist uri", "artist id"),
    "album": ("album name", "album", "track album name"),
    "album_id": ("album uri", "album id", "track album id"),
    "release_date": ("release date", "album release date", "track album release date"),
    "duration_ms": ("duration ms", "track duration ms"),
    "popularity": ("popularity", "track popularity"),
    "explicit": ("explicit",),
    "added_by": ("added by",),
    "added_at": ("added at",),
    "genres": ("genres", "genre"),
    "label": ("record label", "label"),
    "isrc": ("isrc",),
    "image_url": ("album image url",),
    "danceability": ("danceability",),
    "energy": ("energy",),
    "key": ("key",),
    "loudness": ("loudness",),
    "mode": ("mode",),
    "speechiness": ("speechiness",),
    "acousticness": ("acousticness",),
    "instrumentalness": ("instrumentalness",),
    "liveness": ("liveness",),
    "valence": ("valence",),
    "tempo": ("tempo",),
    "time_signature": ("time signature",),
}


def _norm(header: str) -> str:
    """Lower case, any run of non-letters/digits (BOM included) → one space, in any script:
    "Énergie" stays "énergie" and "トラックURI" "トラックuri" (ASCII-only rules left "nergie")."""
    return re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", header).casefold()).strip()


def _aliases() -> dict[str, tuple[str, ...]]:
    """COLUMNS plus Exportify's translated labels, normalised, translations after the English
    names (so a file that has both, e.g. a playlist "Name" column, keeps the English match)."""
    out: dict[str, tuple[str, ...]] = {}
    for field, names in COLUMNS.items():
        translated = [_norm(label) for label in TRANSLATED.get(field, "").split("|") if label]
        out[field] = tuple(dict.fromkeys([*names, *translated]))
    return out


_ALIASES = _aliases()


def _too_big() -> InvalidCsv:
    return InvalidCsv(
        f"That file is over {MAX_CSV_BYTES // (1024 * 1024)} MB, far more than an Exportify "
        "export of the largest playlist this bot reads (10,000 tracks make 2–6 MB). "
        f"{EXPORTIFY_HINT}"
    )


def read_csv_file(path: Path) -> str:
    """A CSV file's text (see :func:`decode_csv`), reading at most ``MAX_CSV_BYTES`` + 1 bytes.

    The size is checked before reading: a 3 GB file used to be read whole (3 GB of memory)
    before the 20 MB check. Raises InvalidCsv for a file that is too big, OSError when it
    cannot be read.
    """
    with path.open("rb") as fh:
        if os.fstat(fh.fileno()).st_size > MAX_CSV_BYTES:
            raise _too_big()
        data = fh.read(MAX_CSV_BYTES + 1)  # bounded too for pipes and /proc files (size 0)
    return decode_csv(data)


def decode_csv(data: str | bytes) -> str:
    """A CSV file's text: UTF-8 (BOM or not), UTF-16 with BOM, else cp1252 or Mac Roman
    (whichever reads as words); InvalidCsv for binary files and files over ``MAX_CSV_BYTES``."""
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if len(data) > MAX_CSV_BYTES:
        raise _too_big()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16").lstrip("\ufeff")
    utf16 = _utf16_without_bom(data[:4096])
    if utf16:
        return data.decode(utf16, errors="replace")
    if data.startswith(b"PK\x03\x04"):
        raise _zip_error(data)
    if b"\x00" in data[:4096] or data.startswith((b"%PDF", b"\x89PNG")):
        raise InvalidCsv(
            "That file isn't a CSV (it looks like a binary file such as a zip, image or "
            f"spreadsheet). {EXPORTIFY_HINT}"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # A legacy 8-bit file: Excel on Windows writes cp1252, Excel for Mac's plain "CSV" and
    # Numbers' "Western (Mac OS Roman)" write Mac Roman. The same bytes read both ways; the
    # reading whose accented characters look like words wins, cp1252 on a tie (see
    # _plausibility for the measurement).
    windows = data.decode("cp1252", errors="replace")
    mac = data.decode("mac_roman")  # every byte is a character in Mac Roman
    return mac if _plausibility(mac) > _plausibility(windows) else windows


# Letters of Western European words (more points for the most common ones), and punctuation.
_COMMON_LETTERS = frozenset("áéíóúàèñçäöüå")
_LETTERS = _COMMON_LETTERS | frozenset("ìòùâêîôûëïãõøæœßšž")
_QUOTES = frozenset("‘“”«»")
_DASHES = frozenset("–—…")
_SIGNS = frozenset("¿¡°®©™·")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _plausibility(text: str) -> int:
    """How much ``text``'s non-ASCII characters look like real text rather than mojibake.

    Mac Roman read as cp1252 turns "Canción" into "Canci—n" and "Hören" into "HŸren" (a symbol
    in a word, a capital after a small letter); cp1252 read as Mac Roman turns it into
    "CanciÛn". Measured on the 471 TidyTuesday playlists written as exportify.net CSVs (those
    with non-ASCII characters that each encoding can hold): Mac Roman files read right 314 of
    318 (cp1252 alone: 0), cp1252 files 323 of 324 (one name, "Ðeamn", read as Mac Roman);
    held out (the rules were tuned on those playlists), each of exportify.app's translated
    column labels as a header on its own: 60 of 62 and 55 of 55.
    """
    score = 0
    for match in _NON_ASCII.finditer(text):
        c, i = match.group(), match.start()
        if c == "\ufffd" or "\x80" <= c <= "\x9f":
            score -= 5  # a byte cp1252 has no character for
            continue
        prev = text[i - 1] if i else " "
        nxt = text[i + 1] if i + 1 < len(text) else " "
        inside = prev.isalpha() and nxt.isalpha()
        if c in _LETTERS:
            if nxt.isupper() or not (prev.isalpha() or nxt.isalpha()):
                score -= 1  # "RunñD.M.C.", a letter on its own
            else:
                score += 2 if c in _COMMON_LETTERS else 1
        elif c.isupper() and c.lower() in _LETTERS:
            score += -2 if prev.islower() else 2 if nxt.isalpha() and not prev.isalpha() else 1
        elif c == "’":  # an apostrophe: "Lil’", "Don’t", "We’re" (not "Mar’a": María)
            score += 2 if prev.isalpha() and (not nxt.isalpha() or nxt in "stdmlrv") else 1
        elif c in _QUOTES:
            score += -1 if inside else 2
        elif c in _DASHES:
            score += 0 if inside else 1
        elif c in _SIGNS:
            score += -1 if inside else 1
        else:
            score -= 1
    return score


def _utf16_without_bom(head: bytes) -> str | None:
    """ "utf-16-le"/"-be" for UTF-16 text written without a byte-order mark (some tools' "Unicode
    text"), told by its zero bytes: a CSV header is ASCII, so every other byte is 0. It was
    refused as "a binary file"."""
    if len(head) < 8:
        return None
    even, odd = head[0::2], head[1::2]
    for zeros, other, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if zeros.count(0) >= 0.9 * len(zeros) and other.count(0) <= 0.1 * len(other):
            return codec
    return None


def _zip_error(data: bytes) -> InvalidCsv:
    """What a zip file is, said plainly: Exportify's "Export All" (a zip of CSVs) or a
    spreadsheet workbook (.xlsx, .ods and .numbers are zips) renamed or sent as a CSV."""
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        names = []
    csvs = [n for n in names if n.lower().endswith(".csv")]
    if csvs:
        return InvalidCsv(
            f"That file is a zip of {len(csvs)} CSV file{'s' if len(csvs) > 1 else ''} "
            "(Exportify's “Export All”): unzip it and attach the .csv of one playlist."
        )
    if any(n.startswith(("xl/", "Index/")) or n in ("content.xml", "mimetype") for n in names):
        return InvalidCsv(
            "That file is a spreadsheet workbook, not a CSV: save it as “CSV UTF-8” (or attach "
            "the .csv Exportify made)."
        )
    return InvalidCsv(f"That file is a zip archive, not a CSV. {EXPORTIFY_HINT}")


class _ExcelSemicolon(csv.excel):
    delimiter = ";"


# Exportify writes RFC 4180 (``"`` quotes, doubled inside); only the delimiter varies.
_DIALECTS: dict[str, type[csv.Dialect]] = {
    ",": csv.excel,
    ";": _ExcelSemicolon,
    "\t": csv.excel_tab,
}


def _dialect(sample: str) -> type[csv.Dialect]:
    """Only the delimiter is guessed: whichever splits the header row most.

    Spreadsheet programs in some locales re-save with ";" or tabs. The quote character is
    never sniffed: ``csv.Sniffer`` picked ``'`` after an artist like "Dylan 'N' Alice" and then
    split later ``"Maybe, Tomorrow"`` fields (4 of 40 real mixes).
    """
    first = sample.split("\n", 1)[0]
    delim = max(_DIALECTS, key=first.count)
    return _DIALECTS[delim] if first.count(delim) else csv.excel


# Lines (blank ones included) searched for the header: a spreadsheet re-saved with a title row
# ("My playlist export") or a blank line above the column names was refused as not Exportify.
HEADER_SEARCH_LINES = 5


def _header_start(text: str) -> int:
    """Where the header row starts: the first of the first :data:`HEADER_SEARCH_LINES` lines
    naming at least two known columns; 0 (the first line, judged as before) when none does."""
    start = 0
    for _ in range(HEADER_SEARCH_LINES):
        end = text.find("\n", start)
        line = text[start : end if end >= 0 else len(text)].rstrip("\r")
        if line.strip():
            try:
                row = next(csv.reader([line], _dialect(line)), [])
            except csv.Error:  # a title with a stray quote
                row = []
            if len(_map_columns(row)) >= 2:
                return start
        if end < 0:
            break
        start = end + 1
    return 0


def _map_columns(header: list[str]) -> dict[str, int]:
    normalised = [_norm(h) for h in header]
    mapping: dict[str, int] = {}
    for field, names in _ALIASES.items():
        for name in names:
            if name in normalised:
                mapping[field] = normalised.index(name)
                break
    return mapping


_MISSING = ("", "null", "none", "undefined")


def read_number(value: str | None) -> float | None:
    """A finite number, else None: ``inf``, ``1e999`` and ``nan`` count as missing (they would
    reach summary.json as ``Infinity``/``NaN`` and break the clustering's scaling)."""
    if value is None:
        return None
    value = value.strip()
    if value.lower() in _MISSING:
        return None
    if value.count(",") == 1 and "." not in value:
        value = value.replace(",", ".")  # decimal comma (spreadsheet re-saved in some locales)
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(value: str | None) -> int | None:
    f = read_number(value)
    return int(f) if f is not None else None


# Digits in groups of three, as a spreadsheet writes a number column formatted with thousands
# separators: 194,754 (en), 194.754 (de), 194 754 (fr, a no-break space), 194'754 (ch).
_GROUPED = re.compile(r"\d{1,3}(?:([,.'\s\u00a0\u202f])\d{3})(?:\1\d{3})*")


def _milliseconds(value: str | None) -> int | None:
    """A whole number of milliseconds. Exportify writes no separators, but "194,754" re-saved
    from a formatted column was read as the decimal 194.754 (a track 0.2 s long)."""
    text = (value or "").strip()
    if _GROUPED.fullmatch(text):
        return int(re.sub(r"\D", "", text))
    return _int(value)


def _split_list(value: str, sep: str) -> list[str]:
    return [p.strip() for p in value.split(sep) if p.strip()]


def _split_artists(names: str, ids: list[str], sep: str) -> list[str]:
    """Artist names from one cell.

    exportify.net joins names with ";" (since 2025; commas stay in names), earlier with "," and
    no space (commas removed from names); exportify.app joins with ", " and writes a comma
    inside a name as "\\,". So a backslash-escaped comma is part of a name, and a piece starting
    with a space belongs to the previous name ("Tyler, The Creator") unless the artist ids say
    there are that many artists.
    """
    if sep != ",":
        return _split_list(names, sep)
    if "\\," in names:
        return [p.strip().replace("\\,", ",") for p in re.split(r"(?<!\\),", names) if p.strip()]
    raw = [p for p in names.split(",") if p.strip()]
    if len(raw) <= 1:
        return [p.strip() for p in raw]
    extra = len(raw) - len(ids) if ids else len(raw)
    merged = [raw[0]]
    for piece in raw[1:]:
        if extra > 0 and piece.startswith(" "):
            merged[-1] = f"{merged[-1]},{piece}"
            extra -= 1
        else:
            merged.append(piece)
    return [p.strip() for p in merged]


# A spreadsheet re-saves "2019-06-14" in its locale: 14.06.2019 (de), 14/06/2019 (en-GB),
# 14-6-2019 (nl), 6/14/2019 (en-US), sometimes with a time after it; a short date format
# writes two digits of the year (14.06.19, 06/14/19: LibreOffice's default date formats).
_LOCAL_DATE = re.compile(r"(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T].*)?")
# Two-digit years as the spreadsheet that wrote them reads them back (Excel's and LibreOffice's
# default: 00–29 are 2000–2029, 30–99 are 1930–1999).
_TWO_DIGIT_PIVOT = 30


def _full_year(year: str) -> str:
    if len(year) == 4:
        return year
    yy = int(year)
    return str(2000 + yy if yy < _TWO_DIGIT_PIVOT else 1900 + yy)


def _date(value: str | None) -> str | None:
    """A release date as Spotify writes it ("1987", "1987-06", "1987-06-14"), also when a
    spreadsheet re-saved it in its locale's format (the year was lost: clustering reads the
    date's first four digits). Day and month are told apart when one is over 12 or the
    separator is "." or "-" (day first wherever those are used); else only the year is kept."""
    text = _text(value)
    m = _LOCAL_DATE.fullmatch(text) if text else None
    if m is None:
        return text
    a, sep, b, year = int(m[1]), m[2], int(m[3]), _full_year(m[4])
    if sep in ".-" or a > 12 >= b:
        day, month = a, b
    elif b > 12 >= a:
        day, month = b, a
    else:
        return year
    return f"{year}-{month:02d}-{day:02d}" if 1 <= month <= 12 and 1 <= day <= 31 else year


# "Explicit" as Exportify writes it, and as spreadsheets re-save TRUE/FALSE in their locale.
_TRUE = frozenset({"true", "1", "yes", "wahr", "vrai", "verdadero", "vero", "waar", "verdadeiro",
                   "sant", "doğru"})  # fmt: skip
_FALSE = frozenset({"false", "0", "no", "falsch", "faux", "falso", "onwaar", "falskt", "yanlış"})


def _bool(value: str | None) -> bool | None:
    text = (value or "").strip().casefold()
    return True if text in _TRUE else False if text in _FALSE else None


def _text(value: str | None) -> str | None:
    """A cell's text, None when empty or a JavaScript "undefined"/"null" (exportify.net writes
    ``"undefined"`` as the label of a track whose album it couldn't look up)."""
    text = (value or "").strip()
    return None if text.lower() in _MISSING else text


def _strip_uri(value: str, kind: str) -> str:
    """The id in ``spotify:<kind>:ID`` or an open.spotify.com link (also ``/intl-de/…``, as
    links copied in a localised app are; other tools' exports carry such links), else
    ``value`` as it is."""
    value = value.strip()
    prefix = f"spotify:{kind}:"
    if value.startswith(prefix):
        return value[len(prefix) :]
    link = re.search(rf"open\.spotify\.com/(?:intl-[\w-]+/)?{kind}/([^/?#\s]+)", value)
    return link[1] if link else value


def _name_from(name: str) -> str:
    stem = PurePath(name).stem if name.lower().endswith(".csv") else name
    stem = stem.replace("_", " ").strip()
    return stem or "CSV upload"


def read_exportify_csv(data: str | bytes, name: str = "CSV upload") -> FetchResult:
    """Parse an Exportify CSV into a FetchResult (meta.kind "csv", id "csv:<sha1[:16]>").

    Raises InvalidCsv with a message saying exactly what is wrong. Returns every row it could
    read, repeats included; :func:`bot.sources.normalise.normalise` drops repeated ids and
    refuses a file with nothing playable left, as for every source.
    """
    text = decode_csv(data)
    if not text.strip():
        raise InvalidCsv(f"That CSV file is empty. {EXPORTIFY_HINT}")
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
    hint = re.match(r"sep=([,;\t])\r?\n", text)  # Excel's first line naming the delimiter
    if hint:
        text = text[hint.end() :]
    text = text[_header_start(text) :]
    dialect = _DIALECTS[hint[1]] if hint else _dialect(text[:8192])
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise InvalidCsv(f"That file couldn't be read as CSV ({exc}). {EXPORTIFY_HINT}") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise InvalidCsv(f"That CSV file is empty. {EXPORTIFY_HINT}")
    header = rows[0]
    cols = _map_columns(header)
    missing = [label for field, label in (("id", "Track URI"), ("name", "Track Name"))
               if field not in cols]  # fmt: skip
    if len(missing) == 2 and len(cols) < 2:
        raise InvalidCsv(
            "That doesn't look like an Exportify CSV: its first row should be column names "
            f"such as “Track URI”, “Track Name”, “Artist Name(s)”. {EXPORTIFY_HINT}"
        )
    if missing:
        names = " and ".join(f"“{m}”" for m in missing)
        alt = " (or “Spotify ID”)" if "Track URI" in missing else ""
        raise InvalidCsv(
            f"That CSV is missing the {names} column{'s' if len(missing) > 1 else ''}{alt}, "
            f"so its tracks can't be identified. {EXPORTIFY_HINT}"
        )
    body = [r for r in rows[1:] if r != header]  # two exports joined (cat a.csv b.csv)
    if not body:
        raise InvalidCsv(f"That CSV has column names but no tracks. {EXPORTIFY_HINT}")

    artist_sep = ","
    if "artists" in cols:
        ai = cols["artists"]
        if any(";" in r[ai] for r in body if len(r) > ai):
            artist_sep = ";"

    tracks: list[Track] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for row in body:
        if any(c.strip() for c in row[len(header) :]):
            skip("invalid")  # more cells than columns: a stray quote or delimiter shifted them
            continue
        rec = {f: (row[i] if i < len(row) else "") for f, i in cols.items()}
        track = _row_to_track(rec, artist_sep, skip)
        if track is not None:
            tracks.append(track)

    meta = PlaylistMeta(
        id=f"csv:{digest}",
        name=_name_from(name),
        kind="csv",
        snapshot_id=digest,
        total=len(body),
        description=f"Exportify CSV ({len(body)} rows)",
    )
    return FetchResult(meta=meta, tracks=tracks, skipped=skipped)


def _row_to_track(
    rec: Mapping[str, str], artist_sep: str, skip: Callable[[str], None]
) -> Track | None:
    raw_id = (rec.get("id") or "").strip()
    if not raw_id:
        skip("null")
        return None
    low = raw_id.lower()
    if low.startswith("spotify:local:"):
        skip("local")
        return None
    if low.startswith("spotify:episode:") or "/episode/" in low:
        skip("episode")
        return None
    tid = _strip_uri(raw_id, "track")
    if not SPOTIFY_ID_RE.match(tid):
        skip("invalid")
        return None
    artist_ids = [_strip_uri(a, "artist") for a in _split_list(rec.get("artist_ids") or "", ",")]
    artist_ids = [a for a in artist_ids if SPOTIFY_ID_RE.match(a)]
    artists = _split_artists(rec.get("artists") or "", artist_ids, artist_sep)
    album_id = _strip_uri(rec.get("album_id") or "", "album") or None
    added_by = _text(rec.get("added_by")) or ""
    added_by = added_by.rsplit(":", 1)[-1] if added_by.startswith("spotify:user:") else added_by
    return Track(
        id=tid,
        name=(rec.get("name") or "").strip() or tid,
        artists=artists,
        artist_ids=artist_ids,
        album=(rec.get("album") or "").strip(),
        album_id=album_id if album_id and SPOTIFY_ID_RE.match(album_id) else None,
        image_url=_text(rec.get("image_url")),
        release_date=_date(rec.get("release_date")),
        duration_ms=_milliseconds(rec.get("duration_ms")),
        explicit=_bool(rec.get("explicit")),
        popularity=_int(rec.get("popularity")),
        label=_text(rec.get("label")),
        isrc=_text(rec.get("isrc")),
        genres=_split_list(rec.get("genres") or "", ","),
        added_at=_text(rec.get("added_at")),
        added_by=added_by or None,
        features=_features(rec, skip),
    )


# What Spotify's (and ReccoBeats') audio features can be. A value outside is not a sound but a
# shifted or foreign column: a stray quote in a hand-edited row moved tempo's 90.06 into
# valence and key's 2 into energy, and the track was clustered on them.
_UNIT = ("danceability", "energy", "speechiness", "acousticness", "instrumentalness", "liveness",
         "valence")  # fmt: skip
FEATURE_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(_UNIT, (0.0, 1.0)),
    "loudness": (-70.0, 10.0),  # dB, typically -60 to 0 (TidyTuesday: -46.4 to 1.3)
    "tempo": (0.0, 320.0),  # BPM; 0 for silence (TidyTuesday: 0 to 239)
    "key": (-1.0, 11.0),  # pitch class, -1 = none found
    "mode": (0.0, 1.0),
    "time_signature": (0.0, 12.0),
}


def _features(rec: Mapping[str, str], skip: Callable[[str], None]) -> dict[str, float] | None:
    """The 9 audio features (+ key/mode/time signature when given), or None if any is missing.

    A value that is there but is not a finite number (``inf``, ``1e999``, ``nan``, text) or is
    outside what the feature can be (:data:`FEATURE_RANGES`) is treated as missing and counted
    under ``UNREADABLE``; the track's features are then looked up like those of a file without
    audio columns.
    """
    out: dict[str, float] = {}
    for f in FEATURE_KEYS:
        raw = rec.get(f)
        v = read_number(raw)
        low, high = FEATURE_RANGES[f]
        if v is not None and low <= v <= high:
            out[f] = v
        elif raw is not None and raw.strip().lower() not in _MISSING:
            skip(UNREADABLE)
    if not all(f in out for f in AUDIO_FEATURES):
        return None
    return out
