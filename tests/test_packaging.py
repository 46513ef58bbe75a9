"""What ships: declared dependencies, ignored secrets, the Docker image read as a reviewer would
(no Docker engine here, so the files are checked), the README's permissions integer."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import discord
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "cogs", "storage")


# ------------------------------------------------------------------------------ dependencies
def _imported_top_level_modules() -> set[str]:
    """Every module imported anywhere in the shipped packages (lazy imports included)."""
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"}


def test_every_imported_distribution_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    # Optional runtime extras (postgres: asyncpg, imported only when DATABASE_URL is set).
    extras = project.get("optional-dependencies", {})
    declared |= {
        canonicalize_name(Requirement(r).name)
        for name, reqs in extras.items()
        if name != "dev"
        for r in reqs
    }
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(_imported_top_level_modules()):
        dists = {canonicalize_name(d) for d in providers.get(module, [module])}
        if not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not in pyproject.toml [project] dependencies: {missing}"


# ------------------------------------------------------------------------------ git / docker
def _git_ignored(paths: list[str]) -> set[str]:
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(paths),
        capture_output=True,
        text=True,
    )
    if proc.returncode not in (0, 1):
        pytest.skip(f"git check-ignore unavailable: {proc.stderr.strip()}")
    return set(proc.stdout.split())


SECRETS_AND_DATA = [
    ".env",
    "playlist_clusters.sqlite3",
    "playlist_clusters.sqlite3.key",
    "playlist_clusters.sqlite3-wal",
    "playlist_clusters.sqlite3-shm",
    "playlist_clusters.sqlite3.heartbeat",
    "data/bot.sqlite3.key",
    "out/demo/report.md",
]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_gitignore_covers_the_database_its_key_and_settings() -> None:
    ignored = _git_ignored([*SECRETS_AND_DATA, ".env.example", "bot/config.py"])
    assert set(SECRETS_AND_DATA) <= ignored, set(SECRETS_AND_DATA) - ignored
    assert ".env.example" not in ignored and "bot/config.py" not in ignored


def _dockerignore_excludes(path: str) -> bool:
    """Docker's rules: patterns match the path or a parent folder, ``**`` any depth, last wins."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = (
            re.escape(pattern)
            .replace(r"\*\*/", "(?:.*/)?")
            .replace(r"\*\*", ".*")
            .replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]")
        )
        if any(re.fullmatch(regex, p) for p in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_data_and_caches_out_of_the_context() -> None:
    for path in [
        ".git/config",
        ".venv/bin/python",
        *SECRETS_AND_DATA,
        "data/x.sqlite3-wal",
        ".env.production",
        "bot/__pycache__/app.cpython-313.pyc",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
    ]:
        assert _dockerignore_excludes(path), path
    for path in ["pyproject.toml", "README.md", "bot/app.py", "storage/migrations/0001_a.sql"]:
        assert not _dockerignore_excludes(path), path


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_installs_dependencies_in_their_own_layer_before_the_code() -> None:
    steps = _instructions()
    copies = [(i, rest) for i, (word, rest) in enumerate(steps) if word == "COPY"]
    first_code = min(i for i, rest in copies if re.search(r"\b(bot|cogs|storage|\.)\s", rest))
    dep_install = next(
        i for i, (word, rest) in enumerate(steps) if word == "RUN" and "pip install -r" in rest
    )
    assert dep_install < first_code
    # Only pyproject.toml is in the context of the dependency layer.
    before = [rest for i, rest in copies if i < dep_install]
    assert before == ["pyproject.toml ./"]
    # The code layer installs the project alone, without resolving dependencies again.
    project_install = next(
        i for i, (word, rest) in enumerate(steps) if word == "RUN" and "--no-deps ." in rest
    )
    assert project_install > first_code


def test_dockerfile_base_init_healthcheck_user_and_volume() -> None:
    steps = _instructions()
    words = dict(steps)
    assert re.fullmatch(r"python:3\.1[23]-slim(-\w+)?", words["FROM"]), words["FROM"]
    assert "tini" in words["ENTRYPOINT"]
    assert any(word == "RUN" and "install" in rest and " tini" in rest for word, rest in steps)
    assert words["HEALTHCHECK"].endswith('CMD ["python", "-m", "bot", "healthcheck"]')
    assert words["USER"] not in ("root", "0")
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(r for w, r in steps if w == "ENV")))
    volume = words["VOLUME"].strip('[]"')
    assert Path(env["DATABASE_PATH"]).parent == Path(volume)


# ------------------------------------------------------------------------------ README
def test_readme_permissions_integer_matches_the_listed_permissions() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = discord.Permissions(
        view_channel=True,
        send_messages=True,
        embed_links=True,
        attach_files=True,
        read_message_history=True,
        add_reactions=True,
    ).value
    assert expected == 117824
    numbers = {int(n) for n in re.findall(r"permissions integer \*\*(\d+)\*\*", readme)}
    assert numbers == {expected}
    assert f"permissions={expected}" in readme  # the ready-made invite link
