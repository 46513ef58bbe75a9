"""Exportify CSV import: both header styles (real TidyTuesday rows), and bad input."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest

from bot.errors import EmptyPlaylist, InvalidCsv
from bot.models import AUDIO_FEATURES
from bot.sources.exportify import read_exportify_csv
from bot.sources.normalise import normalise

DATA = Path(__file__).parent / "data"
CURRENT = DATA / "exportify_current.csv"
LEGACY = DATA / "exportify_legacy.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def test_current_header_with_bom() -> None:
    raw = CURRENT.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    result = normalise(read_exportify_csv(raw, "Pop_Remix.csv"), 10_000)
    rows = _rows(CURRENT)
    assert result.meta.kind == "csv"
    assert result.meta.name == "Pop Remix"
    text = raw.decode("utf-8-sig")
    assert result.meta.id == "csv:" + hashlib.sha1(text.encode()).hexdigest()[:16]
    assert result.meta.total == len(rows) == 28
    # 25 featured tracks + 1 without features; a local file and a duplicate skipped
    assert len(result.tracks) == 26
    assert result.skipped == {"local": 1, "duplicate": 1}
    first = result.tracks[0]
    src = rows[0]
    assert first.id == src["Track URI"].rsplit(":", 1)[1] == "6f807x0ima9a1j3VPbc7VN"
    assert first.name == src["Track Name"]
    assert first.artists == ["Ed Sheeran"]
    assert first.album == src["Album Name"]
    assert first.release_date == "2019-06-14"
    assert first.duration_ms == 194754
    assert first.popularity == 66
    assert first.explicit is False
    assert first.added_by == "tidytuesday"
    assert first.genres == ["dance pop", "pop"]
    assert first.features is not None
    assert set(AUDIO_FEATURES) <= set(first.features)
    assert first.features["danceability"] == 0.748
    assert first.features["tempo"] == 122.036
    assert first.features["key"] == 6
    assert "time_signature" not in first.features  # blank in the file
    assert result.tracks[-1].features is None  # row with empty feature columns


def test_legacy_header() -> None:
    result = read_exportify_csv(LEGACY.read_text(encoding="utf-8"), "old export")
    rows = _rows(LEGACY)
    assert len(result.tracks) == len(rows) == 25
    t = result.tracks[0]
    assert t.id == rows[0]["Spotify ID"]
    assert t.artist_ids == [rows[0]["Artist IDs"]]
    assert t.artists == [rows[0]["Artist Name(s)"]]
    assert t.features and t.features["energy"] == float(rows[0]["Energy"])
    assert result.meta.name == "old export"


def test_same_content_same_id_str_or_bytes() -> None:
    text = LEGACY.read_text(encoding="utf-8")
    a = read_exportify_csv(text)
    b = read_exportify_csv(text.encode("utf-8"))
    assert a.meta.id == b.meta.id
    assert a.meta.id != read_exportify_csv(CURRENT.read_bytes()).meta.id


def test_artist_separators() -> None:
    hdr = "Spotify ID,Artist IDs,Track Name,Artist Name(s)\n"
    tyler = "4V8LLVI7PbaPR0K2TGSxFF"
    kali = "1U1el3k54VvEUzo3ybLPlM"
    csv_text = (
        hdr
        + f'6f807x0ima9a1j3VPbc7VN,"{tyler},{kali}",See You Again,"Tyler, The Creator,Kali Uchis"\n'
    )
    t = read_exportify_csv(csv_text).tracks[0]
    assert t.artists == ["Tyler, The Creator", "Kali Uchis"]
    assert t.artist_ids == [tyler, kali]

    head = "Track URI,Track Name,Artist Name(s)\nspotify:track:6f807x0ima9a1j3VPbc7VN,X,"
    semicolons = head + "A; B\n"
    assert read_exportify_csv(semicolons).tracks[0].artists == ["A", "B"]

    exportify = head + '"A,B"\n'
    assert read_exportify_csv(exportify).tracks[0].artists == ["A", "B"]


def test_semicolon_delimited_with_decimal_commas() -> None:
    text = (
        "Track URI;Track Name;Danceability;Energy;Loudness;Speechiness;Acousticness;"
        "Instrumentalness;Liveness;Valence;Tempo\n"
        "spotify:track:6f807x0ima9a1j3VPbc7VN;I Don't Care;0,748;0,916;-2,634;0,0583;0,102;0;"
        "0,0653;0,518;122,036\n"
    )
    t = read_exportify_csv(text).tracks[0]
    assert t.features is not None
    assert t.features["danceability"] == 0.748 and t.features["tempo"] == 122.036


def test_tidytuesday_columns_are_understood() -> None:
    lines = (DATA / "tidytuesday_sample.csv").read_text(encoding="utf-8").splitlines()[:11]
    result = read_exportify_csv("\n".join(lines))
    assert len(result.tracks) == 10
    assert result.tracks[0].features is not None
    assert result.tracks[0].artists == ["Ed Sheeran"]


def test_episodes_blank_and_invalid_ids_are_skipped() -> None:
    text = (
        "Track URI,Track Name\n"
        "spotify:episode:0LcJLqbBmaGUft1e9Mm8HV,Some podcast\n"
        ",Removed track\n"
        "spotify:track:tooshort,Broken\n"
        "https://open.spotify.com/track/6f807x0ima9a1j3VPbc7VN?si=1,From URL\n"
    )
    result = read_exportify_csv(text)
    assert [t.id for t in result.tracks] == ["6f807x0ima9a1j3VPbc7VN"]
    assert result.skipped == {"episode": 1, "null": 1, "invalid": 1}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        ("   \n\n", "empty"),
        ("\ufeff", "empty"),
        ("Track URI,Track Name\n", "no tracks"),
        ("Track Name,Artist Name(s)\nSong,Artist\n", "missing the “Track URI” column"),
        ("Track URI,Artist Name(s)\nspotify:track:6f807x0ima9a1j3VPbc7VN,A\n", "“Track Name”"),
        ("hello world\nthis is not a csv\n", "doesn't look like an Exportify CSV"),
        (b"PK\x03\x04\x14\x00\x00\x00binary", "isn't a CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "isn't a CSV"),
    ],
)
def test_bad_input_has_specific_messages(data: str | bytes, fragment: str) -> None:
    with pytest.raises(InvalidCsv) as exc:
        read_exportify_csv(data)
    assert fragment in exc.value.user_message
    assert "exportify.net" in exc.value.user_message


def test_missing_both_columns_names_them() -> None:
    with pytest.raises(InvalidCsv) as exc:
        read_exportify_csv("Album Name,Artist Name(s),Popularity\nA,B,1\n")
    msg = exc.value.user_message
    assert "“Track URI”" in msg and "“Track Name”" in msg


def test_only_local_files_is_empty() -> None:
    text = "Track URI,Track Name\nspotify:local:A:B:C:200,C\nspotify:local:D:E:F:100,F\n"
    with pytest.raises(EmptyPlaylist) as exc:
        normalise(read_exportify_csv(text), 10_000)
    assert "2 local" in exc.value.user_message


def test_latin1_file_is_decoded() -> None:
    text = "Track URI,Track Name\nspotify:track:6f807x0ima9a1j3VPbc7VN,Café del Mar\n"
    t = read_exportify_csv(text.encode("cp1252")).tracks[0]
    assert t.name == "Café del Mar"


_AUDIO_HEADER = (
    "Track URI,Track Name,Artist Name(s),Album Name,Popularity,Danceability,Energy,Loudness,"
    "Speechiness,Acousticness,Instrumentalness,Liveness,Valence,Tempo\n"
)


def test_apostrophes_do_not_become_the_quote_character() -> None:
    """csv.Sniffer took ``'`` for the quote char after "Dylan 'N' Alice" and then split the
    later quoted "Maybe, Tomorrow" fields; only the delimiter is guessed now."""
    rows = [
        _AUDIO_HEADER.strip().split(","),
        ["spotify:track:6f807x0ima9a1j3VPbc7VN", "Song A", "Dylan 'N' Alice", "Album", "1"],
        ["spotify:track:0r7CVbZTWZgbTCYdfa2P31", "Maybe, Tomorrow", "Someone", "Hits, Vol. 2", "2"],
        ["spotify:track:1r7CVbZTWZgbTCYdfa2P31", "It's 'fine'", "Someone", "Rock 'n' Roll", "3"],
    ]
    for i, row in enumerate(rows[1:]):
        row += ["0.5", "0.5", "-5", "0.1", "0.1", "0", "0.1", "0.5", str(120 + i)]
    for delimiter in (",", ";", "\t"):
        buf = io.StringIO()
        csv.writer(buf, delimiter=delimiter).writerows(rows)
        data = buf.getvalue()
        assert '"Maybe, Tomorrow"' in data or delimiter != ","
        tracks = read_exportify_csv(data).tracks
        assert [t.name for t in tracks] == ["Song A", "Maybe, Tomorrow", "It's 'fine'"]
        assert tracks[0].artists == ["Dylan 'N' Alice"]
        assert tracks[1].album == "Hits, Vol. 2"
        assert [t.features and t.features["tempo"] for t in tracks] == [120, 121, 122]


@pytest.mark.parametrize("bad", ["inf", "-inf", "1e999", "nan", "NaN", "Infinity", "lots"])
def test_non_finite_audio_values_are_missing_and_counted(bad: str) -> None:
    """``inf``/``1e999``/``nan`` reached the features (and summary.json as ``Infinity``)."""
    good = "0.5,0.5,-5,0.1,0.1,0,0.1,0.5,120"
    text = _AUDIO_HEADER + (
        f"spotify:track:6f807x0ima9a1j3VPbc7VN,A,X,Al,{bad},{bad},0.5,-5,0.1,0.1,0,0.1,0.5,{bad}\n"
        f"spotify:track:0r7CVbZTWZgbTCYdfa2P31,B,X,Al,7,{good}\n"
        f"spotify:track:1r7CVbZTWZgbTCYdfa2P31,C,X,Al,,,,,,,,,,\n"  # blank: missing, not counted
    )
    result = read_exportify_csv(text)
    first, second, third = result.tracks
    assert first.features is None  # looked up elsewhere, like a file without audio columns
    assert first.popularity is None
    assert second.features is not None and second.features["tempo"] == 120
    assert third.features is None
    assert result.skipped == {"unreadable audio values": 2}
