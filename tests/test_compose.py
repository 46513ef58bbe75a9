"""compose.yaml, checked without Docker (this machine has no Docker engine, so it was never
started here): its services run commands the code has, with settings the code reads, and
fit together (shards cover SHARD_COUNT once each, DATABASE_URL names the db service with its
credentials, volumes are declared, the image is built with an extra that exists)."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.config import Settings
from bot.worker_main import worker_parser

yaml = pytest.importorskip("yaml")  # PyYAML: the dev extra

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def _dockerfile_cmd() -> list[str]:
    import json

    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    [cmd] = [line for line in lines if line.startswith("CMD ")]
    return json.loads(cmd[4:])


def _app_services(doc: dict) -> dict[str, dict]:
    return {name: svc for name, svc in doc["services"].items() if "build" in svc}


def test_every_app_service_runs_a_command_the_cli_accepts_with_settings_it_reads() -> None:
    doc = _compose()
    apps = _app_services(doc)
    assert apps, "no service builds the bot's image"
    for name, svc in apps.items():
        env = svc["environment"]
        unknown = sorted(k for k in env if k.lower() not in Settings.model_fields)
        assert not unknown, f"{name}: settings the code does not read: {unknown}"
        settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]
        assert (settings.database_url_value or "").startswith("postgresql://"), name
        command = svc.get("command", _dockerfile_cmd())
        if isinstance(command, str):
            command = shlex.split(command)
        assert command[:3] == ["python", "-m", "bot"], name
        if command[3:4] == ["worker"]:
            worker_parser().parse_args(command[4:])  # SystemExit on an unknown option
        else:
            assert command[3:] == [], f"{name}: the bot takes no arguments"
            assert settings.shard_count and settings.shard_id_list, f"{name}: no shard"


def test_shards_cover_shard_count_once_and_share_one_database() -> None:
    doc = _compose()
    bots = [s for s in _app_services(doc).values() if "command" not in s]
    settings = [
        Settings(_env_file=None, **{k.lower(): v for k, v in s["environment"].items()})  # type: ignore[arg-type]
        for s in bots
    ]
    counts = {s.shard_count for s in settings}
    assert len(counts) == 1
    shards = sorted(i for s in settings for i in s.shard_id_list or [])
    assert shards == list(range(counts.pop() or 0))
    assert len({s.database_url_value for s in settings}) == 1


def test_database_url_names_the_db_service_and_its_credentials() -> None:
    doc = _compose()
    db = doc["services"]["db"]
    assert db["healthcheck"]["test"], "app services wait for db's health"
    for name, svc in _app_services(doc).items():
        url = urlsplit(svc["environment"]["DATABASE_URL"])
        assert url.hostname in doc["services"], name
        target = doc["services"][url.hostname]
        env = target["environment"]
        assert (url.username, url.password, url.path.lstrip("/")) == (
            env["POSTGRES_USER"],
            env["POSTGRES_PASSWORD"],
            env["POSTGRES_DB"],
        ), name
        assert svc["depends_on"][url.hostname]["condition"] == "service_healthy", name


def test_image_extra_volumes_and_env_file_exist() -> None:
    doc = _compose()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "ARG EXTRAS" in (ROOT / "Dockerfile").read_text()
    declared = set(doc.get("volumes") or {})
    for name, svc in doc["services"].items():
        for extra in (svc.get("build", {}).get("args", {}).get("EXTRAS") or "").split(","):
            assert not extra or extra in extras, f"{name}: unknown extra {extra}"
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith((".", "/")) or source in declared, f"{name}: {source}"
        if "env_file" in svc:  # README: cp .env.example .env
            assert (ROOT / ".env.example").is_file()
    # The bot's data volume is where the image keeps DATABASE_PATH (its heartbeat file).
    assert "DATABASE_PATH=/data/" in (ROOT / "Dockerfile").read_text()
