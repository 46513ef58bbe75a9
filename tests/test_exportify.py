"""Exportify CSV import: both header styles (real TidyTuesday rows), and bad input."""

from __future__ import annotations

import csv
import hashlib
import io
import math
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
        "https://open.spotify.com/intl-de/track/0r7CVbZTWZgbTCYdfa2P31?si=2,Localised link\n"
    )
    result = read_exportify_csv(text)
    assert [t.id for t in result.tracks] == ["6f807x0ima9a1j3VPbc7VN", "0r7CVbZTWZgbTCYdfa2P31"]
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
        (b"PK\x03\x04\x14\x00\x00\x00binary", "zip archive, not a CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "isn't a CSV"),
    ],
)
def test_bad_input_has_specific_messages(data: str | bytes, fragment: str) -> None:
    with pytest.raises(InvalidCsv) as exc:
        read_exportify_csv(data)
    assert fragment in exc.value.user_message
    assert "exportify.net" in exc.value.user_message


@pytest.mark.parametrize(
    "above",
    ["My playlist export\n", "\n", "My playlist export\n\n", "Exported 2026-12-01;;;\r\n\r\n"],
)
def test_title_lines_above_the_header_are_skipped(above: str) -> None:
    """A spreadsheet re-saved with a title row (or a blank line) over the column names was
    refused as "doesn't look like an Exportify CSV"."""
    text = above + (
        "Track URI;Track Name;Danceability;Energy;Loudness;Speechiness;Acousticness;"
        "Instrumentalness;Liveness;Valence;Tempo\r\n"
        "spotify:track:6f807x0ima9a1j3VPbc7VN;I Don't Care;0,748;0,916;-2,634;0,0583;0,102;0;"
        "0,0653;0,518;122,036\r\n"
    )
    result = read_exportify_csv(text)
    assert [t.id for t in result.tracks] == ["6f807x0ima9a1j3VPbc7VN"]
    assert result.tracks[0].features is not None and result.meta.total == 1


def test_a_header_below_the_first_lines_is_still_refused() -> None:
    text = "a\nb\nc\nd\ne\nTrack URI,Track Name\nspotify:track:6f807x0ima9a1j3VPbc7VN,X\n"
    with pytest.raises(InvalidCsv) as exc:
        read_exportify_csv(text)
    assert "doesn't look like an Exportify CSV" in exc.value.user_message


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


# Real names (TidyTuesday) as Excel for Mac's plain "CSV" and Numbers' "Western (Mac OS Roman)"
# save them, and the same as Excel on Windows does (cp1252): each must read as it was written.
_LEGACY_NAMES = (
    "Track URI,Track Name,Artist Name(s)\n"
    "spotify:track:6f807x0ima9a1j3VPbc7VN,Canción del Mariachi,Los Lobos\n"
    "spotify:track:0r7CVbZTWZgbTCYdfa2P31,Don’t Stop Me Now,Queen\n"
    "spotify:track:1z1Hg7Vb0AhHDiEmnDE79l,Hören Sie,Thorbjørn Risager\n"
    "spotify:track:75FpbthrwQmzHlBJLuGdC7,Énergie – Remix,Ajouté\n"
)


@pytest.mark.parametrize("encoding", ["mac_roman", "cp1252"])
def test_mac_roman_and_windows_files_read_as_written(encoding: str) -> None:
    tracks = read_exportify_csv(_LEGACY_NAMES.encode(encoding)).tracks
    assert [t.name for t in tracks] == [
        "Canción del Mariachi", "Don’t Stop Me Now", "Hören Sie", "Énergie – Remix"
    ]  # fmt: skip
    assert tracks[2].artists == ["Thorbjørn Risager"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_byte_order_mark(codec: str) -> None:
    text = "Track URI\tTrack Name\nspotify:track:6f807x0ima9a1j3VPbc7VN\tCanción 日本\n"
    assert read_exportify_csv(text.encode(codec)).tracks[0].name == "Canción 日本"


@pytest.mark.parametrize("cell", ["194754", '"194,754"', "194.754", "194 754", "194\u202f754"])
def test_duration_with_thousands_separators(cell: str) -> None:
    text = f"Track URI,Track Name,Duration (ms)\nspotify:track:6f807x0ima9a1j3VPbc7VN,A,{cell}\n"
    assert read_exportify_csv(text).tracks[0].duration_ms == 194_754


def test_two_exports_joined_into_one_file() -> None:
    """``cat a.csv b.csv``: the second header is not counted as an unreadable row."""
    part = "Track URI,Track Name\nspotify:track:{},A\n"
    text = part.format("6f807x0ima9a1j3VPbc7VN") + part.format("0r7CVbZTWZgbTCYdfa2P31")
    result = read_exportify_csv(text)
    assert len(result.tracks) == 2 and result.skipped == {} and result.meta.total == 2


def test_release_dates_no_release_has_are_unknown_years() -> None:
    """Spotify writes "0000" for releases without a date; read as year 0, 2019 remixes made an
    "older" cluster of their own."""
    from bot.features.matrix import release_year

    text = "Track URI,Track Name,Release Date\n" + "".join(
        f"spotify:track:{tid},A,{date}\n"
        for tid, date in [
            ("6f807x0ima9a1j3VPbc7VN", "0000"),
            ("0r7CVbZTWZgbTCYdfa2P31", "0001-01-01"),
            ("1z1Hg7Vb0AhHDiEmnDE79l", "1987-06"),
        ]
    )
    years = [release_year(t.release_date) for t in read_exportify_csv(text).tracks]
    assert math.isnan(years[0]) and math.isnan(years[1]) and years[2] == 1987


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


# exportify.app (watsonbox) writes its header in the browser's language; these are two of its 12.
_APP_HEADERS = {
    "fr": '"URI du titre","Nom du titre","URI(s) de l\'artiste","Nom(s) de l\'artiste","URI de '
    'l\'album","Nom de l\'album","URI(s) de l\'artiste de l\'album","Nom(s) de l\'artiste de '
    'l\'album","Date de sortie de l\'album","URL de l\'image de l\'album","Numéro de disque",'
    '"Numéro du titre","Durée du titre (ms)","URL de prévisualisation du titre","Explicite",'
    '"Popularité","ISRC","Ajouté par","Ajouté le","Genres de l\'artiste","Danseabilité","Énergie",'
    '"Tonalité","Volume sonore","Mode","Parlabilité","Acoustique","Instrumental","Vivacité",'
    '"Valence","Tempo","Mesure","Genres de l\'album","Label","Droits d\'auteur"',
    "ja": '"トラックURI","トラック名","アーティストURI","アーティスト名","アルバムURI",'
    '"アルバム名",'
    '"アルバムアーティストURI","アルバムアーティスト名","アルバム発売日","アルバム画像URL","ディスク番号",'
    '"トラック番号","トラックの長さ（ミリ秒）","トラックプレビューURL","明示的な内容","人気度","ISRC",'
    '"追加者","追加日時","アーティストジャンル","ダンサビリティ","エネルギー","キー","ラウドネス","モード",'
    '"スピーチ性","アコースティック性","インストゥルメンタル性","ライブ感","感情値","テンポ","拍子",'
    '"アルバムジャンル","レーベル","著作権"',
    "en": '"Track URI","Track Name","Artist URI(s)","Artist Name(s)","Album URI","Album Name",'
    '"Album Artist URI(s)","Album Artist Name(s)","Album Release Date","Album Image URL",'
    '"Disc Number","Track Number","Track Duration (ms)","Track Preview URL","Explicit",'
    '"Popularity","ISRC","Added By","Added At","Artist Genres","Danceability","Energy","Key",'
    '"Loudness","Mode","Speechiness","Acousticness","Instrumentalness","Liveness","Valence",'
    '"Tempo","Time Signature","Album Genres","Label","Copyrights"',
}
_FEATURE_COLUMNS = [*AUDIO_FEATURES[:2], "key", AUDIO_FEATURES[2], "mode", *AUDIO_FEATURES[3:]]
_KALI = ("1U1el3k54VvEUzo3ybLPlM", "Kali Uchis")


def _exportify_app(lang: str, rows: list[dict[str, str]]) -> str:
    """A playlist as exportify.app writes it: every cell quoted, artists joined with ", " and
    a comma inside a name written as "\\,"; the first row gets a second artist."""
    lines = [_APP_HEADERS[lang]]
    for i, r in enumerate(rows):
        artist_id = "spotify:artist:" + hashlib.sha1(r["track_artist"].encode()).hexdigest()[:22]
        ids, names = [artist_id], [r["track_artist"].replace(",", "\\,")]
        if i == 0:
            ids.append("spotify:artist:" + _KALI[0])
            names.append(_KALI[1])
        cells = [
            f"spotify:track:{r['track_id']}", r["track_name"], ", ".join(ids), ", ".join(names),
            f"spotify:album:{r['track_album_id']}", r["track_album_name"], ids[0], names[0],
            r["track_album_release_date"], "https://i.scdn.co/image/ab67616d0000b273abc", "1",
            str(i + 1), r["duration_ms"], "", "true" if i % 2 else "false", r["track_popularity"],
            f"USUM7190{i:04d}", "spotify:user:someone", "2020-01-21T10:00:00Z",
            f"{r['playlist_subgenre']},{r['playlist_genre']}",
            *(r[f] for f in _FEATURE_COLUMNS), "4", "", "Label X", "C 2019 X, P 2019 X",
        ]  # fmt: skip
        lines.append(",".join('"' + c.replace('"', '""') + '"' for c in cells))
    return "\n".join(lines) + "\n"


def _sample(n: int, artist: str | None = None) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO((DATA / "tidytuesday_sample.csv").read_text())))
    return [r for r in rows if artist in (None, r["track_artist"])][:n]


@pytest.mark.parametrize("lang", ["en", "fr", "ja"])
def test_exportify_app_in_any_language_reads_every_column(lang: str) -> None:
    """A French or Japanese header was "missing the Track URI column"; a German one parsed
    with no features, years or popularity (clustered into one group). The artist names kept
    exportify.app's "\\," and its "Artist Genres" and ISRC were not read."""
    rows = _sample(11, "Tyler, The Creator")[:1] + _sample(30)
    tracks = read_exportify_csv(_exportify_app(lang, rows)).tracks
    assert len(tracks) == len(rows)
    first, second = tracks[0], tracks[1]
    assert first.artists == ["Tyler, The Creator", "Kali Uchis"]
    assert first.artist_ids[1] == _KALI[0]
    assert second.artists == [rows[1]["track_artist"]]
    assert all(t.features and set(AUDIO_FEATURES) <= set(t.features) for t in tracks)
    assert first.features and first.features["tempo"] == float(rows[0]["tempo"])
    assert first.features["key"] == float(rows[0]["key"]) and first.features["time_signature"] == 4
    assert first.release_date == rows[0]["track_album_release_date"]
    assert [t.popularity for t in tracks] == [int(r["track_popularity"]) for r in rows]
    assert first.duration_ms == int(rows[0]["duration_ms"])
    assert [first.explicit, second.explicit] == [False, True]
    assert first.genres == [rows[0]["playlist_subgenre"], rows[0]["playlist_genre"]]
    assert first.isrc == "USUM71900000"
    assert first.label == "Label X" and first.added_by == "someone"
    assert first.album_id == rows[0]["track_album_id"]


def test_every_translated_label_names_one_known_field() -> None:
    from bot.sources.exportify import COLUMNS, _norm
    from bot.sources.exportify_headers import TRANSLATED

    assert set(TRANSLATED) <= set(COLUMNS)
    owner: dict[str, str] = {}
    for field, labels in TRANSLATED.items():
        for label in labels.split("|"):
            assert owner.setdefault(_norm(label), field) == field, label


_NET_HEADER = (
    "Track URI,Track Name,Album Name,Artist Name(s),Release Date,Duration (ms),Popularity,"
    "Explicit,Added By,Added At,Genres,Record Label,Danceability,Energy,Key,Loudness,Mode,"
    "Speechiness,Acousticness,Instrumentalness,Liveness,Valence,Tempo,Time Signature\n"
)


def _net_row(tid: str, artists: str, *, date: str = "2019-06-14", explicit: str = "false",
             label: str = "Label") -> str:  # fmt: skip
    return (
        f'spotify:track:{tid},"Song","Album","{artists}",{date},200000,50,{explicit},someone,'
        f'2020-01-21T10:00:00Z,"pop","{label}",0.5,0.5,1,-5,1,0.1,0.1,0,0.1,0.5,120,4\n'
    )


def test_exportify_net_keeps_a_comma_inside_a_single_artist() -> None:
    """exportify.net joins artists with ";" and keeps commas in names: a playlist where no
    track has two artists has no ";" at all, and "Tyler, The Creator" became two artists."""
    text = (
        "\ufeff"
        + _NET_HEADER
        + _net_row("6f807x0ima9a1j3VPbc7VN", "Tyler, The Creator")
        + _net_row("0r7CVbZTWZgbTCYdfa2P31", "Earth, Wind & Fire")
        + _net_row("1r7CVbZTWZgbTCYdfa2P31", "Crosby, Stills, Nash & Young")
    )
    tracks = read_exportify_csv(text).tracks
    assert [t.artists for t in tracks] == [
        ["Tyler, The Creator"],
        ["Earth, Wind & Fire"],
        ["Crosby, Stills, Nash & Young"],
    ]
    # older exportify.net: "," without a space between artists (commas removed from names)
    older = _NET_HEADER + _net_row("6f807x0ima9a1j3VPbc7VN", "Tyler The Creator,Kali Uchis")
    assert read_exportify_csv(older).tracks[0].artists == ["Tyler The Creator", "Kali Uchis"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("14.06.2019", "2019-06-14"),  # de, re-saved by a spreadsheet
        ("4.6.2019", "2019-06-04"),
        ("14/06/2019", "2019-06-14"),  # en-GB
        ("6/14/2019", "2019-06-14"),  # en-US
        ("14-6-2019", "2019-06-14"),  # nl
        ("4/6/2019", "2019"),  # day and month can't be told apart: the year is what counts
        ("14.06.2019 00:00", "2019-06-14"),
        ("14.06.19", "2019-06-14"),  # two-digit years: the year was lost ("14.06.19" kept)
        ("06/14/19", "2019-06-14"),
        ("6/14/85", "1985-06-14"),
        ("01.02.29", "2029-02-01"),
        ("01.02.30", "1930-02-01"),
        ("4/6/19", "2019"),
        ("2019-06-14", "2019-06-14"),
        ("1987", "1987"),
        ("1987-06", "1987-06"),
        ("", None),
    ],
)
def test_dates_a_spreadsheet_rewrote_keep_their_year(cell: str, expected: str | None) -> None:
    """The year (clustering reads a date's first four digits) was lost for "14.06.2019"."""
    text = _NET_HEADER + _net_row("6f807x0ima9a1j3VPbc7VN", "A", date=cell)
    assert read_exportify_csv(text).tracks[0].release_date == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("true", True), ("FALSE", False), ("WAHR", True), ("FALSCH", False), ("VRAI", True),
     ("FAUX", False), ("FALSO", False), ("1", True), ("0", False), ("", None), ("maybe", None)],
)  # fmt: skip
def test_explicit_as_spreadsheets_write_it(cell: str, expected: bool | None) -> None:
    text = _NET_HEADER + _net_row("6f807x0ima9a1j3VPbc7VN", "A", explicit=cell)
    assert read_exportify_csv(text).tracks[0].explicit is expected


def test_javascript_undefined_is_no_label() -> None:
    """exportify.net writes "undefined" as the label of a track whose album it couldn't read;
    it was shown in the report's Label column."""
    text = _NET_HEADER + _net_row("6f807x0ima9a1j3VPbc7VN", "A", label="undefined")
    assert read_exportify_csv(text).tracks[0].label is None


def _zip(**files: str) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name.replace("__", "/"), text)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (_zip(**{"a.csv": _NET_HEADER, "b.csv": _NET_HEADER, "notes.txt": ""}), "zip of 2 CSV"),
        (_zip(**{"[Content_Types].xml": "<x/>", "xl__workbook.xml": "<x/>"}), "save it as"),
        (_zip(mimetype="application/vnd.oasis.opendocument.spreadsheet"), "workbook"),
    ],
)
def test_a_zip_is_told_apart(data: bytes, fragment: str) -> None:
    """Exportify's "Export All" zip, or an Excel/LibreOffice workbook sent as the CSV, got
    "it looks like a binary file such as a zip, image or spreadsheet"."""
    with pytest.raises(InvalidCsv) as exc:
        read_exportify_csv(data)
    assert fragment in exc.value.user_message


def test_a_row_shifted_by_a_stray_quote_is_not_clustered_on_shifted_numbers() -> None:
    """A hand-edited name with an opening quote and no closing one merges two cells: the row's
    tempo (120) was read as valence, its valence as liveness, …, silently."""
    rows = [_net_row(f"{i:022d}", f"Artist {i}") for i in range(4)]
    shifted = rows[2].replace('"Song","Album"', '"Oops, unclosed,"Album"')
    assert len(next(csv.reader([shifted]))) == len(_NET_HEADER.split(",")) - 1
    result = read_exportify_csv(_NET_HEADER + rows[0] + rows[1] + shifted + rows[3])
    assert [t.features is not None for t in result.tracks] == [True, True, False, True]
    assert result.tracks[0].features == result.tracks[3].features
    assert result.skipped["unreadable audio values"] >= 1
    longer = _NET_HEADER + rows[0] + rows[1].replace('"Song"', '"So","ng"')  # one cell too many
    result = read_exportify_csv(longer)
    assert len(result.tracks) == 1 and result.skipped == {"invalid": 1}


@pytest.mark.parametrize(
    ("column", "bad"),
    [(0, "75"), (1, "2"), (3, "-200"), (9, "1.5"), (10, "1000"), (2, "12")],
)
def test_audio_values_outside_their_range_count_as_missing(column: int, bad: str) -> None:
    """Values no audio feature can have (a 0-100 scale, a shifted column) were clustered on."""
    cells = ["0.5", "0.5", "1", "-5", "1", "0.1", "0.1", "0", "0.1", "0.5", "120"]  # … Tempo
    cells[column] = bad
    text = _NET_HEADER + _net_row("6f807x0ima9a1j3VPbc7VN", "A").replace(
        "0.5,0.5,1,-5,1,0.1,0.1,0,0.1,0.5,120", ",".join(cells)
    )
    result = read_exportify_csv(text)
    assert result.skipped == {"unreadable audio values": 1}
    features = result.tracks[0].features
    assert features is None or list(features) == [*AUDIO_FEATURES, "mode", "time_signature"]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_excels_sep_line_names_the_delimiter(delimiter: str) -> None:
    """Files made for Excel may start with "sep=;": it was read as the header ("doesn't look
    like an Exportify CSV")."""
    text = _NET_HEADER + _net_row("6f807x0ima9a1j3VPbc7VN", "Tyler, The Creator")
    rows = list(csv.reader(io.StringIO(text)))
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    track = read_exportify_csv(f"sep={delimiter}\r\n" + buf.getvalue()).tracks[0]
    assert track.artists == ["Tyler, The Creator"] and track.features is not None
