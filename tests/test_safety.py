"""bot.safety: CSV formula escaping, HTML attributes, mentions, loggers, key files (issue #13)."""

from __future__ import annotations

import csv
import io
import logging
import os
import stat
from pathlib import Path

import pytest

from bot import safety as S
from storage import accounts as A

EVIL = '=HYPERLINK("http://evil.example/x","click")'


@pytest.mark.parametrize(
    "cell",
    [EVIL, "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
     "\t=1+1", "\r=1+1", "-", "+", "@alice", "=1"],
)  # fmt: skip
def test_formula_cells_are_prefixed_with_a_quote(cell: str) -> None:
    assert S.csv_cell(cell) == "'" + cell


@pytest.mark.parametrize(
    "cell", ["Memories", "-4.969", "+1", "1e-05", "-2.5E+3", ".5", "", "'=already", "a=b"]
)
def test_plain_text_and_numbers_are_unchanged(cell: str) -> None:
    assert S.csv_cell(cell) == cell


def test_non_strings_pass_through() -> None:
    assert S.csv_row([1, None, -2.5, EVIL]) == [1, None, -2.5, "'" + EVIL]


def test_escape_csv_text_is_idempotent_and_keeps_quoting() -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        [["track", "x"], [EVIL, "-1.5"], ["a, b", "2"], ["@here", "3"]]
    )
    once = S.escape_csv_text(buf.getvalue())
    assert S.escape_csv_text(once) == once
    rows = list(csv.reader(io.StringIO(once)))
    assert rows == [["track", "x"], ["'" + EVIL, "-1.5"], ["a, b", "2"], ["'@here", "3"]]
    # Opened as text: no line starts a formula, and none holds an unquoted one.
    for line in once.splitlines():
        assert not line.startswith(S.FORMULA_PREFIXES)
        assert ',"=' not in line and ",=" not in line


def test_html_attr_escapes_quotes() -> None:
    value = 'https://i.scdn.co/a.jpg" onerror="alert(1)'
    assert '"' not in S.html_attr(value)
    assert S.html_attr(value).startswith("https://i.scdn.co/a.jpg&quot; onerror=")


@pytest.mark.parametrize(
    "url",
    [
        'https://i.scdn.co/image/ab67" onerror=alert(1) x="',
        "http://i.scdn.co/image/ab67",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "https:///nohost",
        "https://i.scdn.co/a b.jpg",
        "https://i.scdn.co/a.jpg<script>",
        "//i.scdn.co/a.jpg",
        "",
        None,
    ],
)
def test_only_plain_https_urls_are_accepted(url: str | None) -> None:
    assert S.https_url(url) is None


def test_https_url_and_md_link_url() -> None:
    url = "https://i.scdn.co/image/ab67616d00001e02?x=1&y=2"
    assert S.https_url(url) == url
    assert S.md_link_url("https://open.spotify.com/track/a(b)") == (
        "https://open.spotify.com/track/a%28b%29"
    )
    assert S.md_link_url("http://open.spotify.com/track/x") is None


@pytest.mark.parametrize(
    ("text", "mentioned"),
    [
        ("<@123456789012345678> party", "<@123456789012345678>"),
        ("<@!123456789012345678>", "<@!123456789012345678>"),
        ("<@&123456789012345678> fans", "<@&123456789012345678>"),
        ("hi @everyone", "@everyone"),
        ("@here now", "@here"),
    ],
)
def test_neutralize_mentions(text: str, mentioned: str) -> None:
    out = S.neutralize_mentions(text)
    assert mentioned not in out
    assert out.replace(S.ZWSP, "") == text  # reads the same


def test_neutralize_mentions_leaves_other_text() -> None:
    assert S.neutralize_mentions("me@example.org <#123> a<b>") == "me@example.org <#123> a<b>"
    assert S.neutralize_mentions(None) == ""


def test_clamp_secret_loggers_holds_them_at_info() -> None:
    root = logging.getLogger()
    saved = root.level, {n: logging.getLogger(n).level for n in S.SECRET_LOGGERS}
    try:
        root.setLevel(logging.DEBUG)
        S.clamp_secret_loggers()
        for name in S.SECRET_LOGGERS:
            assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
            assert logging.getLogger(name).isEnabledFor(logging.INFO)
        root.setLevel(logging.WARNING)
        S.clamp_secret_loggers()
        assert not logging.getLogger("aiosqlite").isEnabledFor(logging.INFO)
    finally:
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def test_a_world_readable_key_file_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "bot.sqlite3.key"
    key.write_bytes(b"k\n")
    os.chmod(key, 0o644)
    with caplog.at_level(logging.WARNING, logger="storage.accounts"):
        assert A.ensure_private_file(key) is True
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "0644" in caplog.text and str(key) in caplog.text
    assert A.ensure_private_file(key) is False  # already private: nothing to do


def test_a_key_file_that_cannot_be_tightened_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "bot.sqlite3.key"
    key.write_bytes(b"k\n")
    os.chmod(key, 0o640)

    def refuse(path: object, mode: int) -> None:  # a file owned by another user
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(A.os, "chmod", refuse)
    with pytest.raises(A.UnsafeSecretFile, match=r"chmod 600 .*bot\.sqlite3\.key"):
        A.ensure_private_file(key)


def test_reader_may_reuse() -> None:
    alice, bob = S.user_reader(1), S.user_reader(2)
    assert S.reader_may_reuse({alice}, alice)
    assert not S.reader_may_reuse({alice}, bob)
    assert not S.reader_may_reuse({alice}, "app")
    assert S.reader_may_reuse({alice, "app"}, bob)
    assert S.reader_may_reuse({"page"}, "app")
    assert not S.reader_may_reuse(set(), "app")
