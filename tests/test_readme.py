"""The README's first lines are the newcomer's two commands; CI must run the same test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README must start with a bash block of set-up commands"
    lines = [ln.split("#")[0].strip() for ln in block.group(1).splitlines() if ln.strip()]
    return lines


def test_readme_opens_with_demo_and_test_commands() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:6]
    assert any("```bash" in ln for ln in head), "the set-up commands must be the first lines"
    run_cmd, test_cmd = _readme_commands()[:2]
    assert run_cmd.endswith("python -m bot")
    assert "pytest" in test_cmd


def test_ci_runs_the_readme_test_command() -> None:
    test_cmd = _readme_commands()[1].split("&&")[-1].strip()  # e.g. "python -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")]
    assert any(ln.endswith(test_cmd) for ln in ci_lines), f"CI must run {test_cmd!r}"
    assert 'pip install --quiet -e ".[dev,postgres]"' in ci, "CI installs from the project's files"
