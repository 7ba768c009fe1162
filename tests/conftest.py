"""Shared fixtures: the repository root, and the real data wherever a user has it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import settings

from quantpipe.data import CACHE_FILE

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


def data_home_candidates(env: Mapping[str, str], home: Path) -> list[Path]:
    """Where the real data may be, in order: where scikit-learn looks (``SCIKIT_LEARN_DATA``,
    else ``~/scikit_learn_data``), then the shared copy beside the repository
    (``$QUANTPIPE_SHARED_DATA/scikit_learn_data``, else ``../shared/data/scikit_learn_data``).
    """
    sklearn = env.get("SCIKIT_LEARN_DATA") or str(home / "scikit_learn_data")
    shared = env.get("QUANTPIPE_SHARED_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    return [Path(sklearn).expanduser(), Path(shared).expanduser() / "scikit_learn_data"]


def find_data_home(env: Mapping[str, str], home: Path) -> tuple[Path | None, str]:
    """The first candidate folder that holds the cache file, and what to say if none does."""
    candidates = data_home_candidates(env, home)
    for folder in candidates:
        if (folder / CACHE_FILE).is_file():
            return folder, ""
    return None, (
        f"the real California Housing data ({CACHE_FILE}) is in none of: "
        + ", ".join(str(c) for c in candidates)
        + "; run `python -m stages.fetch` once with a network (it caches the file in "
        "~/scikit_learn_data), or set SCIKIT_LEARN_DATA to a folder that holds it"
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
def sklearn_data_home() -> Path:
    """The real California Housing cache (see :func:`require_data_home`)."""
    return require_data_home(os.environ, Path.home())
