"""README.md's Quick start, run literally in a fresh folder and a fresh venv (marker: quickstart).

The commands are read from the README's Quick start block and run one after another in one bash
session, as a newcomer would paste them. Tests never reach the network, so pip runs offline
(``PIP_NO_INDEX``, no build isolation) and the new venv gets one ``.pth`` line pointing at the
dependencies already installed for the test run (and drops the older setuptools its venv
bundles, so the build backend comes from there too). The README path is still proven: the venv line
and its activation, ``pip install -e ".[dev]"`` (which must find every dependency the project
declares, and builds and installs the project), ``cp .env.example .env`` (the shipped file must
load), the demo and ``--version`` from that install. About 30 s, most of it the demo.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bot import __version__

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.quickstart

# What a fresh clone has, not what a working copy collects.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "out", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
    "*.egg-info", "build", "dist", ".env", "*.sqlite3*",
)  # fmt: skip


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the Quick start section must open with a bash block"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_quickstart_block_has_the_newcomer_steps() -> None:
    commands = [c.split("#")[0].strip() for c in quickstart_commands()]
    assert commands == [
        "python -m venv .venv && . .venv/bin/activate",
        'pip install -e ".[dev]"',
        "cp .env.example .env",
        "python -m bot demo",
        "python -m bot --version",
    ]


def _installed_site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def test_readme_quick_start_runs_verbatim(tmp_path: Path) -> None:
    if sys.prefix == sys.base_prefix:
        pytest.skip("the test run's dependencies must be in a venv to be reused offline")
    clone = tmp_path / "playlist-clusters"
    shutil.copytree(ROOT, clone, ignore=NOT_IN_A_CLONE)
    pth = "\n".join(_installed_site_dirs())
    lines = ["set -euo pipefail"]
    for command in quickstart_commands():
        lines += [f"echo {shlex.quote('$ ' + command)}", command]
        if " -m venv " in command:
            # Offline stand-in for the downloads: the test run's installed packages, appended
            # to the new venv's sys.path (its own site-packages still comes first).
            # The build backend too: the setuptools that Python 3.11's venv bundles is older
            # than pyproject.toml's build-system requires (what pip would otherwise download).
            lines.append(
                'python -c "import sys, sysconfig; '
                "open(sysconfig.get_paths()['purelib'] + '/_reuse_installed.pth', 'w')"
                f'.write(sys.argv[1])" {shlex.quote(pth)}'
                " && (python -m pip uninstall -y -q setuptools 2>/dev/null || true)"
            )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV", "DISCORD_", "SPOTIFY_", "DATABASE_"))
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip's spelling for "build without isolation"
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        XDG_DATA_HOME=str(tmp_path / "xdg-data"),
        MPLBACKEND="Agg",
    )
    proc = subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "Successfully installed playlist-clusters" in output
    assert (clone / ".env").is_file()
    assert re.search(r"^wrote .*clusters\.png", proc.stdout, re.M), proc.stdout[-2000:]
    assert proc.stdout.rstrip().endswith(f"playlist-clusters {__version__}")
    # The demo and --version ran from the venv's install of the copy, not from this checkout.
    venv_python = clone / ".venv" / "bin" / "python"
    where = subprocess.run(
        [str(venv_python), "-c", "import bot, importlib.metadata as m; print(bot.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(clone)
