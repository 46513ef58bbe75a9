"""Read playlists exported with Exportify (https://exportify.net) — no Spotify calls needed.

Exportify's header changed over the years; all of these are accepted (matched by column name,
case/spacing-insensitively, in any order):

* current: ``Track URI,Track Name,Album Name,Artist Name(s),Release Date,Duration (ms),
  Popularity,Explicit,Added By,Added At,Genres,Record Label,Danceability,…,Time Signature``
  (some versions add ``ISRC`` after the URI),
* older:   ``Spotify ID,Artist IDs,Track Name,Album Name,Artist Name(s),Release Date,…``,
* oldest (watsonbox): ``Track URI,Track Name,Artist URI,Artist Name,Album URI,…`` and the
  variant with ``Artist URI(s)``, ``Album Release Date``, ``Track Duration (ms)``,
* the TidyTuesday Spotify dataset's snake_case columns (``track_id,track_name,track_artist,…``).

Audio-feature columns, when present, become ``Track.features`` so such CSVs need no feature
look-ups at all. Local files, podcast episodes, empty rows, malformed ids and duplicates are
skipped and counted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePath

from bot.errors import InvalidCsv
from bot.models import AUDIO_FEATURES, FEATURE_KEYS, FetchResult, PlaylistMeta, Track
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
    return re.sub(r"[^0-9a-z]+", " ", header.replace("\ufeff", "").lower()).strip()


def _too_big() -> InvalidCsv:
    return InvalidCsv(f"That file is over {MAX_CSV_BYTES // (1024 * 1024)} MB; {EXPORTIFY_HINT}")


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
    """A CSV file's text: UTF-8 (BOM or not), UTF-16 with BOM, else cp1252; InvalidCsv for
    binary files and files over ``MAX_CSV_BYTES``."""
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if len(data) > MAX_CSV_BYTES:
        raise _too_big()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16").lstrip("\ufeff")
    if b"\x00" in data[:4096] or data.startswith((b"PK\x03\x04", b"%PDF", b"\x89PNG")):
        raise InvalidCsv(
            "That file isn't a CSV (it looks like a binary file such as a zip, image or "
            f"spreadsheet). {EXPORTIFY_HINT}"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


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


def _map_columns(header: list[str]) -> dict[str, int]:
    normalised = [_norm(h) for h in header]
    mapping: dict[str, int] = {}
    for field, names in COLUMNS.items():
        for name in names:
            if name in normalised:
                mapping[field] = normalised.index(name)
                break
    return mapping


_MISSING = ("", "null", "none", "undefined")


def _float(value: str | None) -> float | None:
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
    f = _float(value)
    return int(f) if f is not None else None


def _split_list(value: str, sep: str) -> list[str]:
    return [p.strip() for p in value.split(sep) if p.strip()]


def _split_artists(names: str, ids: list[str], sep: str) -> list[str]:
    """Artist names from one cell.

    Exportify joins names with "," and no space, so a piece starting with a space belongs to
    the previous name ("Tyler, The Creator"). The artist ids, when present, say how many names
    there are.
    """
    if sep != ",":
        return _split_list(names, sep)
    raw = [p for p in names.split(",") if p.strip()]
    if len(raw) <= 1:
        return [p.strip() for p in raw]
    exportify_style = re.search(r",\S", names) is not None
    extra = len(raw) - len(ids) if ids else (len(raw) if exportify_style else 0)
    merged = [raw[0]]
    for piece in raw[1:]:
        if extra > 0 and piece.startswith(" "):
            merged[-1] = f"{merged[-1]},{piece}"
            extra -= 1
        else:
            merged.append(piece)
    return [p.strip() for p in merged]


def _strip_uri(value: str, kind: str) -> str:
    value = value.strip()
    prefix = f"spotify:{kind}:"
    if value.startswith(prefix):
        return value[len(prefix) :]
    marker = f"open.spotify.com/{kind}/"
    if marker in value:
        return value.split(marker, 1)[1].split("?", 1)[0].strip("/")
    return value


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
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text[:8192]))
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
    body = rows[1:]
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
    explicit_raw = (rec.get("explicit") or "").strip().lower()
    added_by = (rec.get("added_by") or "").strip()
    added_by = added_by.rsplit(":", 1)[-1] if added_by.startswith("spotify:user:") else added_by
    return Track(
        id=tid,
        name=(rec.get("name") or "").strip() or tid,
        artists=artists,
        artist_ids=artist_ids,
        album=(rec.get("album") or "").strip(),
        album_id=album_id if album_id and SPOTIFY_ID_RE.match(album_id) else None,
        image_url=(rec.get("image_url") or "").strip() or None,
        release_date=(rec.get("release_date") or "").strip() or None,
        duration_ms=_int(rec.get("duration_ms")),
        explicit={"true": True, "false": False}.get(explicit_raw),
        popularity=_int(rec.get("popularity")),
        label=(rec.get("label") or "").strip() or None,
        genres=_split_list(rec.get("genres") or "", ","),
        added_at=(rec.get("added_at") or "").strip() or None,
        added_by=added_by or None,
        features=_features(rec, skip),
    )


def _features(rec: Mapping[str, str], skip: Callable[[str], None]) -> dict[str, float] | None:
    """The 9 audio features (+ key/mode/time signature when given), or None if any is missing.

    A value that is there but is not a finite number (``inf``, ``1e999``, ``nan``, text) is
    treated as missing and counted under ``UNREADABLE``; the track's features are then looked
    up like those of a file without audio columns.
    """
    out: dict[str, float] = {}
    for f in FEATURE_KEYS:
        raw = rec.get(f)
        v = _float(raw)
        if v is not None:
            out[f] = v
        elif raw is not None and raw.strip().lower() not in _MISSING:
            skip(UNREADABLE)
    if not all(f in out for f in AUDIO_FEATURES):
        return None
    return out
