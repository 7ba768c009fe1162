"""The README shows what the pipeline wrote, and its quick start is what CI runs."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def _block(text: str, start: str, end: str) -> str:
    match = re.search(re.escape(start) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert match, f"{start} … {end} not found"
    return match.group(1)


def test_readme_table_is_the_committed_comparison():
    table = (REPO_ROOT / "metrics" / "compare.md").read_text(encoding="utf-8")
    assert _block(README, "<!-- compare:start -->", "<!-- compare:end -->") == table


def test_quick_start_is_two_commands_and_ci_runs_both():
    quick = _block(README, "## Quick start", "Then:")
    commands = _block(quick, "```bash", "```").strip().splitlines()
    assert len(commands) == 2
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in commands:
        assert command in ci, f"CI does not run the README's command: {command}"
