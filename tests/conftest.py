"""Shared fixtures: the repository root, and the real data wherever a user has it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import settings

from quantpipe.pool import cpus
from quantpipe.source import ARCHIVE, ENV_DATA

REPO_ROOT = Path(__file__).resolve().parents[1]

# DVC's analytics process outlives its commands and cannot reach out from CI.
os.environ["DVC_NO_ANALYTICS"] = "1"

# Hypothesis: quick and varied while developing; more examples, and reproducible, in CI.
# Choose one with HYPOTHESIS_PROFILE=dev|ci (default: ci when CI=true, else dev).
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject.toml): the CPUs this process may run on, as ``nproc`` counts
    them (its affinity and cpuset, as ``docker --cpuset-cpus`` sets them), not the
    machine's. A CPU quota (``docker --cpus``) is not seen, by ``nproc`` either."""
    return cpus()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests first, the rest in their order: under pytest-xdist (``-n``,
    pyproject.toml) the longest file then starts at once on one worker while the others
    share the rest, instead of starting late and finishing alone."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


def data_home_candidates(env: Mapping[str, str], home: Path) -> list[Path]:
    """Where the real data may be, in order: where the fetch stage looks (``QUANTPIPE_DATA``,
    else ``~/.cache/quantpipe``), then the shared copy beside the repository
    (``$QUANTPIPE_SHARED_DATA``, else ``../shared/data``).
    """
    cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "quantpipe"
    mine = Path(env.get(ENV_DATA) or cache)
    shared = env.get("QUANTPIPE_SHARED_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    return [mine.expanduser(), Path(shared).expanduser()]


def find_data_home(env: Mapping[str, str], home: Path) -> tuple[Path | None, str]:
    """The first candidate folder that holds the archive, and what to say if none does."""
    candidates = data_home_candidates(env, home)
    for folder in candidates:
        if (folder / ARCHIVE).is_file():
            return folder, ""
    return None, (
        f"the real California Housing data ({ARCHIVE}) is in none of: "
        + ", ".join(str(c) for c in candidates)
        + f"; run `python -m stages.fetch` once with a network (it keeps the archive in "
        f"~/.cache/quantpipe), or set {ENV_DATA} to a folder that holds it"
    )


def require_data_home(env: Mapping[str, str], home: Path) -> Path:
    """The folder holding the real data, or a skip that says how to provide it (a failure
    when ``CI=true``)."""
    folder, message = find_data_home(env, home)
    if folder is None:
        if env.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def data_home() -> Path:
    """The folder holding the real California Housing archive (see :func:`require_data_home`)."""
    return require_data_home(os.environ, Path.home())
