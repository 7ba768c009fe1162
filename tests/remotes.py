"""Helpers of the remote tests (SSH, S3): a tiny DVC project and DVC run as a process.

Each command runs with ``HOME`` in the test's folder, so that no user configuration (DVC's
global config, AWS credentials, SSH's known hosts) leaks in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest


def run(
    *args: str | Path,
    cwd: Path,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    home = cwd.parent / "home"
    full_env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        **(env or {}),
    }
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args: str | Path, cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check, **kw)


def new_project(path: Path) -> Path:
    """A git + DVC project with one input and one stage, committed."""
    path.mkdir()
    (path.parent / "home").mkdir(exist_ok=True)
    run("git", "init", "-q", "-b", "main", cwd=path)
    dvc("init", "-q", cwd=path)
    (path / "data.txt").write_text("the data\n")
    dvc("add", "-q", "data.txt", cwd=path)
    dvc("stage", "add", "-q", "-n", "copy", "-d", "data.txt", "-o", "out.txt",
        "cp data.txt out.txt", cwd=path)  # fmt: skip
    dvc("repro", "-q", cwd=path)
    commit(path)
    return path


def commit(path: Path) -> None:
    run("git", "add", "-A", cwd=path)
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "p", cwd=path)


def clone(source: Path, dest: Path) -> Path:
    run("git", "clone", "-q", source, dest, cwd=dest.parent)
    return dest


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The ``ERROR`` lines DVC printed (it prints one per failure, no traceback)."""
    return [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
