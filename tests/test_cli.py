"""The offline CLI: subprocess runs of ``python -m bot`` (no network, no tokens)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot import cli
from bot.demo import load_demo

REPO = Path(__file__).resolve().parents[1]
FILES = {"clusters.png", "report.md", "tracks.csv", "summary.json", "profile.png"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SPOTIFY_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(**env), capture_output=True, text=True
    )


def test_demo_subprocess_writes_all_files_without_discord_or_pyplot(tmp_path: Path) -> None:
    out = tmp_path / "demo_out"
    code = (
        "import sys\n"
        "from bot.__main__ import main\n"
        f"rc = main(['demo', '--k', '5', '--out', {str(out)!r}])\n"
        "assert 'discord' not in sys.modules, 'discord imported'\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "sys.exit(rc)\n"
    )
    proc = _run(["-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == FILES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["k"] == 5 and summary["n_tracks"] == 300
    assert (out / "report.md").read_text().startswith("# Clusters in Demo mix")
    assert "size  description" in proc.stdout
    assert "Features (audio+metadata)" in proc.stdout


def test_python_m_bot_demo_default_out_dir(tmp_path: Path) -> None:
    proc = _run(["-m", "bot", "demo", "--k", "3"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = list((tmp_path / "out").iterdir())
    assert len(written) == 1 and written[0].name.startswith("demo-mix")
    assert {p.name for p in written[0].iterdir()} == FILES


def test_no_subcommand_without_token_runs_the_demo(tmp_path: Path) -> None:
    proc = _run(["-m", "bot"], tmp_path, DISCORD_TOKEN="")
    assert proc.returncode == 0, proc.stderr
    assert "DISCORD_TOKEN is not set" in proc.stderr
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_help(tmp_path: Path) -> None:
    proc = _run(["-m", "bot", "--help"], tmp_path)
    assert proc.returncode == 0
    assert "analyze" in proc.stdout and "demo" in proc.stdout
    # the operator's other commands were in the README only
    for command in ("--version", "healthcheck", "worker --help", ".env"):
        assert command in proc.stdout.replace("\n", " ")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("playlist.txt", "There is no file playlist.txt (and it isn't a Spotify link either)"),
        ("exports/my mix", "There is no file exports/my mix"),
        ("spotify_favs.xlsx", "There is no file spotify_favs.xlsx"),
        ("exports", "exports is a folder: give the path of the Exportify .csv file in it."),
    ],
)
def test_a_mistyped_file_or_a_folder_is_not_called_a_bad_link(
    tmp_path: Path, monkeypatch, capsys, source: str, expected: str
) -> None:
    """``analyze playlist.txt`` (a typo) and ``analyze exports`` (a folder) answered "That
    doesn't look like a Spotify link"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exports").mkdir()
    assert cli.main(["analyze", source]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: " + expected) and err.count("\n") == 1
    assert "Spotify link." not in err


async def test_progress_lines_only_go_forwards(capsys) -> None:
    """The feature steps report per source: the CLI printed 0/94, 0/94, 94/94, then 61/94."""
    from bot.models import Progress

    progress = cli.progress_printer()
    for done in (0, 0, 14, 94, 61):
        await progress(Progress("featurizing", done=done, total=94))
    await progress(Progress("clustering"))
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["featurizing: 0/94", "featurizing: 14/94", "featurizing: 94/94"]

    progress = cli.progress_printer()  # one event per 40-track request of a 10,000-track file
    for done in range(0, 10_001, 40):
        await progress(Progress("featurizing", done=done, total=10_000))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 11 and lines[-1] == "featurizing: 10,000/10,000"


def test_a_repeated_warning_is_printed_once(tmp_path: Path) -> None:
    """Offline, a CSV without audio columns logged one "ReccoBeats request failed" line per
    request: 250 identical lines for 10,000 tracks."""
    lines = [f"{t.uri},{t.name.replace(',', ' ')}" for t in load_demo().tracks[:120]]
    (tmp_path / "bare.csv").write_text("Track URI,Track Name\n" + "\n".join(lines) + "\n")
    proc = _run(
        ["-m", "bot", "analyze", "bare.csv", "--out", "o"],
        tmp_path,
        RECCOBEATS_BASE="http://127.0.0.1:9/v1",
        RECCOBEATS_TIMEOUT_S="2",
    )
    # names and ids only, and no sound data offline: nothing to cluster on, said so
    assert proc.returncode == 2, proc.stderr
    assert "None of these 120 tracks has sound data" in proc.stderr
    assert "ReccoBeats did not answer for 120 of them this time: try again later." in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == len(set(warnings)) >= 1, proc.stderr


@pytest.mark.parametrize(
    "source",
    ["https://open.spotify.com/track/6f807x0ima9a1j3VPbc7VN", "https://example.com/x"],
)
def test_bad_link_gives_a_clear_message_and_exit_code_2(tmp_path: Path, source: str) -> None:
    proc = _run(["-m", "bot", "analyze", source], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_csv_file_is_a_clear_error(tmp_path: Path, capsys) -> None:
    rc = cli.main(["analyze", str(tmp_path / "nope.csv")])
    assert rc == 2
    assert "Cannot read" in capsys.readouterr().err


def test_k_out_of_range_is_a_clear_error(capsys) -> None:
    assert cli.main(["demo", "--k", "1"]) == 2
    assert "k must be between 2 and 100" in capsys.readouterr().err


def test_analyze_exportify_csv_offline(tmp_path: Path, capsys) -> None:
    pytest.importorskip("bot.sources.exportify")
    from tests.test_pipeline import _exportify_csv

    path = tmp_path / "My Mix.csv"
    path.write_text(_exportify_csv(load_demo().tracks[:90]), encoding="utf-8")
    rc = cli.main(["analyze", str(path), "--k", "3", "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    assert {p.name for p in (tmp_path / "o").iterdir()} == FILES
    out = capsys.readouterr().out
    assert "90 tracks, k = 3" in out
    assert "audio features from the file for 90 tracks" in out


def test_analyze_cp1252_csv_is_decoded_not_a_crash(tmp_path: Path, capsys) -> None:
    """A CSV re-saved by a spreadsheet as cp1252 goes through the Exportify decoder."""
    from dataclasses import replace

    from tests.test_pipeline import _exportify_csv

    tracks = load_demo().tracks[:30]
    tracks[0] = replace(tracks[0], name="Café del Mar")
    path = tmp_path / "latin.csv"
    path.write_bytes(_exportify_csv(tracks).encode("cp1252", errors="replace"))
    rc = cli.main(["analyze", str(path), "--k", "3", "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    assert "Café del Mar" in (tmp_path / "o" / "tracks.csv").read_text(encoding="utf-8")


def _run_limited(
    args: list[str], cwd: Path, name: str, value: int
) -> subprocess.CompletedProcess[str]:
    """``python -m bot …`` under ``resource.<name>`` (a real full disk / small memory)."""
    resource = pytest.importorskip("resource")
    import signal

    limit = getattr(resource, name)

    def limit_child() -> None:
        if name == "RLIMIT_FSIZE":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG
        resource.setrlimit(limit, (value, value))

    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=_env(PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True,
        text=True,
        preexec_fn=limit_child,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("suffix", ["", ".csv"])
def test_300_character_argument_is_one_line(tmp_path: Path, suffix: str) -> None:
    """``Path.is_file()`` raised "File name too long" (a traceback) for a long argument."""
    line = _one_line_error(_run(["-m", "bot", "analyze", "a" * 300 + suffix], tmp_path))
    assert len(line) < 200


def test_unwritable_out_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    line = _one_line_error(_run(["-m", "bot", "demo", "--out", "file/o"], tmp_path))
    assert "Cannot write the results to file/o" in line


def test_out_naming_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    line = _one_line_error(_run(["-m", "bot", "demo", "--out", "file"], tmp_path))
    assert line == "error: Cannot write the results to file: it is a file; --out names a folder."


def test_csv_from_standard_input(tmp_path: Path) -> None:
    """``python -m bot analyze - < playlist.csv`` (it was "doesn't look like a Spotify link")."""
    from tests.test_pipeline import _exportify_csv

    proc = subprocess.run(
        [sys.executable, "-m", "bot", "analyze", "-", "--k", "2", "--out", "o"],
        cwd=tmp_path, env=_env(), capture_output=True, timeout=120,
        input=_exportify_csv(load_demo().tracks[:30]).encode("cp1252", errors="replace"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["n_tracks"] == 30


def test_a_file_url_is_the_file(tmp_path: Path, capsys) -> None:
    """A file dragged from a browser's downloads list arrives as file:///…/My%20Mix.csv."""
    from tests.test_pipeline import _exportify_csv

    path = tmp_path / "My Mix 100%.csv"
    path.write_text(_exportify_csv(load_demo().tracks[:30]), encoding="utf-8")
    rc = cli.main(["analyze", path.as_uri(), "--k", "2", "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    assert "My Mix 100%: 30 tracks" in capsys.readouterr().out


def test_full_disk_leaves_no_truncated_png(tmp_path: Path) -> None:
    """The first write past the limit fails like a full disk; nothing half-written is left,
    and the files of an earlier run stay whole."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "clusters.png").write_bytes(b"\x89PNG earlier run")
    proc = _run_limited(["demo", "--k", "3", "--out", "o"], tmp_path, "RLIMIT_FSIZE", 30_000)
    assert "Cannot write the results to o" in _one_line_error(proc)
    assert [p.name for p in out.iterdir()] == ["clusters.png"]
    assert (out / "clusters.png").read_bytes() == b"\x89PNG earlier run"


def test_huge_csv_is_refused_before_reading_it(tmp_path: Path) -> None:
    """A 3 GB (sparse) file was read whole before the 20 MB check: MemoryError at 1.5 GB."""
    with (tmp_path / "huge.csv").open("wb") as fh:
        fh.truncate(3 * 1024**3)
    proc = _run_limited(["analyze", "huge.csv"], tmp_path, "RLIMIT_AS", 1536 * 1024**2)
    assert "over 20 MB" in _one_line_error(proc)


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("Demo mix (5 real playlists)", "demo-mix-5-real-playlists"),
        ("お気に入り", "お気に入り"),
        ("Лучшие песни 2020", "лучшие-песни-2020"),
        ("Café del Mar", "café-del-mar"),
        ("../../etc", "etc"),
        ("🔥🔥🔥", "playlist"),
    ],
)
def test_default_folder_keeps_any_script(name: str, folder: str) -> None:
    """Every playlist named in another script went to out/playlist, overwriting the last."""
    assert cli.slugify(name) == folder


# Every pipeline message that tells a Discord member to attach a file or use /spotify link,
# as the CLI's user reads it: what to run instead.
def _discord_worded_messages() -> list[str]:
    from bot.sources import exportify, link_reader, public_page
    from bot.sources.exportify import _zip_error

    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("a.csv", "x")
    workbook = io.BytesIO()
    with zipfile.ZipFile(workbook, "w") as z:
        z.writestr("xl/workbook.xml", "x")
    return [
        exportify.EXPORTIFY_HINT,
        _zip_error(zipped.getvalue()).user_message,
        _zip_error(workbook.getvalue()).user_message,
        public_page.UNREADABLE_MESSAGE.format(kind="playlist"),
        public_page.NOT_FOUND_MESSAGE.format(kind="playlist"),
        f"Spotify's public page has only 100 tracks; {link_reader.EXPORTIFY}.",
        link_reader.public_page_note(_page_meta(), 100, reader=link_reader.NO_LINKING) or "",
    ]


def _page_meta():  # type: ignore[no-untyped-def]
    from bot.models import PlaylistMeta

    return PlaylistMeta(id="x", name="x", kind="playlist", snapshot_id="page:1", total=400)


@pytest.mark.parametrize("message", _discord_worded_messages())
def test_errors_say_what_to_run_not_what_to_attach(message: str) -> None:
    assert "attach" in message or "/spotify link" in message  # the case this test is about
    said = cli.for_terminal(message)
    assert "attach" not in said
    assert "/spotify link" not in said or "Discord bot" in said
    assert said.count("`python -m bot analyze`") <= 1


def test_too_large_says_how_to_raise_the_limit(tmp_path: Path, capsys) -> None:
    path = tmp_path / "big.csv"
    rows = "".join(f"spotify:track:{i:022d},T{i}\n" for i in range(21))
    path.write_text("Track URI,Track Name\n" + rows, encoding="utf-8")
    settings = cli.get_settings().model_copy(update={"max_playlist_tracks": 20})
    assert cli.main(["analyze", str(path)], settings=settings) == 2
    err = capsys.readouterr().err
    assert "has 21 tracks; this bot analyses at most 20" in err
    assert "MAX_PLAYLIST_TRACKS=<tracks> python -m bot" in err


def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, tmp_path: Path, capsys) -> None:
    """Ctrl-C during a long analysis printed asyncio.run's KeyboardInterrupt traceback."""

    async def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert cli.main(["demo", "--out", str(tmp_path / "o")]) == 130
    assert capsys.readouterr().err == "\ninterrupted.\n"
    assert not (tmp_path / "o").exists()
